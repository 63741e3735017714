package ocagent

import (
	"context"
	"testing"
	"time"

	upmetricspb "github.com/census-instrumentation/opencensus-proto/gen-go/metrics/v1"
	"go.opencensus.io/stats"
	"go.opencensus.io/stats/view"
	"go.opencensus.io/tag"
)

// TestViewsEndToEnd registers real views, records measurements and lets
// OpenCensus's own view worker call ExportView.
func TestViewsEndToEnd(t *testing.T) {
	a := startAgent(t)
	e := newExporter(t, a, WithMetricNamePrefix("app"), WithDataBundlerOptions(20*time.Millisecond, 10))
	key := tag.MustNewKey("method")
	lat := stats.Float64("e2e/latency", "latency", "ms")
	views := []*view.View{
		{Name: "e2e/latency_dist", Measure: lat, Aggregation: view.Distribution(10, 100), TagKeys: []tag.Key{key}},
		{Name: "e2e/latency_count", Measure: lat, Aggregation: view.Count(), TagKeys: []tag.Key{key}},
	}
	if err := view.Register(views...); err != nil {
		t.Fatal(err)
	}
	defer view.Unregister(views...)
	view.RegisterExporter(e)
	defer view.UnregisterExporter(e)
	view.SetReportingPeriod(20 * time.Millisecond)
	defer view.SetReportingPeriod(10 * time.Second)

	ctx, _ := tag.New(context.Background(), tag.Upsert(key, "get"))
	for _, v := range []float64{5, 50, 500} {
		stats.Record(ctx, lat.M(v))
	}
	var dist *upmetricspb.Metric
	waitFor(t, e, "the distribution of 3 measurements at the agent", func() bool {
		for _, m := range a.Metrics() {
			if m.GetMetricDescriptor().GetName() == "app/e2e/latency_dist" && len(m.Timeseries) == 1 &&
				m.Timeseries[0].Points[0].GetDistributionValue().GetCount() == 3 {
				dist = m
				return true
			}
		}
		return false
	})
	d := dist.MetricDescriptor
	if d.Type != upmetricspb.MetricDescriptor_CUMULATIVE_DISTRIBUTION || d.Unit != "ms" || d.LabelKeys[0].Key != "method" {
		t.Errorf("descriptor %v", d)
	}
	ts := dist.Timeseries[0]
	if lv := ts.LabelValues[0]; lv.Value != "get" || !lv.HasValue {
		t.Errorf("label value %v", lv)
	}
	dv := ts.Points[0].GetDistributionValue()
	if dv.Sum != 555 || len(dv.Buckets) != 3 || dv.Buckets[0].Count != 1 || dv.Buckets[2].Count != 1 {
		t.Errorf("distribution %v", dv)
	}
	if b := dv.BucketOptions.GetExplicit().GetBounds(); len(b) != 2 || b[1] != 100 {
		t.Errorf("bounds %v", b)
	}
	ms := a.MetricsStreams()
	if ms[0].Messages[0].Node == nil {
		t.Error("metrics stream must start with the Node")
	}
	if e.Stats().ViewsExported == 0 {
		t.Errorf("stats %+v", e.Stats())
	}
}

func TestExportViewInvalidCounted(t *testing.T) {
	a := startAgent(t)
	e := newExporter(t, a)
	e.ExportView(&view.Data{}) // no View
	e.ExportView(nil)          // ignored, as upstream
	e.Flush()
	if st := e.Stats(); st.ViewsDroppedInvalid != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestExportViewAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are gated without the race detector")
	}
	e, err := NewExporter(WithInsecure(), WithAddress(discardAgent(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	vd := &view.Data{View: &view.View{Name: "v", Measure: stats.Int64("m", "", ""), Aggregation: view.Count()}}
	if got := testing.AllocsPerRun(1000, func() { e.ExportView(vd) }); got != 0 {
		t.Errorf("ExportView: %v allocs, want 0", got)
	}
}
