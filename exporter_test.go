package ocagent

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	upagenttracepb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/trace/v1"
	uptracepb "github.com/census-instrumentation/opencensus-proto/gen-go/trace/v1"
	"go.opencensus.io/resource"
	"go.opencensus.io/trace"
	"google.golang.org/grpc/credentials"
	_ "google.golang.org/grpc/encoding/gzip"
	"google.golang.org/protobuf/proto"

	"github.com/zerocensus/ocagent/internal/mockagent"
)

func startAgent(t *testing.T, opts ...mockagent.Option) *mockagent.Agent {
	t.Helper()
	a, err := mockagent.Start(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	return a
}

func newExporter(t *testing.T, a *mockagent.Agent, opts ...ExporterOption) *Exporter {
	t.Helper()
	e, err := NewExporter(append([]ExporterOption{WithInsecure(), WithAddress(a.Addr()), WithServiceName("svc"),
		WithReconnectionPeriod(200 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Stop() })
	return e
}

func span(i int) *trace.SpanData {
	return &trace.SpanData{
		SpanContext: trace.SpanContext{TraceID: trace.TraceID{byte(i), byte(i >> 8), 1}, SpanID: trace.SpanID{byte(i), byte(i >> 8), 2}},
		Name:        "span", StartTime: time.Unix(100, 0), EndTime: time.Unix(101, 0),
		Attributes: map[string]any{"i": int64(i)},
	}
}

func spanIndex(s *uptracepb.Span) int { return int(s.SpanId[0]) | int(s.SpanId[1])<<8 }

func TestSpansArriveWithNodeFirst(t *testing.T) {
	t.Setenv("OC_RESOURCE_TYPE", "test-type")
	t.Setenv("OC_RESOURCE_LABELS", `a="1",b="2"`)
	a := startAgent(t)
	// No delay to cut a batch early on a stalled machine: 10, 10, then Flush's 5.
	e := newExporter(t, a, WithMaxBatchSpans(10), WithMaxBatchDelay(time.Hour))
	for i := 0; i < 25; i++ {
		e.ExportSpan(span(i))
	}
	e.Flush()
	if err := a.WaitSpans(25, wait); err != nil {
		t.Fatal(err)
	}
	streams := a.TraceStreams()
	if len(streams) != 1 {
		t.Fatalf("%d trace streams, want 1", len(streams))
	}
	msgs := streams[0].Messages
	first := msgs[0]
	if first.Node == nil || len(first.Spans) != 0 {
		t.Fatalf("first message must carry the Node and no spans: %v", first)
	}
	if got := first.Node.GetServiceInfo().GetName(); got != "svc" {
		t.Errorf("service name %q", got)
	}
	if !proto.Equal(first.Node, NodeWithStartTime("svc")) {
		t.Errorf("node %v differs from NodeWithStartTime", first.Node)
	}
	for i, m := range msgs {
		if m.Resource.GetType() != "test-type" || m.Resource.GetLabels()["b"] != "2" {
			t.Errorf("message %d resource = %v", i, m.Resource)
		}
		if i > 0 && (m.Node != nil || len(m.Spans) > 10) {
			t.Errorf("message %d: node %v, %d spans (max 10)", i, m.Node, len(m.Spans))
		}
	}
	seen := map[int]bool{}
	for _, s := range a.Spans() {
		seen[spanIndex(s)] = true
	}
	if len(seen) != 25 {
		t.Errorf("%d distinct spans arrived, want 25", len(seen))
	}
	if st := e.Stats(); st.SpansExported != 25 || st.Batches != 3 {
		t.Errorf("stats %+v", st)
	}
}

func TestBatchSentAtMaxDelay(t *testing.T) {
	a := startAgent(t)
	e := newExporter(t, a, WithMaxBatchDelay(20*time.Millisecond))
	e.ExportSpan(span(1))
	if err := a.WaitSpans(1, wait); err != nil { // no Flush: the delay sends it
		t.Fatal(err)
	}
}

func TestStartStopSemantics(t *testing.T) {
	a := startAgent(t)
	e, err := NewUnstartedExporter(WithInsecure(), WithAddress(a.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	e.ExportSpan(span(1)) // before Start: no panic, counted
	e.Flush()
	if err := e.ExportTraceServiceRequest(&upagenttracepb.ExportTraceServiceRequest{Spans: []*uptracepb.Span{{}}}); !errors.Is(err, errNotStarted) {
		t.Errorf("ExportTraceServiceRequest before Start: %v", err)
	}
	if err := e.Stop(); err == nil || err.Error() != "not started" {
		t.Errorf("Stop before Start = %v, want not started", err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err == nil || err.Error() != "already started" {
		t.Errorf("second Start = %v", err)
	}
	e.ExportSpan(span(2))
	stopAll(t, e)
	if err := a.WaitSpans(1, wait); err != nil {
		t.Fatal("Stop must send what was queued: ", err)
	}
	// As upstream: an exporter no longer running answers "not started".
	if err := e.Stop(); err == nil || err.Error() != "not started" {
		t.Errorf("second Stop = %v, want not started", err)
	}
	e.ExportSpan(span(3)) // after Stop
	e.Flush()
	if err := e.ExportTraceServiceRequest(&upagenttracepb.ExportTraceServiceRequest{Spans: []*uptracepb.Span{{}}}); err == nil || err.Error() != "stopped" {
		t.Errorf("ExportTraceServiceRequest after Stop: %v", err)
	}
	if err := e.Start(); err == nil {
		t.Error("Start after Stop must fail")
	}
	if st := e.Stats(); st.SpansDroppedNotRunning != 2 || st.SpansExported != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestHeadersOnEveryStream(t *testing.T) {
	a := startAgent(t)
	e := newExporter(t, a, WithHeaders(map[string]string{"x-token": "secret"}))
	e.ExportSpan(span(1))
	e.Flush()
	if err := e.ExportMetricsServiceRequest(sampleMetrics()); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitSpans(1, wait); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitConfigStreams(1, wait); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitMetrics(1, wait); err != nil {
		t.Fatal(err)
	}
	check := func(kind string, md map[string][]string) {
		if got := md["x-token"]; len(got) != 1 || got[0] != "secret" {
			t.Errorf("%s stream headers = %v", kind, md)
		}
	}
	check("trace", a.TraceStreams()[0].Headers)
	check("config", a.ConfigStreams()[0].Headers)
	check("metrics", a.MetricsStreams()[0].Headers)
	if ms := a.MetricsStreams()[0].Messages; ms[0].Node == nil {
		t.Error("metrics stream must start with the Node")
	}
}

func TestTLS(t *testing.T) {
	cert, roots, err := mockagent.SelfSignedCert()
	if err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, mockagent.WithTLS(cert))
	e, err := NewExporter(WithAddress(a.Addr()), WithTLSCredentials(credentials.NewClientTLSFromCert(roots, "")))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	e.ExportSpan(span(1))
	e.Flush()
	if err := a.WaitSpans(1, wait); err != nil {
		t.Fatal(err)
	}
}

func TestGzip(t *testing.T) {
	a := startAgent(t)
	e := newExporter(t, a, UseCompressor("gzip"))
	for i := 0; i < 100; i++ {
		e.ExportSpan(span(i))
	}
	e.Flush()
	if err := a.WaitSpans(100, wait); err != nil {
		t.Fatal(err)
	}
	if e.Stats().LastError != nil {
		t.Fatal(e.Stats().LastError)
	}
}

func TestNoTransportSecurityIsAnError(t *testing.T) {
	_, err := NewExporter(WithAddress("127.0.0.1:1"))
	if err == nil || !strings.Contains(err.Error(), "WithInsecure") {
		t.Fatalf("err = %v", err)
	}
}

func TestInvalidOptions(t *testing.T) {
	for name, opt := range map[string]ExporterOption{
		"ring":     WithSpanRingCapacity(0),
		"batch":    WithMaxBatchSpans(-1),
		"delay":    WithMaxBatchDelay(0),
		"bytes":    WithMaxBatchBytes(10),
		"prewarm":  WithPoolPrewarm(-1),
		"block":    WithBlockWhenFull(0),
		"ringsize": WithSpanRingCapacity(1 << 30),
		"confirm":  WithConfirmBytes(-1),
		"age":      WithMaxStreamAge(-time.Second),
		"replay":   WithReplayBytes(-1),
	} {
		if _, err := NewUnstartedExporter(WithInsecure(), opt); err == nil {
			t.Errorf("%s: invalid option accepted", name)
		}
	}
	if _, err := NewUnstartedExporter(WithSpanRingCapacity(8), WithMaxBatchSpans(16)); err == nil {
		t.Error("batch larger than ring accepted")
	}
	// A default batch is capped at the ring instead: a ring smaller than the
	// default batch (300, or 2048 with OTLP) is a valid configuration.
	for _, p := range []Protocol{ProtocolOpenCensus, ProtocolOTLP} {
		e, err := NewUnstartedExporter(WithInsecure(), WithProtocol(p), WithSpanRingCapacity(256))
		if err != nil {
			t.Fatalf("%v, ring of 256, default batch: %v", p, err)
		}
		if got := e.cfg.maxBatch; got != 256 {
			t.Errorf("%v: default batch with a ring of 256 is %d, want 256", p, got)
		}
	}
}

func TestResourceDetectorErrorReturned(t *testing.T) {
	_, err := NewUnstartedExporter(WithInsecure(), WithResourceDetector(func(context.Context) (*resource.Resource, error) {
		return nil, errors.New("boom")
	}))
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("err = %v", err)
	}
}

func TestResourceDetector(t *testing.T) {
	a := startAgent(t)
	e := newExporter(t, a, WithResourceDetector(func(context.Context) (*resource.Resource, error) {
		return &resource.Resource{Type: "det", Labels: map[string]string{"k": "v"}}, nil
	}))
	e.ExportSpan(span(1))
	e.Flush()
	if err := a.WaitSpans(1, wait); err != nil {
		t.Fatal(err)
	}
	for _, m := range a.TraceStreams()[0].Messages {
		if m.Resource.GetType() != "det" || m.Resource.GetLabels()["k"] != "v" {
			t.Errorf("resource %v", m.Resource)
		}
	}
}

func TestReconnectAfterAgentRestart(t *testing.T) {
	a := startAgent(t)
	e := newExporter(t, a)
	e.ExportSpan(span(1))
	e.Flush()
	if err := a.WaitSpans(1, wait); err != nil {
		t.Fatal(err)
	}
	if err := a.Restart(); err != nil {
		t.Fatal(err)
	}
	a.Reset()
	// The exporter sees the stream end and reconnects by itself, sending the
	// Node before any span. (A batch handed to gRPC in the instant between
	// the agent's death and that moment would be lost: see docs/reliability.md.)
	waitFor(t, e, "a reconnection", func() bool { return e.Stats().Reconnects >= 1 })
	if err := a.WaitTraceMessages(1, wait); err != nil {
		t.Fatal(err)
	}
	for i := 2; i <= 11; i++ {
		e.ExportSpan(span(i))
		e.Flush()
	}
	if err := a.WaitSpans(10, wait); err != nil {
		t.Fatalf("after restart: %v (stats %+v)", err, e.Stats())
	}
	streams := a.TraceStreams()
	if streams[0].Messages[0].Node == nil {
		t.Error("the new stream must start with the Node")
	}
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestSpansWaitWhileAgentIsDown(t *testing.T) {
	addr := freeAddr(t)
	e, err := NewExporter(WithInsecure(), WithAddress(addr), WithReconnectionPeriod(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	for i := 0; i < 50; i++ {
		e.ExportSpan(span(i))
	}
	e.Flush() // returns although nothing listens
	if st := e.Stats(); st.LastError == nil || st.SpansQueued != 50 {
		t.Errorf("50 spans must wait, and LastError say why: %+v", st)
	}
	a := startAgent(t, mockagent.WithAddress(addr))
	if err := a.WaitSpans(50, wait); err != nil {
		t.Fatalf("%v (stats %+v)", err, e.Stats())
	}
	if first := a.TraceStreams()[0].Messages[0]; first.Node == nil {
		t.Error("Node must come first after the late connection")
	}
}

// The ring-full tests turn the replay off: with it, batches are encoded
// and kept while the agent is down (up to its budget), and the ring would
// not fill.
func TestRingFullDropsAndCounts(t *testing.T) {
	e, err := NewExporter(WithInsecure(), WithAddress(freeAddr(t)), WithSpanRingCapacity(4), WithMaxBatchSpans(2), WithReplayBytes(0))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	for i := 0; i < 10; i++ {
		e.ExportSpan(span(i))
	}
	st := e.Stats()
	// The writer may have taken up to one batch (2) out of the ring.
	if st.SpansDroppedFull < 4 || st.SpansDroppedFull > 6 {
		t.Errorf("dropped %d, want 4..6", st.SpansDroppedFull)
	}
}

func TestRingFullBlockPolicy(t *testing.T) {
	e, err := NewExporter(WithInsecure(), WithAddress(freeAddr(t)), WithSpanRingCapacity(2), WithMaxBatchSpans(1),
		WithBlockWhenFull(20*time.Millisecond), WithReplayBytes(0))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	for i := 0; i < 6; i++ {
		e.ExportSpan(span(i))
	}
	if st := e.Stats(); st.SpansDroppedFull == 0 {
		t.Errorf("blocked spans must be dropped after the timeout: %+v", st)
	}
}

func TestConfigStreamAppliesSampler(t *testing.T) {
	defer trace.ApplyConfig(trace.Config{DefaultSampler: trace.AlwaysSample()})
	a := startAgent(t)
	e := newExporter(t, a)
	if err := a.WaitConfigStreams(1, wait); err != nil {
		t.Fatal(err)
	}
	cfg := &uptracepb.TraceConfig{Sampler: &uptracepb.TraceConfig_ConstantSampler{ConstantSampler: &uptracepb.ConstantSampler{Decision: uptracepb.ConstantSampler_ALWAYS_OFF}}}
	if err := a.PushConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitConfigReplies(2, wait); err != nil {
		t.Fatal(err)
	}
	cs := a.ConfigStreams()[0]
	if cs.Received[0].Node == nil {
		t.Error("first config message must carry the Node")
	}
	if got := cs.Received[1].GetConfig(); !proto.Equal(got, cfg) {
		t.Errorf("reply %v, want %v", got, cfg)
	}
	if _, s := trace.StartSpan(context.Background(), "x"); s.IsRecordingEvents() {
		t.Error("ALWAYS_OFF not applied")
	}
	prob := &uptracepb.TraceConfig{Sampler: &uptracepb.TraceConfig_ProbabilitySampler{ProbabilitySampler: &uptracepb.ProbabilitySampler{SamplingProbability: 1}}}
	if err := a.PushConfig(prob); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitConfigReplies(3, wait); err != nil {
		t.Fatal(err)
	}
	if _, s := trace.StartSpan(context.Background(), "x"); !s.IsRecordingEvents() {
		t.Error("probability 1 not applied")
	}
	if e.Stats().ConfigUpdates != 2 {
		t.Errorf("config updates %d", e.Stats().ConfigUpdates)
	}
}

func TestConfigUnimplementedDoesNotDisturbTraces(t *testing.T) {
	a := startAgent(t, mockagent.WithConfigUnimplemented())
	e := newExporter(t, a)
	for i := 0; i < 5; i++ {
		e.ExportSpan(span(i))
	}
	e.Flush()
	if err := a.WaitSpans(5, wait); err != nil {
		t.Fatal(err)
	}
	if st := e.Stats(); st.LastError != nil || st.Reconnects != 0 {
		t.Errorf("trace stream disturbed: %+v", st)
	}
}

func TestExportTraceServiceRequestPassesThrough(t *testing.T) {
	a := startAgent(t)
	e := newExporter(t, a)
	req := &upagenttracepb.ExportTraceServiceRequest{Spans: []*uptracepb.Span{{TraceId: make([]byte, 16), SpanId: []byte{1, 2, 3, 4, 5, 6, 7, 8}, Name: &uptracepb.TruncatableString{Value: "raw"}}}}
	if err := e.ExportTraceServiceRequest(req); err != nil {
		t.Fatal(err)
	}
	if err := e.ExportTraceServiceRequest(nil); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitSpans(1, wait); err != nil {
		t.Fatal(err)
	}
	if got := a.Spans()[0]; !proto.Equal(got, req.Spans[0]) {
		t.Errorf("got %v", got)
	}
}

func TestExportTraceServiceRequestWhileDown(t *testing.T) {
	e, err := NewExporter(WithInsecure(), WithAddress(freeAddr(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	err = e.ExportTraceServiceRequest(&upagenttracepb.ExportTraceServiceRequest{Spans: []*uptracepb.Span{{}}})
	if err == nil || !strings.Contains(err.Error(), "no active connection, last connection error") {
		t.Fatalf("err = %v", err)
	}
}
