package ocagent

import (
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"go.opencensus.io/stats"
	"go.opencensus.io/stats/view"
	"go.opencensus.io/tag"
)

// benchView builds a view.Data of the aggregation with rows rows, two tag keys.
func benchView(agg string, rows int) *view.Data {
	k1, k2 := tag.MustNewKey("method"), tag.MustNewKey("status")
	m := stats.Float64("bench/latency", "latency", "ms")
	v := &view.View{Name: "bench/" + agg, Measure: m, TagKeys: []tag.Key{k1, k2}}
	var data func(i int) view.AggregationData
	switch agg {
	case "count":
		v.Aggregation = view.Count()
		data = func(i int) view.AggregationData { return &view.CountData{Value: int64(i)} }
	case "sum":
		v.Aggregation = view.Sum()
		data = func(i int) view.AggregationData { return &view.SumData{Value: float64(i) * 1.5} }
	case "lastvalue":
		v.Aggregation = view.LastValue()
		data = func(i int) view.AggregationData { return &view.LastValueData{Value: float64(i)} }
	default:
		v.Aggregation = view.Distribution(1, 5, 10, 50, 100, 500, 1000)
		data = func(i int) view.AggregationData {
			return &view.DistributionData{Count: int64(i), Mean: 12.5, SumOfSquaredDev: 3, CountPerBucket: []int64{1, 2, 3, 4, 5, 6, 7, int64(i)}}
		}
	}
	vd := &view.Data{View: v, Start: time.Unix(100, 0), End: time.Unix(200, 0)}
	for i := 0; i < rows; i++ {
		vd.Rows = append(vd.Rows, &view.Row{
			Tags: []tag.Tag{{Key: k1, Value: fmt.Sprintf("m%d", i%50)}, {Key: k2, Value: fmt.Sprintf("s%d", i/50)}},
			Data: data(i),
		})
	}
	return vd
}

// BenchmarkExportView is the whole view path per view: ExportView,
// conversion, encoding and gRPC to a discarding agent process, in batches of
// 100 views (each batch waited for). Reports ns/row.
func BenchmarkExportView(b *testing.B) {
	for _, agg := range []string{"count", "sum", "lastvalue", "distribution"} {
		for _, rows := range []int{10, 1000} {
			b.Run(fmt.Sprintf("%s/rows=%d", agg, rows), func(b *testing.B) {
				const batch = 100
				e, err := NewExporter(WithInsecure(), WithAddress(discardAgent(b)), WithDataBundlerOptions(time.Hour, batch))
				if err != nil {
					b.Fatal(err)
				}
				defer e.Stop()
				vd := benchView(agg, rows)
				sent := func(n int) {
					for e.Stats().ViewsExported < uint64(n) {
						runtime.Gosched()
					}
				}
				for i := 0; i < batch; i++ { // warm: the batch's messages are made once
					e.ExportView(vd)
				}
				sent(batch)
				b.ReportAllocs()
				b.ResetTimer()
				for i := 1; i <= b.N; i++ {
					e.ExportView(vd)
					if i%batch == 0 {
						sent(batch + i)
					}
				}
				b.StopTimer()
				e.Flush()
				sent(batch + b.N)
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
				if st := e.Stats(); st.ViewsDroppedFull+st.ViewsDroppedInvalid != 0 {
					b.Fatalf("views dropped: %+v", st)
				}
			})
		}
	}
}

// BenchmarkExportBigView is one view of 10,000 distribution rows (13
// bounds, about 2.6 MB: one request) or 40,000 (about 10 MB, over the 4 MiB
// budget and so split by rows across requests), exported and received by a
// discarding agent process, per protocol. Reports ns/row and the process's
// CPU per row (cpu-ns/row: user + system, gRPC's included).
func BenchmarkExportBigView(b *testing.B) {
	for _, p := range []Protocol{ProtocolOpenCensus, ProtocolOTLP} {
		for _, rows := range []int{10_000, 40_000} {
			b.Run(fmt.Sprintf("proto=%s/rows=%d", p, rows), func(b *testing.B) {
				e, err := NewExporter(WithInsecure(), WithAddress(discardAgent(b)), WithProtocol(p), WithDataBundlerOptions(time.Hour, 1))
				if err != nil {
					b.Fatal(err)
				}
				defer e.Stop()
				vd := bigView("distribution", rows)
				export := func() {
					e.ExportView(vd)
					e.Flush() // handed to the stream (OpenCensus), acknowledged (OTLP)
				}
				export() // warm: the messages and row sizes are made once
				cpu0 := processCPU(b)
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					export()
				}
				b.StopTimer()
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
				b.ReportMetric(float64((processCPU(b)-cpu0).Nanoseconds())/float64(b.N*rows), "cpu-ns/row")
				if st := e.Stats(); st.ViewsExported != uint64(b.N+1) || st.ViewsDroppedInvalid != 0 || st.PointsDroppedOversize != 0 {
					b.Fatalf("dropped: %+v", st)
				}
			})
		}
	}
}

// processCPU is the user and system CPU time of this process so far.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
