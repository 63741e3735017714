package mockagent

import (
	"context"
	"crypto/tls"
	"runtime"
	"strings"
	"testing"
	"time"

	commonpb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/common/v1"
	agentmetricspb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/metrics/v1"
	agenttracepb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/trace/v1"
	metricspb "github.com/census-instrumentation/opencensus-proto/gen-go/metrics/v1"
	tracepb "github.com/census-instrumentation/opencensus-proto/gen-go/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/zerocensus/ocagent/internal/testwait"
)

// wait bounds the Wait* calls and the clients' contexts: a hang guard.
const wait = testwait.Cap

func start(t *testing.T, opts ...Option) *Agent {
	t.Helper()
	a, err := Start(opts...)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(a.Stop)
	return a
}

func dial(t *testing.T, addr string, creds credentials.TransportCredentials) *grpc.ClientConn {
	t.Helper()
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return metadata.AppendToOutgoingContext(ctx, "k", "v")
}

func node() *commonpb.Node {
	return &commonpb.Node{
		Identifier:  &commonpb.ProcessIdentifier{HostName: "host", Pid: 42},
		ServiceInfo: &commonpb.ServiceInfo{Name: "svc"},
	}
}

func span(name string) *tracepb.Span {
	return &tracepb.Span{
		TraceId: []byte("0123456789abcdef"),
		SpanId:  []byte("01234567"),
		Name:    &tracepb.TruncatableString{Value: name},
	}
}

// traceMessages is a Node-only message followed by two span messages.
func traceMessages() []*agenttracepb.ExportTraceServiceRequest {
	return []*agenttracepb.ExportTraceServiceRequest{
		{Node: node()},
		{Spans: []*tracepb.Span{span("a")}},
		{Spans: []*tracepb.Span{span("b"), span("c")}},
	}
}

// sendTraces opens one Export stream, sends msgs and half-closes it.
func sendTraces(t *testing.T, cc *grpc.ClientConn, msgs []*agenttracepb.ExportTraceServiceRequest, opts ...grpc.CallOption) {
	t.Helper()
	stream, err := agenttracepb.NewTraceServiceClient(cc).Export(testContext(t), opts...)
	if err != nil {
		t.Fatalf("Export: %v", err)
	}
	for _, m := range msgs {
		if err := stream.Send(m); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatalf("CloseSend: %v", err)
	}
}

func spanNames(spans []*tracepb.Span) string {
	var names []string
	for _, s := range spans {
		names = append(names, s.GetName().GetValue())
	}
	return strings.Join(names, ",")
}

func checkHeaders(t *testing.T, md metadata.MD) {
	t.Helper()
	if got := md.Get("k"); len(got) != 1 || got[0] != "v" {
		t.Errorf("header k = %q, want [v] (all: %v)", got, md)
	}
}

func TestTraceExport(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []grpc.CallOption
	}{
		{"plain", nil},
		{"gzip", []grpc.CallOption{grpc.UseCompressor(gzip.Name)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := start(t)
			if !strings.HasPrefix(a.Addr(), "127.0.0.1:") || strings.HasSuffix(a.Addr(), ":0") {
				t.Fatalf("Addr() = %q", a.Addr())
			}
			msgs := traceMessages()
			sendTraces(t, dial(t, a.Addr(), nil), msgs, tc.opts...)
			if err := a.WaitSpans(3, wait); err != nil {
				t.Fatal(err)
			}
			if err := a.WaitTraceMessages(3, wait); err != nil {
				t.Fatal(err)
			}

			streams := a.TraceStreams()
			if len(streams) != 1 {
				t.Fatalf("got %d trace streams, want 1", len(streams))
			}
			checkHeaders(t, streams[0].Headers)
			if got := len(streams[0].Messages); got != 3 {
				t.Fatalf("got %d messages, want 3", got)
			}
			for i, m := range streams[0].Messages {
				if !proto.Equal(m, msgs[i]) {
					t.Errorf("message %d = %v, want %v", i, m, msgs[i])
				}
			}
			if got := spanNames(a.Spans()); got != "a,b,c" {
				t.Errorf("Spans() = %s, want a,b,c", got)
			}
			if got := a.SpanCount(); got != 3 {
				t.Errorf("SpanCount() = %d, want 3", got)
			}
			if got := a.TraceMessageCount(); got != 3 {
				t.Errorf("TraceMessageCount() = %d, want 3", got)
			}
			var size int64
			for _, m := range msgs {
				size += int64(proto.Size(m))
			}
			if got := a.TraceBytes(); got != size {
				t.Errorf("TraceBytes() = %d, want %d", got, size)
			}
			wire := a.TraceWireBytes()
			if tc.opts == nil && wire != size+5*3 {
				t.Errorf("TraceWireBytes() = %d, want %d (payload + 5-byte headers)", wire, size+5*3)
			}
			if wire == 0 {
				t.Error("TraceWireBytes() = 0")
			}
		})
	}
}

func TestMetricsExport(t *testing.T) {
	a := start(t)
	stream, err := agentmetricspb.NewMetricsServiceClient(dial(t, a.Addr(), nil)).Export(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	msgs := []*agentmetricspb.ExportMetricsServiceRequest{
		{Node: node()},
		{Metrics: []*metricspb.Metric{
			{MetricDescriptor: &metricspb.MetricDescriptor{Name: "m1"}},
			{MetricDescriptor: &metricspb.MetricDescriptor{Name: "m2"}},
		}},
	}
	for _, m := range msgs {
		if err := stream.Send(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.WaitMetrics(2, wait); err != nil {
		t.Fatal(err)
	}
	streams := a.MetricsStreams()
	if len(streams) != 1 || len(streams[0].Messages) != 2 {
		t.Fatalf("MetricsStreams() = %v", streams)
	}
	checkHeaders(t, streams[0].Headers)
	if !proto.Equal(streams[0].Messages[0], msgs[0]) {
		t.Errorf("first message = %v", streams[0].Messages[0])
	}
	ms := a.Metrics()
	if len(ms) != 2 || ms[0].GetMetricDescriptor().GetName() != "m1" || ms[1].GetMetricDescriptor().GetName() != "m2" {
		t.Errorf("Metrics() = %v", ms)
	}
	if a.MetricCount() != 2 || a.MetricsMessageCount() != 2 || a.MetricsBytes() == 0 || a.MetricsWireBytes() == 0 {
		t.Errorf("counts: metrics %d messages %d bytes %d wire %d",
			a.MetricCount(), a.MetricsMessageCount(), a.MetricsBytes(), a.MetricsWireBytes())
	}
	if a.SpanCount() != 0 || a.TraceWireBytes() != 0 {
		t.Errorf("metrics leaked into trace counters: spans %d wire %d", a.SpanCount(), a.TraceWireBytes())
	}
}

func TestConfigRoundTrip(t *testing.T) {
	a := start(t)
	if err := a.PushConfig(&tracepb.TraceConfig{}); err == nil {
		t.Error("PushConfig with no Config stream succeeded")
	}

	stream, err := agenttracepb.NewTraceServiceClient(dial(t, a.Addr(), nil)).Config(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	first := &agenttracepb.CurrentLibraryConfig{Node: node()}
	if err := stream.Send(first); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitConfigStreams(1, wait); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitConfigReplies(1, wait); err != nil {
		t.Fatal(err)
	}

	cfg := &tracepb.TraceConfig{
		Sampler: &tracepb.TraceConfig_ProbabilitySampler{
			ProbabilitySampler: &tracepb.ProbabilitySampler{SamplingProbability: 0.25},
		},
		MaxNumberOfAttributes: 7,
	}
	if err := a.PushConfig(cfg); err != nil {
		t.Fatal(err)
	}
	upd, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(upd.GetConfig(), cfg) {
		t.Fatalf("client got %v, want %v", upd.GetConfig(), cfg)
	}
	applied := &agenttracepb.CurrentLibraryConfig{Config: upd.GetConfig()}
	if err := stream.Send(applied); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitConfigReplies(2, wait); err != nil {
		t.Fatal(err)
	}

	streams := a.ConfigStreams()
	if len(streams) != 1 {
		t.Fatalf("got %d config streams, want 1", len(streams))
	}
	checkHeaders(t, streams[0].Headers)
	got := streams[0].Received
	if len(got) != 2 || !proto.Equal(got[0], first) || !proto.Equal(got[1], applied) {
		t.Errorf("Received = %v", got)
	}
	if n := a.OpenConfigStreams(); n != 1 {
		t.Errorf("OpenConfigStreams() = %d, want 1", n)
	}
}

func TestConfigUnimplemented(t *testing.T) {
	a := start(t, WithConfigUnimplemented())
	stream, err := agenttracepb.NewTraceServiceClient(dial(t, a.Addr(), nil)).Config(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	_ = stream.Send(&agenttracepb.CurrentLibraryConfig{Node: node()}) // may already see the error
	_, err = stream.Recv()
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("Recv error = %v, want Unimplemented", err)
	}
	if n := a.ConfigCalls(); n != 1 {
		t.Errorf("ConfigCalls() = %d, want 1", n)
	}
	if n := len(a.ConfigStreams()); n != 0 {
		t.Errorf("recorded %d config streams, want 0", n)
	}
	if err := a.PushConfig(&tracepb.TraceConfig{}); err == nil {
		t.Error("PushConfig succeeded with Config unimplemented")
	}
}

func TestRestartKeepsAddress(t *testing.T) {
	a := start(t)
	addr := a.Addr()
	sendTraces(t, dial(t, addr, nil), traceMessages())
	if err := a.WaitSpans(3, wait); err != nil {
		t.Fatal(err)
	}

	a.Stop()
	a.Stop() // idempotent
	if err := a.Restart(); err != nil {
		t.Fatal(err)
	}
	if a.Addr() != addr {
		t.Fatalf("Addr() after Restart = %q, want %q", a.Addr(), addr)
	}
	sendTraces(t, dial(t, addr, nil), traceMessages())
	if err := a.WaitSpans(6, wait); err != nil {
		t.Fatal(err)
	}

	// Restart while running, then restart a fresh agent on the same port.
	if err := a.Restart(); err != nil {
		t.Fatal(err)
	}
	a.Stop()
	b := start(t, WithAddress(addr))
	if b.Addr() != addr {
		t.Fatalf("WithAddress agent listens on %q, want %q", b.Addr(), addr)
	}
	sendTraces(t, dial(t, addr, nil), traceMessages())
	if err := b.WaitSpans(3, wait); err != nil {
		t.Fatal(err)
	}
	if got := a.SpanCount(); got != 6 {
		t.Errorf("stopped agent SpanCount() = %d, want 6", got)
	}
}

func TestTLS(t *testing.T) {
	cert, pool, err := SelfSignedCert()
	if err != nil {
		t.Fatal(err)
	}
	a := start(t, WithTLS(cert))
	creds := credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	sendTraces(t, dial(t, a.Addr(), creds), traceMessages())
	if err := a.WaitSpans(3, wait); err != nil {
		t.Fatal(err)
	}
	checkHeaders(t, a.TraceStreams()[0].Headers)

	// A client that does not trust the certificate cannot export.
	untrusted := credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})
	stream, err := agenttracepb.NewTraceServiceClient(dial(t, a.Addr(), untrusted)).Export(testContext(t))
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.Unavailable {
		t.Errorf("untrusted client: err = %v, want Unavailable", err)
	}
}

func TestDiscard(t *testing.T) {
	a := start(t, WithDiscard())
	cc := dial(t, a.Addr(), nil)
	msgs := traceMessages()
	sendTraces(t, cc, msgs)
	if err := a.WaitSpans(3, wait); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitTraceMessages(3, wait); err != nil {
		t.Fatal(err)
	}
	var size int64
	for _, m := range msgs {
		size += int64(proto.Size(m))
	}
	if a.SpanCount() != 3 || a.TraceMessageCount() != 3 || a.TraceBytes() != size {
		t.Errorf("counts: spans %d messages %d bytes %d (want 3, 3, %d)", a.SpanCount(), a.TraceMessageCount(), a.TraceBytes(), size)
	}
	if n := len(a.Spans()); n != 0 {
		t.Errorf("kept %d spans in discard mode", n)
	}
	streams := a.TraceStreams()
	if len(streams) != 1 || len(streams[0].Messages) != 0 {
		t.Fatalf("TraceStreams() = %v, want one stream without messages", streams)
	}
	checkHeaders(t, streams[0].Headers)

	ms, err := agentmetricspb.NewMetricsServiceClient(cc).Export(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := ms.Send(&agentmetricspb.ExportMetricsServiceRequest{Metrics: []*metricspb.Metric{{}, {}, {}}}); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitMetrics(3, wait); err != nil {
		t.Fatal(err)
	}
	if n := len(a.Metrics()); n != 0 {
		t.Errorf("kept %d metrics in discard mode", n)
	}
}

func TestReset(t *testing.T) {
	a := start(t)
	stream, err := agenttracepb.NewTraceServiceClient(dial(t, a.Addr(), nil)).Export(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&agenttracepb.ExportTraceServiceRequest{Node: node(), Spans: []*tracepb.Span{span("old")}}); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitSpans(1, wait); err != nil {
		t.Fatal(err)
	}
	a.Reset()
	if a.SpanCount() != 0 || a.TraceMessageCount() != 0 || a.TraceBytes() != 0 || len(a.Spans()) != 0 || len(a.TraceStreams()) != 0 {
		t.Fatal("Reset left recorded data")
	}
	// The still-open stream shows up again with only its new messages.
	if err := stream.Send(&agenttracepb.ExportTraceServiceRequest{Spans: []*tracepb.Span{span("new")}}); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitSpans(1, wait); err != nil {
		t.Fatal(err)
	}
	streams := a.TraceStreams()
	if len(streams) != 1 || len(streams[0].Messages) != 1 {
		t.Fatalf("TraceStreams() after Reset = %v", streams)
	}
	checkHeaders(t, streams[0].Headers)
	if got := spanNames(a.Spans()); got != "new" {
		t.Errorf("Spans() = %s, want new", got)
	}
}

func TestNoRead(t *testing.T) {
	a := start(t, WithNoRead())
	stream, err := agenttracepb.NewTraceServiceClient(dial(t, a.Addr(), nil)).Export(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&agenttracepb.ExportTraceServiceRequest{Spans: []*tracepb.Span{span("x")}}); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitTraceStreams(1, wait); err != nil {
		t.Fatal(err)
	}
	checkHeaders(t, a.TraceStreams()[0].Headers)
	err = a.WaitSpans(1, 50*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "0 arrived") {
		t.Errorf("WaitSpans on a black hole = %v, want a timeout saying 0 arrived", err)
	}
	// Stop must not hang on the handler that never reads.
	a.Stop()
	if _, err := stream.Recv(); err == nil {
		t.Error("stream still alive after Stop")
	}
}

func TestAddressMustBeLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "localhost:0", "[::1]:0", "127.0.0.1"} {
		if a, err := Start(WithAddress(addr)); err == nil {
			a.Stop()
			t.Errorf("Start(WithAddress(%q)) succeeded", addr)
		}
	}
}

// TestStopLeavesNoGoroutines stops an agent with open Export and Config
// streams, in normal and black-hole mode, and checks that every goroutine
// started since is gone once the client is closed too.
func TestStopLeavesNoGoroutines(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []Option
	}{{"normal", nil}, {"noread", []Option{WithNoRead()}}} {
		t.Run(tc.name, func(t *testing.T) {
			base := runtime.NumGoroutine()
			a, err := Start(tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			cc, err := grpc.NewClient(a.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			client := agenttracepb.NewTraceServiceClient(cc)
			export, err := client.Export(testContext(t))
			if err != nil {
				t.Fatal(err)
			}
			if err := export.Send(&agenttracepb.ExportTraceServiceRequest{Spans: []*tracepb.Span{span("x")}}); err != nil {
				t.Fatal(err)
			}
			config, err := client.Config(testContext(t))
			if err != nil {
				t.Fatal(err)
			}
			if err := config.Send(&agenttracepb.CurrentLibraryConfig{Node: node()}); err != nil {
				t.Fatal(err)
			}
			if err := a.WaitTraceStreams(1, wait); err != nil {
				t.Fatal(err)
			}
			if err := a.WaitConfigStreams(1, wait); err != nil {
				t.Fatal(err)
			}
			if err := a.PushConfig(&tracepb.TraceConfig{}); err != nil {
				t.Fatal(err)
			}
			a.Stop()
			cc.Close()

			testwait.Until(func() bool { return runtime.NumGoroutine() <= base })
			if n := runtime.NumGoroutine(); n > base {
				buf := make([]byte, 1<<20)
				t.Fatalf("%d goroutines left, %d before Start:\n%s", n, base, buf[:runtime.Stack(buf, true)])
			}
		})
	}
}
