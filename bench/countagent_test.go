package bench

import (
	"context"
	"testing"
	"time"

	collmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	colltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	otlpmetricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	otlptracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	agent "github.com/zerocensus/ocagent/internal/countagent"
	"github.com/zerocensus/ocagent/internal/testwait"
)

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

// TestCountAgentOTLP: the counting agent answers OTLP unary calls and counts
// spans and metrics through resource -> scope -> items.
func TestCountAgentOTLP(t *testing.T) {
	s, err := agent.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	cc, err := grpc.NewClient(s.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testwait.Cap)
	defer cancel()

	if _, err := colltracepb.NewTraceServiceClient(cc).Export(ctx, otlpTrace(3, 0, 5)); err != nil {
		t.Fatalf("OTLP trace export: %v", err)
	}
	if c := s.Counts(agent.OTLPTrace); c.Items != 8 || c.Messages != 1 {
		t.Errorf("OTLP trace counts %+v", c)
	}
	if _, err := s.Wait(agent.OTLPTrace, 9, 50*time.Millisecond); err == nil {
		t.Error("Wait for more than arrived must time out")
	}
	mr := &collmetricspb.ExportMetricsServiceRequest{ResourceMetrics: []*otlpmetricspb.ResourceMetrics{{
		ScopeMetrics: []*otlpmetricspb.ScopeMetrics{{Metrics: []*otlpmetricspb.Metric{{Name: "a"}, {Name: "b"}}}},
	}}}
	if _, err := collmetricspb.NewMetricsServiceClient(cc).Export(ctx, mr); err != nil {
		t.Fatalf("OTLP metrics export: %v", err)
	}
	if c := s.Counts(agent.OTLPMetrics); c.Items != 2 || c.Messages != 1 {
		t.Errorf("OTLP metrics counts %+v", c)
	}
}
