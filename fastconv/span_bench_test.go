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

// convertEncode is the per-span work of an encoder (encoder.go): convert in
// place, then marshal at the end of a reused scratch buffer, without SizeVT.
// It returns the encoded span, which lives in scratch.
func convertEncode(c *ocSpans, dst *tracepb.Span, sd *trace.SpanData, scratch []byte) []byte {
	c.Convert(dst, sd)
	n, err := dst.MarshalToSizedBufferVT(scratch)
	if err != nil {
		panic(err)
	}
	return scratch[len(scratch)-n:]
}

// TestConvertSteadyStateAllocs gates the product: converting and encoding a
// span into a reused message allocates nothing once warm.
func TestConvertSteadyStateAllocs(t *testing.T) {
	for _, s := range shapes {
		c := newOCSpans(0, 0)
		dst := new(tracepb.Span)
		sd := s.sd()
		scratch := make([]byte, ScratchBytes)
		convertEncode(c, dst, sd, scratch)
		if got := testing.AllocsPerRun(200, func() { convertEncode(c, dst, sd, scratch) }); got != 0 {
			t.Errorf("%s: %v allocs per converted span, want 0", s.name, got)
		}
	}
	// Alternating shapes swap objects through the free lists, still 0.
	c := newOCSpans(0, 0)
	dst := new(tracepb.Span)
	scratch := make([]byte, ScratchBytes)
	for _, s := range shapes {
		convertEncode(c, dst, s.sd(), scratch)
	}
	a, b := testspans.Typical(), testspans.Small()
	if got := testing.AllocsPerRun(200, func() {
		convertEncode(c, dst, a, scratch)
		convertEncode(c, dst, b, scratch)
	}); got != 0 {
		t.Errorf("alternating shapes: %v allocs, want 0", got)
	}
}

func BenchmarkConvertSpan(b *testing.B) {
	for _, s := range shapes {
		b.Run(s.name, func(b *testing.B) {
			c := newOCSpans(0, 0)
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

// BenchmarkConvertEncodeSpan adds the encoding, as a batch does it
// (convertEncode).
func BenchmarkConvertEncodeSpan(b *testing.B) {
	for _, s := range shapes {
		b.Run(s.name, func(b *testing.B) {
			c := newOCSpans(0, 0)
			dst := new(tracepb.Span)
			sd := s.sd()
			scratch := make([]byte, ScratchBytes)
			b.SetBytes(int64(len(convertEncode(c, dst, sd, scratch))))
			b.ReportAllocs()
			for b.Loop() {
				convertEncode(c, dst, sd, scratch)
			}
		})
	}
}
