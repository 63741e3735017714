package bench

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"go.opencensus.io/trace"
	"go.opentelemetry.io/otel/bridge/opencensus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// A shape records one span through the OpenCensus API, with the content of
// internal/testspans' shape of the same name (the same names, attributes,
// annotations, message events and links). Attribute values are built once,
// as constants would be, so that the benchmark's own allocations are not
// counted against any peer.
type shape struct {
	name   string
	record func(ctx context.Context)
}

var shapes = []shape{
	{"small", recordSmall},
	{"typical", recordTypical},
	{"large", recordLarge},
}

func recordSmall(ctx context.Context) {
	_, s := trace.StartSpan(ctx, "small")
	s.End()
}

var (
	serverKind = trace.WithSpanKind(trace.SpanKindServer)
	// The typical and large spans have a parent, as testspans.Typical.
	remoteParent = trace.SpanContext{TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{6}, TraceOptions: 1}

	typicalAttrs = []trace.Attribute{
		trace.StringAttribute("http.method", "GET"),
		trace.StringAttribute("http.path", "/api/v1/users/42"),
		trace.Int64Attribute("http.status_code", 200),
		trace.StringAttribute("http.host", "api.example.com"),
		trace.StringAttribute("http.user_agent", "Mozilla/5.0 (X11; Linux x86_64)"),
		trace.BoolAttribute("retry", false),
		trace.Float64Attribute("ratio", 0.25),
		trace.StringAttribute("component", "net/http"),
	}
	cacheMissAttrs = []trace.Attribute{trace.StringAttribute("key", "user:42")}
	typicalLink    = trace.Link{TraceID: trace.TraceID{9}, SpanID: trace.SpanID{9}, Type: trace.LinkTypeParent}
)

func recordTypical(ctx context.Context) {
	_, s := trace.StartSpanWithRemoteParent(ctx, "/api/v1/users.Get", remoteParent, serverKind)
	s.AddAttributes(typicalAttrs...)
	s.Annotate(cacheMissAttrs, "cache miss")
	s.Annotate(nil, "db query done")
	s.AddMessageReceiveEvent(1, 512, 0)
	s.AddMessageSendEvent(2, 2048, 700)
	s.AddLink(typicalLink)
	s.End()
}

var (
	largeAttrs      []trace.Attribute
	largeAnnotAttrs [][]trace.Attribute
	largeLinks      []trace.Link
)

func init() {
	for i := 0; i < 64; i++ {
		largeAttrs = append(largeAttrs, trace.StringAttribute(fmt.Sprintf("attr.%02d", i), fmt.Sprintf("value-%d", i)))
	}
	for i := 0; i < 32; i++ {
		largeAnnotAttrs = append(largeAnnotAttrs, []trace.Attribute{trace.Int64Attribute("i", int64(i))})
	}
	for i := 0; i < 8; i++ {
		largeLinks = append(largeLinks, trace.Link{TraceID: trace.TraceID{byte(i)}, SpanID: trace.SpanID{byte(i)}, Type: trace.LinkTypeChild})
	}
}

// recordLarge: 64 attributes, 32 annotations, 64 message events, 8 links.
func recordLarge(ctx context.Context) {
	_, s := trace.StartSpanWithRemoteParent(ctx, "large", remoteParent, serverKind)
	s.AddAttributes(largeAttrs...)
	for _, a := range largeAnnotAttrs {
		s.Annotate(a, "step")
	}
	for i := int64(0); i < 64; i++ {
		s.AddMessageSendEvent(i, 100, 0)
	}
	for _, l := range largeLinks {
		s.AddLink(l)
	}
	s.End()
}

// capture is an OpenCensus exporter that keeps the spans it is given.
type capture struct {
	mu    sync.Mutex
	spans []*trace.SpanData
}

func (c *capture) ExportSpan(sd *trace.SpanData) {
	c.mu.Lock()
	c.spans = append(c.spans, sd)
	c.mu.Unlock()
}

var (
	prebuiltMu   sync.Mutex
	prebuiltOC   = map[string]*trace.SpanData{}
	prebuiltOTel = map[string]sdktrace.ReadOnlySpan{}
)

// spanData is the shape's span as OpenCensus hands it to an exporter:
// recorded once through the API.
func spanData(tb testing.TB, sh shape) *trace.SpanData {
	prebuiltMu.Lock()
	defer prebuiltMu.Unlock()
	if sd := prebuiltOC[sh.name]; sd != nil {
		return sd
	}
	c := new(capture)
	trace.RegisterExporter(c)
	sh.record(context.Background())
	trace.UnregisterExporter(c)
	if len(c.spans) != 1 {
		tb.Fatalf("%s: captured %d spans", sh.name, len(c.spans))
	}
	prebuiltOC[sh.name] = c.spans[0]
	return c.spans[0]
}

// readOnlySpan is the shape's span as the OpenTelemetry SDK hands it to a
// span processor's OnEnd, made by the same OpenCensus calls through the
// bridge: a real SDK span, not a stub.
func readOnlySpan(tb testing.TB, sh shape) sdktrace.ReadOnlySpan {
	prebuiltMu.Lock()
	defer prebuiltMu.Unlock()
	if ro := prebuiltOTel[sh.name]; ro != nil {
		return ro
	}
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithSpanProcessor(sr))
	restore := installBridge(tp)
	sh.record(context.Background())
	restore()
	ended := sr.Ended()
	if len(ended) != 1 {
		tb.Fatalf("%s: recorded %d spans", sh.name, len(ended))
	}
	prebuiltOTel[sh.name] = ended[0]
	return ended[0]
}

// installBridge makes OpenCensus's trace API create spans in tp and returns
// the function that restores OpenCensus's own tracer.
func installBridge(tp *sdktrace.TracerProvider) (restore func()) {
	old := trace.DefaultTracer
	opencensus.InstallTraceBridge(opencensus.WithTracerProvider(tp))
	return func() { trace.DefaultTracer = old }
}
