package ocagent

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	upagenttracepb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/trace/v1"
	uptracepb "github.com/census-instrumentation/opencensus-proto/gen-go/trace/v1"
	"go.opencensus.io/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/zerocensus/ocagent/fastconv"
	"github.com/zerocensus/ocagent/internal/otlpagent"
	collmetricspb "github.com/zerocensus/ocagent/internal/otlpproto/collector/metrics/v1"
	colltracepb "github.com/zerocensus/ocagent/internal/otlpproto/collector/trace/v1"
	tracepb "github.com/zerocensus/ocagent/internal/otlpproto/trace/v1"
	"github.com/zerocensus/ocagent/internal/testspans"
)

func startOTLPAgent(t *testing.T, opts ...otlpagent.Option) *otlpagent.Agent {
	t.Helper()
	a, err := otlpagent.Start(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	return a
}

func newOTLPExporter(t *testing.T, a *otlpagent.Agent, opts ...ExporterOption) *Exporter {
	t.Helper()
	e, err := NewExporter(append([]ExporterOption{WithProtocol(ProtocolOTLP), WithInsecure(), WithAddress(a.Addr()),
		WithServiceName("svc"), WithReconnectionPeriod(200 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Stop() })
	return e
}

func traceRequests(t *testing.T, a *otlpagent.Agent) []*colltracepb.ExportTraceServiceRequest {
	t.Helper()
	var out []*colltracepb.ExportTraceServiceRequest
	for _, r := range a.Requests() {
		if r.Method != otlpagent.TraceMethod {
			continue
		}
		req := new(colltracepb.ExportTraceServiceRequest)
		if err := req.UnmarshalVT(r.Body); err != nil {
			t.Fatal(err)
		}
		out = append(out, req)
	}
	return out
}

// TestOTLPSpansArrive: spans arrive as OTLP, in one resource of the
// translated Node (service.name and the rest) and one scope, each exactly
// the converter's output.
func TestOTLPSpansArrive(t *testing.T) {
	a := startOTLPAgent(t)
	e := newOTLPExporter(t, a, WithMaxBatchDelay(time.Hour)) // one batch, Flush's
	sds := []func() *trace.SpanData{testspans.Full, testspans.Typical, testspans.Small}
	for _, sd := range sds {
		e.ExportSpan(sd())
	}
	e.Flush()
	waitFor(t, e, "3 spans acknowledged", func() bool { return e.Stats().SpansExported >= 3 })
	if st := e.Stats(); st.SpansExported != 3 || st.Batches != 1 {
		t.Fatalf("stats %+v", st)
	}
	reqs := traceRequests(t, a)
	if len(reqs) != 1 || len(reqs[0].ResourceSpans) != 1 || len(reqs[0].ResourceSpans[0].ScopeSpans) != 1 {
		t.Fatalf("requests %v", reqs)
	}
	rs := reqs[0].ResourceSpans[0]
	attrs := map[string]string{}
	for _, kv := range rs.Resource.GetAttributes() {
		attrs[kv.Key] = fmt.Sprint(kv.Value.GetValue())
	}
	for _, k := range []string{"service.name", "process.pid", "telemetry.sdk.language", "opencensus.exporterversion", "opencensus.starttime"} {
		if attrs[k] == "" {
			t.Errorf("resource lacks %s: %v", k, attrs)
		}
	}
	if attrs["service.name"] != "&{svc}" {
		t.Errorf("service.name %s", attrs["service.name"])
	}
	spans := rs.ScopeSpans[0].Spans
	for i, sd := range sds {
		want := new(tracepb.Span)
		if err := want.UnmarshalVT(fastconv.NewSpanEncoder(fastconv.OTLP, fastconv.SpanOptions{}).Append(nil, sd())); err != nil {
			t.Fatal(err)
		}
		if !sortedSpan(spans[i]).EqualVT(sortedSpan(want)) {
			t.Errorf("span %d:\n got %v\nwant %v", i, spans[i], want)
		}
	}
}

// sortedSpan orders a span's attribute lists (their order means nothing).
func sortedSpan(s *tracepb.Span) *tracepb.Span {
	s = s.CloneVT()
	testspans.SortOTLPAttributes(s)
	return s
}

// TestOTLPViewsArrive: views become OTLP metrics on the metrics service.
func TestOTLPViewsArrive(t *testing.T) {
	a := startOTLPAgent(t)
	e := newOTLPExporter(t, a, WithMetricNamePrefix("app"))
	for _, agg := range testspans.Aggregations {
		e.ExportView(testspans.View(agg, 10, true))
	}
	e.Flush()
	waitFor(t, e, "4 views acknowledged", func() bool { return e.Stats().ViewsExported >= 4 })
	if st := e.Stats(); st.ViewsExported != 4 {
		t.Fatalf("stats %+v", st)
	}
	c := a.Counts()
	if c.Metrics != 4 || c.Points != 40 {
		t.Fatalf("agent counts %+v", c)
	}
	for _, r := range a.Requests() {
		if r.Method != otlpagent.MetricsMethod {
			continue
		}
		req := new(collmetricspb.ExportMetricsServiceRequest)
		if err := req.UnmarshalVT(r.Body); err != nil {
			t.Fatal(err)
		}
		for _, m := range req.ResourceMetrics[0].ScopeMetrics[0].Metrics {
			if !strings.HasPrefix(m.Name, "app/test/") {
				t.Errorf("metric name %q", m.Name)
			}
		}
	}
}

// TestOTLPRefusals: partial success and final errors are counted, never
// retried; retryable errors are retried until accepted.
func TestOTLPRefusals(t *testing.T) {
	a := startOTLPAgent(t, otlpagent.WithAnswer(func(method string, n int) (int, error) {
		switch {
		case method == otlpagent.MetricsMethod:
			return 3, nil // three data points of every metrics request
		case n == 1:
			return 2, nil // two spans of the first request
		case n == 2:
			return 0, status.Error(codes.InvalidArgument, "no")
		case n == 3:
			return 0, status.Error(codes.Unavailable, "later")
		}
		return 0, nil
	}))
	e := newOTLPExporter(t, a, WithMaxConcurrentExports(1))
	for batch := range 3 {
		for i := range 5 {
			e.ExportSpan(idSpan(batch*5 + i))
		}
		e.Flush()
		// Each request's outcome before the next is sent: the answers go
		// by the request's number.
		waitFor(t, e, fmt.Sprintf("the outcome of request %d", batch+1), func() bool {
			st := e.Stats()
			return st.SpansExported+st.SpansRejected >= uint64(5*(batch+1))
		})
		if batch == 0 && e.Stats().LastError == nil {
			t.Error("a partial success leaves its message in LastError")
		}
	}
	e.ExportView(testspans.View("count", 10, false))
	e.Flush()
	waitFor(t, e, "the view's outcome", func() bool { st := e.Stats(); return st.ViewsExported+st.ViewsRejected >= 1 })
	st := e.Stats()
	if st.SpansExported != 8 || st.SpansRejected != 7 || st.SendFailures != 1 || st.SpansResent != 5 {
		t.Errorf("spans: %+v", st)
	}
	if st.ViewsExported != 1 || st.PointsRejected != 3 {
		t.Errorf("views: %+v", st)
	}
}

// TestOTLPCallerBuiltRequest: ExportTraceServiceRequest is translated with
// the same mapping and sent as OTLP.
func TestOTLPCallerBuiltRequest(t *testing.T) {
	a := startOTLPAgent(t)
	e := newOTLPExporter(t, a)
	err := e.ExportTraceServiceRequest(&upagenttracepb.ExportTraceServiceRequest{Spans: []*uptracepb.Span{
		{TraceId: []byte{1, 2}, SpanId: []byte{3}, Name: &uptracepb.TruncatableString{Value: "caller"}, Kind: uptracepb.Span_SERVER}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.WaitSpans(1, wait); err != nil {
		t.Fatal(err)
	}
	s := traceRequests(t, a)[0].ResourceSpans[0].ScopeSpans[0].Spans[0]
	if s.Name != "caller" || s.Kind != tracepb.Span_SPAN_KIND_SERVER || len(s.TraceId) != 16 {
		t.Fatalf("span %v", s)
	}
}

// TestOTLPEnvironment: the OTEL_* variables configure the OTLP output,
// explicit options win, and a malformed one is an error from NewExporter.
func TestOTLPEnvironment(t *testing.T) {
	a := startOTLPAgent(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+a.Addr())
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-tenant=t1")
	t.Setenv("OTEL_SERVICE_NAME", "from-env")
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
	e, err := NewExporter(WithProtocol(ProtocolOTLP))
	if err != nil {
		t.Fatal(err)
	}
	e.ExportSpan(idSpan(1))
	e.ExportView(testspans.View("count", 1, false))
	stopAll(t, e)
	var traceHeaders, metricHeaders []string
	for _, r := range a.Requests() {
		if r.Method == otlpagent.TraceMethod {
			traceHeaders = r.Headers.Get("x-tenant")
		} else {
			metricHeaders = r.Headers.Get("x-tenant")
		}
	}
	if fmt.Sprint(traceHeaders) != "[t1]" || len(metricHeaders) != 0 {
		t.Errorf("headers: traces %v, metrics %v", traceHeaders, metricHeaders)
	}
	res := traceRequests(t, a)[0].ResourceSpans[0].Resource
	got := map[string]string{}
	for _, kv := range res.Attributes {
		got[kv.Key] = kv.Value.GetStringValue()
	}
	if got["service.name"] != "from-env" || got["deployment.environment"] != "test" {
		t.Errorf("resource %v", got)
	}

	// An explicit option wins over the variable.
	e, err = NewExporter(WithProtocol(ProtocolOTLP), WithServiceName("explicit"), WithAddress("127.0.0.1:1"), WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	if e.eps[0].address != "127.0.0.1:1" || e.node.ServiceInfo.Name != "explicit" {
		t.Errorf("explicit options lost: %s %s", e.eps[0].address, e.node.ServiceInfo.Name)
	}
	_ = e.Stop()

	t.Setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli")
	if _, err := NewExporter(WithProtocol(ProtocolOTLP)); err == nil || !strings.Contains(err.Error(), "OTEL_EXPORTER_OTLP_COMPRESSION") {
		t.Errorf("malformed variable: %v", err)
	}
	// In OpenCensus mode the OTLP variables mean nothing.
	if e, err := NewUnstartedExporter(WithInsecure()); err != nil || e.eps[0].address != "localhost:55678" {
		t.Errorf("OpenCensus mode read OTLP variables: %v", err)
	}
}

// TestOTLPDeliveryAcrossAbruptRestarts is the redeployed-Collector scenario
// over OTLP: 20,000 spans/s, the agent killed abruptly 10 times and back
// after 100-300 ms: nothing lost or dropped, and duplicates only from calls
// whose answer the kill cut (at most the calls in flight at each break).
// (The producers hold back at three quarters of the ring: see paced.)
func TestOTLPDeliveryAcrossAbruptRestarts(t *testing.T) {
	n, restarts, rate := 300_000, 10, 20_000.0
	if raceEnabled || testing.Short() {
		n, restarts = n/3, restarts/3
	}
	if raceEnabled {
		n, rate = n/4, rate/4
	}
	a := startOTLPAgent(t, otlpagent.WithDiscard())
	e, err := NewExporter(WithProtocol(ProtocolOTLP), WithInsecure(), WithAddress(a.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	done, stop := make(chan struct{}), make(chan struct{})
	var downs []time.Duration
	go func() {
		defer close(done)
		downs = redeploy(t, a, restarts, 300*time.Millisecond, stop, nil)
	}()
	var wg sync.WaitGroup
	var held [2]time.Duration
	for p := range 2 {
		wg.Add(1)
		go func() { defer wg.Done(); held[p] = paced(e, p*n/2, (p+1)*n/2, rate/2, typicalPad) }()
	}
	wg.Wait()
	close(stop)
	<-done
	waitFor(t, e, fmt.Sprintf("each of the %d spans at the agent or dropped", n), func() bool {
		e.Flush()
		u, _ := a.SpanIDs()
		return u+int64(e.Stats().SpansDroppedFull) >= int64(n)
	})
	stopAll(t, e)
	st := e.Stats()
	unique, dups := a.SpanIDs()
	t.Logf("OTLP: %d spans at %.0f/s, %d restarts (down %v): delivered %d, dropped %d, duplicates %d (%.2f%%; resent %d), send failures %d; producers held back %v",
		n, rate, len(downs), downs, unique, st.SpansDroppedFull, dups, 100*float64(dups)/float64(n), st.SpansResent, st.SendFailures, held)
	if st.SpansDroppedFull != 0 || unique != int64(n) {
		t.Errorf("lost %d, dropped %d", int64(n)-unique, st.SpansDroppedFull)
	}
	if uint64(dups) > st.SpansResent {
		t.Errorf("%d duplicates, only %d resent", dups, st.SpansResent)
	}
	// At most the calls in flight at each break are sent twice.
	if limit := int64(len(downs)+1) * DefaultMaxConcurrentExports * DefaultMaxBatchSpansOTLP; dups > limit {
		t.Errorf("%d duplicates, more than the %d spans of the calls in flight at %d breaks", dups, limit, len(downs))
	}
	if st.SpansExported != uint64(n) || st.SpansInDoubt != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestOTLPEndToEndAllocsPerSpan gates the OTLP client side, gRPC's unary
// calls included, at the default batch: at most 0.25 allocations per
// typical span in steady state.
func TestOTLPEndToEndAllocsPerSpan(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are gated without the race detector")
	}
	const n, steady = 100000, 30000
	sd := testspans.Typical()
	e, err := NewExporter(WithProtocol(ProtocolOTLP), WithInsecure(), WithAddress(discardAgent(t)),
		WithBlockWhenFull(time.Minute), WithMaxBatchDelay(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	for range steady {
		e.ExportSpan(sd)
	}
	e.Flush()
	exported(t, e, steady)
	calls0 := e.Stats().Batches
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		e.ExportSpan(sd)
	}
	e.Flush()
	exported(t, e, steady+n)
	runtime.ReadMemStats(&after)
	st := e.Stats()
	if st.SpansExported != steady+n {
		t.Fatalf("exported %d: %+v", st.SpansExported, st)
	}
	perSpan := float64(after.Mallocs-before.Mallocs) / n
	calls := st.Batches - calls0
	t.Logf("OTLP: %.4f allocs/span over %d spans (%d calls, %.1f allocs per call)", perSpan, n, calls,
		float64(after.Mallocs-before.Mallocs)/float64(calls))
	if perSpan > 0.25 {
		t.Errorf("%.4f allocs per span end to end, want <= 0.25", perSpan)
	}
}

// TestOTLPExportAllocs: ExportSpan and ExportView allocate nothing in OTLP
// mode either.
func TestOTLPExportAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are gated without the race detector")
	}
	e, err := NewExporter(WithProtocol(ProtocolOTLP), WithInsecure(), WithAddress(discardAgent(t)), WithSpanRingCapacity(1<<16))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	sd, vd := testspans.Typical(), testspans.View("count", 10, false)
	if got := testing.AllocsPerRun(1000, func() { e.ExportSpan(sd) }); got != 0 {
		t.Errorf("ExportSpan: %v allocs", got)
	}
	if got := testing.AllocsPerRun(100, func() { e.ExportView(vd) }); got != 0 {
		t.Errorf("ExportView: %v allocs", got)
	}
}

// BenchmarkOTLPInFlight is the throughput of the OTLP output against an
// agent that answers each call 20 ms late (a real link), for 1, 2, 4 and 8
// calls in flight: spans/s from the first ExportSpan until the agent has
// answered for every span. It chose DefaultMaxConcurrentExports.
func BenchmarkOTLPInFlight(b *testing.B) {
	for _, n := range []int{1, 2, 4, 8} {
		b.Run(fmt.Sprintf("inflight=%d", n), func(b *testing.B) {
			a, err := otlpagent.Start(otlpagent.WithDelay(20*time.Millisecond), otlpagent.WithDiscard())
			if err != nil {
				b.Fatal(err)
			}
			defer a.Stop()
			sd := testspans.Typical()
			const spans = 20_000
			b.ResetTimer()
			for range b.N {
				e, err := NewExporter(WithProtocol(ProtocolOTLP), WithInsecure(), WithAddress(a.Addr()),
					WithMaxConcurrentExports(n), WithBlockWhenFull(time.Minute))
				if err != nil {
					b.Fatal(err)
				}
				for range spans {
					e.ExportSpan(sd)
				}
				stopAll(b, e)
				if st := e.Stats(); st.SpansExported != spans {
					b.Fatalf("%+v", st)
				}
			}
			b.ReportMetric(float64(spans*b.N)/b.Elapsed().Seconds(), "spans/s")
		})
	}
}
