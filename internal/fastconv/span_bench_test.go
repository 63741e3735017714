package fastconv

import (
	"testing"

	"go.opencensus.io/trace"

	tracepb "github.com/zerocensus/ocagent/internal/ocproto/trace/v1"
	"github.com/zerocensus/ocagent/internal/testspans"
)

var shapes = []struct {
	name string
	sd   func() *trace.SpanData
}{{"small", testspans.Small}, {"typical", testspans.Typical}, {"large", testspans.Large}}

// convertEncode is the per-span work of a batch: convert in place, size,
// marshal into a reused buffer.
func convertEncode(c *SpanConverter, dst *tracepb.Span, sd *trace.SpanData, buf []byte) []byte {
	c.Convert(dst, sd)
	n := dst.SizeVT()
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := dst.MarshalToSizedBufferVT(buf); err != nil {
		panic(err)
	}
	return buf
}

// TestConvertSteadyStateAllocs gates the product: converting and encoding a
// span into a reused message allocates nothing once warm.
func TestConvertSteadyStateAllocs(t *testing.T) {
	for _, s := range shapes {
		c := NewSpanConverter(0, 0)
		dst := new(tracepb.Span)
		sd := s.sd()
		buf := convertEncode(c, dst, sd, nil)
		if got := testing.AllocsPerRun(200, func() { buf = convertEncode(c, dst, sd, buf) }); got != 0 {
			t.Errorf("%s: %v allocs per converted span, want 0", s.name, got)
		}
	}
	// Alternating shapes swap objects through the free lists, still 0.
	c := NewSpanConverter(0, 0)
	dst := new(tracepb.Span)
	var buf []byte
	for _, s := range shapes {
		buf = convertEncode(c, dst, s.sd(), buf)
	}
	a, b := testspans.Typical(), testspans.Small()
	if got := testing.AllocsPerRun(200, func() {
		buf = convertEncode(c, dst, a, buf)
		buf = convertEncode(c, dst, b, buf)
	}); got != 0 {
		t.Errorf("alternating shapes: %v allocs, want 0", got)
	}
}

func BenchmarkConvertSpan(b *testing.B) {
	for _, s := range shapes {
		b.Run(s.name, func(b *testing.B) {
			c := NewSpanConverter(0, 0)
			dst := new(tracepb.Span)
			sd := s.sd()
			c.Convert(dst, sd)
			b.ReportAllocs()
			for b.Loop() {
				c.Convert(dst, sd)
			}
		})
	}
}

// BenchmarkConvertEncodeSpan adds SizeVT and MarshalToSizedBufferVT.
func BenchmarkConvertEncodeSpan(b *testing.B) {
	for _, s := range shapes {
		b.Run(s.name, func(b *testing.B) {
			c := NewSpanConverter(0, 0)
			dst := new(tracepb.Span)
			sd := s.sd()
			buf := convertEncode(c, dst, sd, nil)
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				buf = convertEncode(c, dst, sd, buf)
			}
		})
	}
}
