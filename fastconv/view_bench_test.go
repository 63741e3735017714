package fastconv

import (
	"fmt"
	"testing"

	"go.opencensus.io/stats/view"
	"go.opencensus.io/tag"

	metricspb "github.com/zerocensus/ocagent/internal/ocproto/metrics/v1"
)

// vtScalarView is a sum or last-value view of a float measure with n rows
// carrying two tags each.
func vtScalarView(agg *view.Aggregation, n int) *view.Data {
	rows := make([]*view.Row, n)
	for i := range rows {
		var d view.AggregationData = &view.SumData{Value: float64(i) * 1.5}
		if agg.Type == view.AggTypeLastValue {
			d = &view.LastValueData{Value: float64(i) * 1.5}
		}
		rows[i] = &view.Row{
			Tags: []tag.Tag{{Key: vtKeyA, Value: fmt.Sprint("method", i%17)}, {Key: vtKeyB, Value: fmt.Sprint("status", i)}},
			Data: d,
		}
	}
	return vtData("scalar/view", "scalar", vtFloat, agg, []tag.Key{vtKeyA, vtKeyB}, rows)
}

// BenchmarkConvertView measures the steady state: the same view converted
// again and again into the same destination.
func BenchmarkConvertView(b *testing.B) {
	kinds := []struct {
		name string
		make func(n int) *view.Data
	}{
		{"count", vtCountView},
		{"sum", func(n int) *view.Data { return vtScalarView(view.Sum(), n) }},
		{"lastvalue", func(n int) *view.Data { return vtScalarView(view.LastValue(), n) }},
		{"distribution", func(n int) *view.Data { return vtDistView(n, false) }},
	}
	for _, k := range kinds {
		for _, rows := range []int{10, 1000} {
			b.Run(fmt.Sprintf("%s/rows=%d", k.name, rows), func(b *testing.B) {
				vd := k.make(rows)
				c := newOCViews()
				dst := new(metricspb.Metric)
				if err := c.Convert(dst, vd, "prefix"); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					if err := c.Convert(dst, vd, "prefix"); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
			})
		}
	}
}
