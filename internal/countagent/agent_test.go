package countagent

import (
	"context"
	"testing"

	commonpb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/common/v1"
	agentmetricspb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/metrics/v1"
	agenttracepb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/trace/v1"
	ocmetricspb "github.com/census-instrumentation/opencensus-proto/gen-go/metrics/v1"
	resourcepb "github.com/census-instrumentation/opencensus-proto/gen-go/resource/v1"
	octracepb "github.com/census-instrumentation/opencensus-proto/gen-go/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/zerocensus/ocagent/internal/testwait"
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
	// OTLP counting is tested in the bench module (bench/countagent_test.go),
	// which has the OTLP types: the library module does not depend on them.
}

// TestServer sends through a real gRPC client on an OpenCensus
// bidirectional stream.
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
	ctx, cancel := context.WithTimeout(context.Background(), testwait.Cap)
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
	c, err := s.Wait(OCTrace, 305, testwait.Cap)
	if err != nil {
		t.Fatal(err)
	}
	if c.Messages != 3 || c.Bytes == 0 {
		t.Errorf("OpenCensus counts %+v", c)
	}

}
