package bench

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/zerocensus/ocagent/fastconv"
	metricspb "github.com/zerocensus/ocagent/internal/ocproto/metrics/v1"
	tracepb "github.com/zerocensus/ocagent/internal/ocproto/trace/v1"
)

// vtMessage is a generated message of this module (vtprotobuf).
type vtMessage interface {
	SizeVT() int
	MarshalToSizedBufferVT([]byte) (int, error)
}

// BenchmarkFloor is the physical limit of this design: only encoding the
// same span (or view), already converted into this module's generated
// message, with MarshalToSizedBufferVT into a reused buffer, as fastconv's encoders
// does it (without SizeVT: the encoder writes at the end of a buffer larger
// than the message). No conversion, no batching, no gRPC. make bench reports every scenario's
// ns/span (ns/row) as a ratio to the floor of its shape (view).
func BenchmarkFloor(b *testing.B) {
	for _, sh := range shapes {
		b.Run("shape="+sh.name, func(b *testing.B) {
			announce(b)
			dst := new(tracepb.Span)
			if err := dst.UnmarshalVT(fastconv.NewSpanEncoder(fastconv.OpenCensus, fastconv.SpanOptions{}).Append(nil, spanData(b, sh))); err != nil {
				b.Fatal(err)
			}
			encodeLoop(b, dst, 1, "span")
		})
	}
	for _, a := range aggregations {
		for _, rows := range viewRows {
			b.Run(fmt.Sprintf("agg=%s/rows=%d", a.name, rows), func(b *testing.B) {
				announce(b)
				dst := new(metricspb.Metric)
				enc, err := fastconv.NewViewEncoder(fastconv.OpenCensus, "").Append(nil, getViewFixture(b, a.name, a.agg, rows).vd)
				if err == nil {
					err = dst.UnmarshalVT(enc)
				}
				if err != nil {
					b.Fatal(err)
				}
				encodeLoop(b, dst, rows, "row")
			})
		}
	}
}

func encodeLoop(b *testing.B, m vtMessage, per int, unit string) {
	buf := make([]byte, m.SizeVT())
	b.ReportAllocs()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for b.Loop() {
		if _, err := m.MarshalToSizedBufferVT(buf); err != nil {
			b.Fatal(err)
		}
	}
	runtime.ReadMemStats(&m1)
	n := float64(b.N) * float64(per)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/"+unit)
	b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/n, "allocs/"+unit)
	b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/n, "B/"+unit)
	b.ReportMetric(float64(len(buf))*float64(b.N)/n, "wireB/"+unit)
}
