package testspans

import (
	"fmt"
	"time"

	"go.opencensus.io/metric/metricdata"
	"go.opencensus.io/stats"
	"go.opencensus.io/stats/view"
	"go.opencensus.io/tag"
	"go.opencensus.io/trace"
)

// The view shapes tests and benchmarks share.
var (
	KeyMethod = tag.MustNewKey("method")
	KeyStatus = tag.MustNewKey("status")
	IntM      = stats.Int64("test/int", "an int64 measure", stats.UnitDimensionless)
	FloatM    = stats.Float64("test/float", "a float64 measure", stats.UnitMilliseconds)
	ViewStart = time.Unix(1700000000, 123456789)
	ViewEnd   = time.Unix(1700000060, 987654321)
)

// Aggregations names the shapes View makes.
var Aggregations = []string{"count", "sum", "lastvalue", "distribution"}

// View returns a view of agg ("count", "sum", "lastvalue", "distribution")
// with n rows of two tags each (every third row lacking the status tag);
// sums and last values over the float measure; a distribution of 10 bounds
// whose every third bucket has an exemplar (with a SpanContext attachment
// and a string one) when exemplars is set.
func View(agg string, n int, exemplars bool) *view.Data {
	v := &view.View{Name: "test/" + agg, Description: agg + " view", TagKeys: []tag.Key{KeyMethod, KeyStatus}, Measure: FloatM}
	rows := make([]*view.Row, n)
	bounds := []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000}
	switch agg {
	case "count":
		v.Aggregation, v.Measure = view.Count(), IntM
	case "sum":
		v.Aggregation = view.Sum()
	case "lastvalue":
		v.Aggregation = view.LastValue()
	case "distribution":
		v.Aggregation = view.Distribution(bounds...)
	default:
		panic("testspans: unknown aggregation " + agg)
	}
	for i := range rows {
		tags := []tag.Tag{{Key: KeyMethod, Value: fmt.Sprint("method", i%17)}, {Key: KeyStatus, Value: fmt.Sprint("status", i)}}
		if i%3 == 2 {
			tags = tags[:1]
		}
		var d view.AggregationData
		switch agg {
		case "count":
			d = &view.CountData{Value: int64(i)}
		case "sum":
			d = &view.SumData{Value: float64(i) * 1.5}
		case "lastvalue":
			d = &view.LastValueData{Value: float64(i) * 1.5}
		case "distribution":
			dd := &view.DistributionData{Count: 100, Min: 0.5, Max: 900, Mean: 42, SumOfSquaredDev: 1234.5,
				CountPerBucket: make([]int64, len(bounds)+1), ExemplarsPerBucket: make([]*metricdata.Exemplar, len(bounds)+1)}
			for j := range dd.CountPerBucket {
				dd.CountPerBucket[j] = int64(i + j)
				if exemplars && j%3 == 0 {
					dd.ExemplarsPerBucket[j] = &metricdata.Exemplar{Value: float64(j), Timestamp: ViewEnd,
						Attachments: metricdata.Attachments{
							metricdata.AttachmentKeySpanContext: trace.SpanContext{TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5}},
							"user":                              "u42",
						}}
				}
			}
			d = dd
		}
		rows[i] = &view.Row{Tags: tags, Data: d}
	}
	return &view.Data{View: v, Start: ViewStart, End: ViewEnd, Rows: rows}
}
