package ocagent

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opencensus.io/metric/metricdata"
	"go.opencensus.io/metric/metricexport"
	"go.opencensus.io/metric/metricproducer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/zerocensus/ocagent/internal/otlpagent"
	collmetricspb "github.com/zerocensus/ocagent/internal/otlpproto/collector/metrics/v1"
	otlpmetricspb "github.com/zerocensus/ocagent/internal/otlpproto/metrics/v1"
)

// selfSeries is one self-metric as an agent decoded it: its unit and kind,
// and each series' value by its attributes.
type selfSeries struct {
	unit, kind string
	values     map[string]int64 // by error.type ("" for none)
	attrs      []map[string]string
}

// metricsBodies are the bodies of the OTLP metrics requests a agent took.
func metricsBodies(a *otlpagent.Agent) [][]byte {
	var out [][]byte
	for _, r := range a.Requests() {
		if r.Method == otlpagent.MetricsMethod {
			out = append(out, r.Body)
		}
	}
	return out
}

// lastSelfMetrics decodes the self-metrics of the last OTLP metrics request
// that carries them.
func lastSelfMetrics(t *testing.T, a *otlpagent.Agent) map[string]*selfSeries {
	t.Helper()
	return lastSelfMetricsIn(t, metricsBodies(a))
}

// lastSelfMetricsIn is lastSelfMetrics over request bodies.
func lastSelfMetricsIn(t *testing.T, bodies [][]byte) map[string]*selfSeries {
	t.Helper()
	var out map[string]*selfSeries
	for _, b := range bodies {
		req := new(collmetricspb.ExportMetricsServiceRequest)
		if err := req.UnmarshalVT(b); err != nil {
			t.Fatal(err)
		}
		got := map[string]*selfSeries{}
		for _, m := range req.ResourceMetrics[0].ScopeMetrics[0].Metrics {
			if !strings.HasPrefix(m.Name, "otel.sdk.") {
				continue
			}
			s := &selfSeries{unit: m.Unit, values: map[string]int64{}}
			var dps []*otlpmetricspb.NumberDataPoint
			switch d := m.Data.(type) {
			case *otlpmetricspb.Metric_Gauge:
				s.kind, dps = "gauge", d.Gauge.DataPoints
			case *otlpmetricspb.Metric_Sum:
				s.kind, dps = "sum", d.Sum.DataPoints
				if !d.Sum.IsMonotonic || d.Sum.AggregationTemporality != otlpmetricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE {
					t.Errorf("%s: not a monotonic cumulative sum", m.Name)
				}
			}
			for _, dp := range dps {
				attrs := map[string]string{}
				for _, kv := range dp.Attributes {
					attrs[kv.Key] = kv.GetValue().GetStringValue()
				}
				s.values[attrs["error.type"]] = dp.GetAsInt()
				s.attrs = append(s.attrs, attrs)
			}
			got[m.Name] = s
		}
		if len(got) > 0 {
			out = got
		}
	}
	return out
}

// TestSelfMetricsEqualStats: a report sent on the exporter's own metrics
// path, decoded at the agent, has the semantic conventions' names, units,
// kinds and attributes, and the values of Stats at the moment of the
// report.
func TestSelfMetricsEqualStats(t *testing.T) {
	a := startOTLPAgent(t)
	e := newOTLPExporter(t, a, WithSelfMetrics(time.Hour), WithSpanRingCapacity(64))
	for i := range 20 {
		e.ExportSpan(idSpan(i))
	}
	if err := e.ExportMetrics(t.Context(), metricdataSample()); err != nil {
		t.Fatal(err)
	}
	e.ExportView(bigView("distribution", 7))
	e.Flush()
	st := e.Stats() // nothing moves now: the report's snapshot is this one
	e.self.report()
	e.Flush()
	got := lastSelfMetrics(t, a)
	if got == nil {
		t.Fatal("no self-metrics arrived")
	}
	_, port, _ := net.SplitHostPort(a.Addr())
	want := map[string]struct {
		unit, kind string
		values     map[string]int64
		exporter   string // component type; "" for the processor
	}{
		"otel.sdk.exporter.span.inflight": {"{span}", "gauge", map[string]int64{"": int64(st.SpansInFlight)}, "otlp_grpc_span_exporter"},
		"otel.sdk.exporter.span.exported": {"{span}", "sum", map[string]int64{"": int64(st.SpansExported), "rejected": int64(st.SpansRejected - st.SpansRefused),
			"oversize": int64(st.SpansDroppedOversize)}, "otlp_grpc_span_exporter"},
		"otel.sdk.exporter.metric_data_point.inflight": {"{data_point}", "gauge", map[string]int64{"": int64(st.PointsInFlight)}, "otlp_grpc_metric_exporter"},
		"otel.sdk.exporter.metric_data_point.exported": {"{data_point}", "sum", map[string]int64{"": int64(st.PointsExported),
			"rejected": int64(st.PointsRejected), "oversize": int64(st.PointsDroppedOversize), "invalid": int64(st.PointsDroppedInvalid)}, "otlp_grpc_metric_exporter"},
		"otel.sdk.processor.span.queue.size":     {"{span}", "gauge", map[string]int64{"": int64(st.SpansQueued - st.SpansInFlight)}, ""},
		"otel.sdk.processor.span.queue.capacity": {"{span}", "gauge", map[string]int64{"": 64}, ""},
		"otel.sdk.processor.span.processed": {"{span}", "sum", map[string]int64{"": int64(st.SpansExported + st.SpansRejected + st.SpansDroppedOversize),
			"queue_full": int64(st.SpansDroppedFull), "already_shutdown": int64(st.SpansDroppedNotRunning), "dropped_at_stop": int64(st.SpansDroppedAtStop)}, ""},
	}
	// Data points: 5 metrics of 2 series of one point, and a view of 7
	// rows.
	if st.SpansExported != 20 || st.MetricsExported != 5 || st.ViewsExported != 1 || st.PointsExported != 17 {
		t.Fatalf("stats %+v", st)
	}
	for name, w := range want {
		g := got[name]
		if g == nil {
			t.Errorf("%s missing", name)
			continue
		}
		if g.unit != w.unit || g.kind != w.kind || len(g.values) != len(w.values) {
			t.Errorf("%s: unit %q kind %s values %v", name, g.unit, g.kind, g.values)
		}
		for k, v := range w.values {
			if g.values[k] != v {
				t.Errorf("%s{error.type=%q} = %d, Stats say %d", name, k, g.values[k], v)
			}
		}
		for _, at := range g.attrs {
			typ := w.exporter
			if typ == "" {
				typ = "batching_span_processor"
				if at["server.address"] != "" || at["server.port"] != "" {
					t.Errorf("%s: processor with server attributes %v", name, at)
				}
			} else if at["server.address"] != "127.0.0.1" || at["server.port"] != port {
				t.Errorf("%s: attributes %v", name, at)
			}
			if at["otel.component.type"] != typ || !strings.HasPrefix(at["otel.component.name"], typ+"/") {
				t.Errorf("%s: attributes %v", name, at)
			}
		}
	}
}

// TestSelfMetricsProducer: WithSelfMetrics(0) registers a producer with the
// global manager while the exporter runs; the metricexport reader exports it
// (through this very exporter, as OpenCensus metrics), with Stats' values.
func TestSelfMetricsProducer(t *testing.T) {
	a := startAgent(t)
	e := newExporter(t, a, WithSelfMetrics(0))
	registered := func() bool {
		for _, p := range metricproducer.GlobalManager().GetAll() {
			if p == e.SelfMetrics() {
				return true
			}
		}
		return false
	}
	if !registered() {
		t.Fatal("producer not registered at Start")
	}
	for i := range 7 {
		e.ExportSpan(idSpan(i))
	}
	e.Flush()
	st := e.Stats()
	metricexport.NewReader().ReadAndExport(e)
	e.Flush()
	waitFor(t, nil, "the condition of selfmetrics_test.go:171", func() bool {
		for _, m := range a.Metrics() {
			if m.MetricDescriptor.Name != "otel.sdk.exporter.span.exported" {
				continue
			}
			d := m.MetricDescriptor
			if d.Unit != "{span}" || len(d.LabelKeys) != 5 || d.LabelKeys[4].Key != "error.type" {
				t.Fatalf("descriptor %v", d)
			}
			ts := m.Timeseries[0]
			if ts.LabelValues[1].Value != "opencensus_grpc_span_exporter" || ts.LabelValues[4].HasValue {
				t.Fatalf("labels %v", ts.LabelValues)
			}
			return ts.Points[0].GetInt64Value() == int64(st.SpansExported) && st.SpansExported == 7
		}
		return false
	})
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	if registered() {
		t.Error("producer still registered after Stop")
	}
}

// TestSelfMetricsQueueFull: a drop storm (the agent holds every trace call,
// the ring fills) shows up as processed{error.type=queue_full}, equal to
// Stats, at the agent.
func TestSelfMetricsQueueFull(t *testing.T) {
	a := startOTLPAgent(t, otlpagent.WithHold(func(method string, _ int) bool { return method == otlpagent.TraceMethod }))
	e := newOTLPExporter(t, a, WithSelfMetrics(time.Hour), WithSpanRingCapacity(8), WithMaxBatchSpans(2),
		WithMaxConcurrentExports(1))
	t.Cleanup(func() { // the held call would keep Stop for its whole deadline
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_ = e.StopContext(ctx)
	})
	// One call is held; the ring and the batch take a few more; then drops.
	for i := range 100 {
		e.ExportSpan(idSpan(i))
	}
	st := e.Stats()
	if st.SpansDroppedFull < 80 {
		t.Fatalf("stats %+v", st)
	}
	e.self.report()
	// Flush would wait for the held span call; flush the metrics alone.
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	_ = e.metrics.Flush(ctx).Wait(ctx)
	waitFor(t, nil, "the condition of selfmetrics_test.go:221", func() bool {
		got := lastSelfMetrics(t, a)
		p := got["otel.sdk.processor.span.processed"]
		return p != nil && p.values["queue_full"] == int64(e.Stats().SpansDroppedFull) && p.values["queue_full"] >= int64(st.SpansDroppedFull)
	})
}

// TestSelfMetricsRefusals: an agent refusing the trace calls shows up in
// exported{error.type=PERMISSION_DENIED} (the status code, not a partial
// success's "rejected") and in operation.duration under the refusal's
// status code; the metrics calls it accepts under OK.
func TestSelfMetricsRefusals(t *testing.T) {
	a := startOTLPAgent(t, otlpagent.WithAnswer(func(method string, _ int) (int, error) {
		if method == otlpagent.TraceMethod {
			return 0, status.Error(codes.PermissionDenied, "no")
		}
		return 0, nil
	}))
	e := newOTLPExporter(t, a, WithSelfMetrics(time.Hour))
	for i := range 9 {
		e.ExportSpan(idSpan(i))
	}
	e.Flush()
	st := e.Stats()
	if st.SpansRejected != 9 || st.SpansRefused != 9 || st.SpansExported != 0 {
		t.Fatalf("stats %+v", st)
	}
	e.self.report()
	e.Flush()
	got := lastSelfMetrics(t, a)["otel.sdk.exporter.span.exported"]
	if got == nil || got.values["PERMISSION_DENIED"] != 9 || got.values["rejected"] != 0 || got.values[""] != 0 {
		t.Fatalf("exported %+v", got)
	}
	// A second report carries the first one's call among the metric
	// exporter's accepted ones.
	e.self.report()
	e.Flush()
	h := lastDurations(t, a)
	refused := h["otlp_grpc_span_exporter|PERMISSION_DENIED|PERMISSION_DENIED"]
	// One call each, unless a batch delay happened to cut a batch in two.
	if refused == nil || refused.Count < 1 || len(refused.BucketCounts) != 15 || refused.GetSum() <= 0 {
		t.Errorf("refused calls: %v (all: %v)", refused, h)
	}
	if ok := h["otlp_grpc_metric_exporter||OK"]; ok == nil || ok.Count < 1 {
		t.Errorf("accepted metrics calls: %v (all: %v)", ok, h)
	}
}

// lastDurations decodes operation.duration in the last OTLP metrics request
// that has it, by component type, error.type and status code (gRPC's or
// HTTP's).
func lastDurations(t *testing.T, a *otlpagent.Agent) map[string]*otlpmetricspb.HistogramDataPoint {
	t.Helper()
	return lastDurationsIn(t, metricsBodies(a))
}

// lastDurationsIn is lastDurations over request bodies.
func lastDurationsIn(t *testing.T, bodies [][]byte) map[string]*otlpmetricspb.HistogramDataPoint {
	t.Helper()
	var out map[string]*otlpmetricspb.HistogramDataPoint
	for _, b := range bodies {
		req := new(collmetricspb.ExportMetricsServiceRequest)
		if err := req.UnmarshalVT(b); err != nil {
			t.Fatal(err)
		}
		for _, m := range req.ResourceMetrics[0].ScopeMetrics[0].Metrics {
			if m.Name != "otel.sdk.exporter.operation.duration" {
				continue
			}
			if m.Unit != "s" || m.GetHistogram() == nil {
				t.Fatalf("duration: %v", m)
			}
			out = map[string]*otlpmetricspb.HistogramDataPoint{}
			for _, dp := range m.GetHistogram().DataPoints {
				at := map[string]string{}
				for _, kv := range dp.Attributes {
					at[kv.Key] = kv.GetValue().GetStringValue()
				}
				if at["rpc.response.status_code"] != "" && at["http.response.status_code"] != "" {
					t.Fatalf("duration with both status attributes: %v", at)
				}
				out[at["otel.component.type"]+"|"+at["error.type"]+"|"+at["rpc.response.status_code"]+at["http.response.status_code"]] = dp
			}
		}
	}
	return out
}

// TestSelfMetricsReportedEveryPeriod: the exporter sends its report by
// itself, and once more at Stop.
func TestSelfMetricsReportedEveryPeriod(t *testing.T) {
	a := startOTLPAgent(t)
	// One call at a time: the agent sees the reports in the order queued.
	e := newOTLPExporter(t, a, WithSelfMetrics(10*time.Millisecond), WithDataBundlerOptions(5*time.Millisecond, 100),
		WithMaxConcurrentExports(1))
	waitFor(t, nil, "the condition of selfmetrics_test.go:308", func() bool { return e.Stats().MetricsExported >= 8 }) // a report (8 metrics) acknowledged
	before := e.Stats().PointsExported
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	after := e.Stats().PointsExported
	// The last report, queued at Stop, carries what the reports before it
	// had exported when it was read: at least what we saw before Stop, and
	// at most what was exported in the end, less itself.
	// In data points: the last report has at least 15 (one per series).
	got := lastSelfMetrics(t, a)["otel.sdk.exporter.metric_data_point.exported"]
	if got == nil || got.values[""] < int64(before) || got.values[""] > int64(after)-15 {
		t.Fatalf("metric_data_point.exported %+v; exported %d before Stop, %d after", got, before, after)
	}
}

// TestSelfMetricsReadAllocs: the cost of one report, in allocations.
func TestSelfMetricsReadAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are gated without the race detector")
	}
	e, err := NewUnstartedExporter(WithInsecure(), WithAddress("127.0.0.1:1"), WithSelfMetrics(0))
	if err != nil {
		t.Fatal(err)
	}
	p := e.SelfMetrics()
	var ms []*metricdata.Metric
	got := testing.AllocsPerRun(100, func() { ms = p.Read() })
	if len(ms) != 8 {
		t.Fatalf("%d metrics", len(ms))
	}
	t.Logf("Read: %v allocs", got)
	if got > 40 {
		t.Errorf("Read: %v allocs, want at most 40", got)
	}
}

// BenchmarkSelfMetricsRead is the cost of one report of an exporter that
// has worked (counters past 255, which box into Point.Value with an
// allocation; OTLP call durations for two components).
func BenchmarkSelfMetricsRead(b *testing.B) {
	for _, otlp := range []bool{false, true} {
		b.Run(map[bool]string{false: "opencensus", true: "otlp"}[otlp], func(b *testing.B) {
			opts := []ExporterOption{WithInsecure(), WithSelfMetrics(0), WithServiceName("svc")}
			if otlp {
				a, err := otlpagent.Start(otlpagent.WithDiscard())
				if err != nil {
					b.Fatal(err)
				}
				defer a.Stop()
				opts = append(opts, WithProtocol(ProtocolOTLP), WithAddress(a.Addr()))
			} else {
				opts = append(opts, WithAddress(discardAgent(b)))
			}
			e, err := NewExporter(opts...)
			if err != nil {
				b.Fatal(err)
			}
			defer e.Stop()
			for i := range 1000 {
				e.ExportSpan(idSpan(i))
			}
			e.Flush()
			_ = e.ExportMetrics(b.Context(), metricdataSample())
			e.Flush()
			p := e.SelfMetrics()
			b.ReportAllocs()
			for b.Loop() {
				_ = p.Read()
			}
		})
	}
}

// TestSelfMetricsLastReportAtStop: with a period that never comes, Stop
// still sends the last report, on a metrics path it starts for it.
func TestSelfMetricsLastReportAtStop(t *testing.T) {
	a := startOTLPAgent(t)
	e := newOTLPExporter(t, a, WithSelfMetrics(time.Hour))
	for i := range 3 {
		e.ExportSpan(idSpan(i))
	}
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	// The report is read as Stop begins: each span is processed, queued or
	// in flight then.
	got := lastSelfMetrics(t, a)
	p, q, f := got["otel.sdk.processor.span.processed"], got["otel.sdk.processor.span.queue.size"], got["otel.sdk.exporter.span.inflight"]
	if p == nil || q == nil || f == nil || p.values[""]+q.values[""]+f.values[""] != 3 {
		t.Fatalf("processed %+v, queued %+v, in flight %+v", p, q, f)
	}
	if st := e.Stats(); st.MetricsExported != 8 {
		t.Errorf("stats %+v", st)
	}
}

// TestSelfMetricsOTLPHTTP: over OTLP/HTTP the components are the
// conventions' otlp_http_* exporters, an agent refusing the trace POSTs
// with 403 shows up in span.exported{error.type="403"}, and
// operation.duration carries http.response.status_code: 403 for the
// refused POSTs, 200 for the accepted metrics.
func TestSelfMetricsOTLPHTTP(t *testing.T) {
	a := startHTTPAgent(t, nil)
	a.refuse = map[string]int{"/v1/traces": http.StatusForbidden}
	e := newHTTPExporter(t, a, WithSelfMetrics(time.Hour))
	for i := range 6 {
		e.ExportSpan(idSpan(i))
	}
	e.Flush()
	if st := e.Stats(); st.SpansRefused != 6 || st.SpansExported != 0 {
		t.Fatalf("stats %+v", st)
	}
	e.self.report()
	e.Flush()
	e.self.report() // carries the first report's POST
	e.Flush()
	var bodies [][]byte
	for _, r := range a.requests("/v1/metrics") {
		bodies = append(bodies, r.body)
	}
	got := lastSelfMetricsIn(t, bodies)
	exp := got["otel.sdk.exporter.span.exported"]
	if exp == nil || exp.values["403"] != 6 || exp.values[""] != 0 || exp.values["rejected"] != 0 {
		t.Fatalf("span.exported %+v", exp)
	}
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(a.srv.URL, "http://"))
	for _, at := range exp.attrs {
		if at["otel.component.type"] != "otlp_http_span_exporter" || at["server.address"] != "127.0.0.1" || at["server.port"] != port {
			t.Errorf("attributes %v", at)
		}
	}
	if p := got["otel.sdk.exporter.metric_data_point.exported"]; p == nil || p.attrs[0]["otel.component.type"] != "otlp_http_metric_exporter" || p.values[""] < 15 {
		t.Errorf("metric_data_point.exported %+v", p)
	}
	h := lastDurationsIn(t, bodies)
	if d := h["otlp_http_span_exporter|403|403"]; d == nil || d.Count < 1 {
		t.Errorf("refused POSTs: %v (all: %v)", d, h)
	}
	if d := h["otlp_http_metric_exporter||200"]; d == nil || d.Count < 1 {
		t.Errorf("accepted POSTs: %v (all: %v)", d, h)
	}
}

// TestSelfMetricsOpenCensusDurations: OpenCensus output has
// operation.duration too, one observation per batch from its hand-over to
// the transport until a stream took it (no status attribute: the stream
// has no answers); batches that never reached a stream before Stop are
// CANCELLED.
func TestSelfMetricsOpenCensusDurations(t *testing.T) {
	durations := func(ms []*metricdata.Metric) map[string]int64 {
		out := map[string]int64{}
		for _, m := range ms {
			if m.Descriptor.Name != "otel.sdk.exporter.operation.duration" {
				continue
			}
			for _, k := range m.Descriptor.LabelKeys {
				if strings.HasSuffix(k.Key, ".status_code") {
					t.Errorf("OpenCensus duration with %s", k.Key)
				}
			}
			for _, ts := range m.TimeSeries {
				out[ts.LabelValues[1].Value+"|"+ts.LabelValues[4].Value] += ts.Points[0].Value.(*metricdata.Distribution).Count
			}
		}
		return out
	}
	a := startAgent(t)
	e := newExporter(t, a, WithSelfMetrics(0), WithMaxBatchDelay(time.Hour))
	for i := range 5 {
		e.ExportSpan(idSpan(i))
		e.Flush() // one batch each
	}
	if d := durations(e.SelfMetrics().Read()); d["opencensus_grpc_span_exporter|"] != 5 || len(d) != 1 {
		t.Fatalf("durations %v, want 5 batches taken by a stream", d)
	}

	// Nobody listens: batches wait for a stream until Stop.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	e2, err := NewExporter(WithInsecure(), WithAddress(addr), WithSelfMetrics(0), WithMaxBatchDelay(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		e2.ExportSpan(idSpan(i))
		e2.Flush() // the batch is kept for the next stream: Flush does not wait for the agent
	}
	p := e2.SelfMetrics()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_ = e2.StopContext(ctx)
	st := e2.Stats()
	d := durations(p.Read())
	if st.SpansDroppedAtStop != 3 || d["opencensus_grpc_span_exporter|CANCELLED"] < 1 || d["opencensus_grpc_span_exporter|"] != 0 {
		t.Fatalf("durations %v, stats %+v", d, st)
	}
}
