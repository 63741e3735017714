package bench

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	ocmetricdata "go.opencensus.io/metric/metricdata"
	"go.opencensus.io/metric/metricproducer"
	"go.opencensus.io/stats"
	"go.opencensus.io/stats/view"
	"go.opencensus.io/tag"
	"go.opentelemetry.io/otel/bridge/opencensus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	agent "github.com/zerocensus/ocagent/internal/countagent"
)

var aggregations = []struct {
	name string
	agg  func() *view.Aggregation
}{
	{"count", view.Count},
	{"sum", view.Sum},
	{"lastvalue", view.LastValue},
	{"distribution", func() *view.Aggregation { return view.Distribution(1, 2, 5, 10, 20, 50, 100) }},
}

var viewRows = []int{10, 1000}

// viewFixture is one view of a float measure with two tag keys and rows
// distinct tag values, in the two forms an exporter is handed it:
// OpenCensus's view.Data (what the view worker passes to ExportView) and
// OpenCensus's metricdata (what the worker's metric producer returns, which
// the OpenTelemetry bridge reads).
type viewFixture struct {
	vd *view.Data
	oc []*ocmetricdata.Metric
}

var (
	fixturesMu sync.Mutex
	fixtures   = map[string]*viewFixture{}
)

func getViewFixture(tb testing.TB, aggName string, agg func() *view.Aggregation, rows int) *viewFixture {
	tb.Helper()
	fixturesMu.Lock()
	defer fixturesMu.Unlock()
	id := fmt.Sprintf("%s/%d", aggName, rows)
	if f := fixtures[id]; f != nil {
		return f
	}
	method, status := tag.MustNewKey("method"), tag.MustNewKey("status")
	m := stats.Float64("bench/latency/"+id, "request latency", stats.UnitMilliseconds)
	v := &view.View{Name: "bench/latency_" + id, Description: "request latency by method and status",
		Measure: m, Aggregation: agg(), TagKeys: []tag.Key{method, status}}
	if err := view.Register(v); err != nil {
		tb.Fatal(err)
	}
	defer view.Unregister(v)
	start := time.Now()
	for i := 0; i < rows; i++ {
		ctx, err := tag.New(context.Background(),
			tag.Upsert(method, fmt.Sprint("method-", i%17)), tag.Upsert(status, fmt.Sprint("status-", i)))
		if err != nil {
			tb.Fatal(err)
		}
		stats.Record(ctx, m.M(float64(i%100)+0.5))
	}
	got, err := view.RetrieveData(v.Name)
	if err != nil {
		tb.Fatal(err)
	}
	if len(got) != rows {
		tb.Fatalf("%s: %d rows, want %d", id, len(got), rows)
	}
	f := &viewFixture{vd: &view.Data{View: v, Start: start, End: time.Now(), Rows: got}}
	for _, p := range metricproducer.GlobalManager().GetAll() {
		f.oc = append(f.oc, p.Read()...)
	}
	if len(f.oc) != 1 || len(f.oc[0].TimeSeries) != rows {
		tb.Fatalf("%s: producers read %d metrics", id, len(f.oc))
	}
	fixtures[id] = f
	return f
}

// staticProducer hands the OpenTelemetry bridge the same pre-built
// OpenCensus data at every collection.
type staticProducer struct{ m []*ocmetricdata.Metric }

func (p *staticProducer) Read() []*ocmetricdata.Metric { return p.m }

// warmViews is the number of views sent before the timer starts.
const warmViews = 20

// BenchmarkViews is one view of R rows exported until the agent has
// received it, one op at a time (as a reporting period with one view):
//
//   - ours, upstream: ExportView with the pre-built view.Data, then Flush
//     (one message per view; the batching delay is never waited for).
//   - otel: one collection of a ManualReader whose producer is the bridge's
//     opencensus.NewMetricProducer, reading the same pre-built OpenCensus
//     data, then the OTLP gRPC metric exporter's Export of the result: what a
//     periodic reader does every period. The bridge's conversion is in the
//     op, as the OpenCensus exporters' conversion of view.Data is in theirs;
//     neither includes the view worker's own work of making its data.
func BenchmarkViews(b *testing.B) {
	for _, a := range aggregations {
		for _, rows := range viewRows {
			for _, impl := range impls {
				b.Run(fmt.Sprintf("agg=%s/rows=%d/impl=%s", a.name, rows, impl), func(b *testing.B) {
					announce(b)
					f := getViewFixture(b, a.name, a.agg, rows)
					p := viewPipeline(b, impl, f)
					defer p.stop()
					warm(b, p, warmViews)
					measure(b, p, rows, "row", serial(b, p))
				})
			}
		}
	}
}

func viewPipeline(b *testing.B, impl string, f *viewFixture) pipeline {
	nop := func() {}
	switch impl {
	case implOurs, implOursOTLP:
		e, kind := newOurs(b), agent.OCMetrics
		if impl == implOursOTLP {
			e, kind = newOursOTLP(b), agent.OTLPMetrics
		}
		return pipeline{kind: kind,
			send:  func() { e.ExportView(f.vd); e.Flush() },
			flush: nop,
			stop:  func() { stopOrFail(b, "Stop", e.Stop()) }}
	case implUpstream:
		e := newUpstream(b)
		return pipeline{kind: agent.OCMetrics,
			send:  func() { e.ExportView(f.vd); e.Flush() },
			flush: nop,
			stop:  func() { stopOrFail(b, "Stop", e.Stop()) }}
	case implOTel:
		ctx := context.Background()
		sp := &staticProducer{f.oc}
		metricproducer.GlobalManager().AddProducer(sp)
		exp := newOTLPMetric(b)
		reader := sdkmetric.NewManualReader(sdkmetric.WithProducer(opencensus.NewMetricProducer()))
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		var rm metricdata.ResourceMetrics
		errs := otelErrors.Load()
		return pipeline{kind: agent.OTLPMetrics,
			send: func() {
				if err := reader.Collect(ctx, &rm); err != nil {
					b.Fatal(err)
				}
				if err := exp.Export(ctx, &rm); err != nil {
					b.Fatal(err)
				}
			},
			flush: nop,
			stop: func() {
				metricproducer.GlobalManager().DeleteProducer(sp)
				stopOrFail(b, "MeterProvider.Shutdown", mp.Shutdown(ctx))
				stopOrFail(b, "Exporter.Shutdown", exp.Shutdown(ctx))
				checkOTelErrors(b, errs)
			}}
	}
	b.Fatalf("unknown implementation %q", impl)
	return pipeline{}
}
