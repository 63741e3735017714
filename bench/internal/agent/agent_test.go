package agent

import (
	"context"
	"testing"
	"time"

	commonpb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/common/v1"
	agentmetricspb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/metrics/v1"
	agenttracepb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/trace/v1"
	ocmetricspb "github.com/census-instrumentation/opencensus-proto/gen-go/metrics/v1"
	resourcepb "github.com/census-instrumentation/opencensus-proto/gen-go/resource/v1"
	octracepb "github.com/census-instrumentation/opencensus-proto/gen-go/trace/v1"
	collmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	colltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	otlpmetricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	otlptracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
)

func ocTrace(n int) *agenttracepb.ExportTraceServiceRequest {
	r := &agenttracepb.ExportTraceServiceRequest{
		Node:     &commonpb.Node{Identifier: &commonpb.ProcessIdentifier{HostName: "h", Pid: 1}},
		Resource: &resourcepb.Resource{Type: "t", Labels: map[string]string{"a": "b"}},
	}
	for i := 0; i < n; i++ {
		r.Spans = append(r.Spans, &octracepb.Span{Name: &octracepb.TruncatableString{Value: "s"}, SpanId: []byte{byte(i)}})
	}
	return r
}

func otlpTrace(perScope ...int) *colltracepb.ExportTraceServiceRequest {
	r := &colltracepb.ExportTraceServiceRequest{}
	for _, n := range perScope {
		ss := &otlptracepb.ScopeSpans{SchemaUrl: "x"}
		for i := 0; i < n; i++ {
			ss.Spans = append(ss.Spans, &otlptracepb.Span{Name: "s", SpanId: []byte{byte(i)}})
		}
		// Two scopes per resource: every scope is counted.
		r.ResourceSpans = append(r.ResourceSpans, &otlptracepb.ResourceSpans{ScopeSpans: []*otlptracepb.ScopeSpans{ss, {}}})
	}
	return r
}

func TestCount(t *testing.T) {
	b, _ := proto.Marshal(ocTrace(7))
	if n := countField(b, 2); n != 7 {
		t.Errorf("OpenCensus spans: %d, want 7", n)
	}
	om := &agentmetricspb.ExportMetricsServiceRequest{Metrics: []*ocmetricspb.Metric{{}, {}, {}}, Node: &commonpb.Node{}}
	b, _ = proto.Marshal(om)
	if n := countField(b, 2); n != 3 {
		t.Errorf("OpenCensus metrics: %d, want 3", n)
	}
	b, _ = proto.Marshal(otlpTrace(3, 0, 5))
	if n := countNested(b); n != 8 {
		t.Errorf("OTLP spans: %d, want 8", n)
	}
	mr := &collmetricspb.ExportMetricsServiceRequest{ResourceMetrics: []*otlpmetricspb.ResourceMetrics{{
		ScopeMetrics: []*otlpmetricspb.ScopeMetrics{{Metrics: []*otlpmetricspb.Metric{{Name: "a"}, {Name: "b"}}}},
	}}}
	b, _ = proto.Marshal(mr)
	if n := countNested(b); n != 2 {
		t.Errorf("OTLP metrics: %d, want 2", n)
	}
}

// TestServer sends through real gRPC clients: an OpenCensus bidirectional
// stream and OTLP unary calls, which must be answered.
func TestServer(t *testing.T) {
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	cc, err := grpc.NewClient(s.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	st, err := agenttracepb.NewTraceServiceClient(cc).Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 300, 5} {
		if err := st.Send(ocTrace(n)); err != nil {
			t.Fatal(err)
		}
	}
	c, err := s.Wait(OCTrace, 305, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if c.Messages != 3 || c.Bytes == 0 {
		t.Errorf("OpenCensus counts %+v", c)
	}

	if _, err := colltracepb.NewTraceServiceClient(cc).Export(ctx, otlpTrace(2, 2)); err != nil {
		t.Fatalf("OTLP trace export: %v", err)
	}
	if c := s.Counts(OTLPTrace); c.Items != 4 || c.Messages != 1 {
		t.Errorf("OTLP counts %+v", c)
	}
	if _, err := s.Wait(OTLPTrace, 5, 50*time.Millisecond); err == nil {
		t.Error("Wait for more than arrived must time out")
	}
}
