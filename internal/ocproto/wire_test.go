// Tests of the generated types that prove the renaming works: they link
// beside upstream's gen-go without a registration conflict, and their bytes
// are upstream's bytes.
package ocproto_test

import (
	"bytes"
	"os"
	"os/exec"
	"testing"

	upcommonpb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/common/v1"
	upagentmetricspb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/metrics/v1"
	upagenttracepb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/trace/v1"
	upmetricspb "github.com/census-instrumentation/opencensus-proto/gen-go/metrics/v1"
	upresourcepb "github.com/census-instrumentation/opencensus-proto/gen-go/resource/v1"
	uptracepb "github.com/census-instrumentation/opencensus-proto/gen-go/trace/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	agentmetricspb "github.com/zerocensus/ocagent/internal/ocproto/agent/metrics/v1"
	agenttracepb "github.com/zerocensus/ocagent/internal/ocproto/agent/trace/v1"
)

const childEnv = "OCPROTO_REGISTRATION_CHILD"

// TestLinksBesideUpstream runs this test binary again with protobuf-go's
// strictest conflict policy. Registration happens at init, so the child
// starting at all proves that both sets of files link together.
func TestLinksBesideUpstream(t *testing.T) {
	if os.Getenv(childEnv) == "1" {
		for _, name := range []protoreflect.FullName{
			"opencensus.proto.agent.trace.v1.ExportTraceServiceRequest",
			"zerocensus.ocproto.agent.trace.v1.ExportTraceServiceRequest",
			"opencensus.proto.metrics.v1.Metric",
			"zerocensus.ocproto.metrics.v1.Metric",
		} {
			if _, err := protoregistry.GlobalTypes.FindMessageByName(name); err != nil {
				t.Errorf("%s not registered: %v", name, err)
			}
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestLinksBesideUpstream$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"=1", "GOLANG_PROTOBUF_REGISTRATION_CONFLICT=panic")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("program linking both upstream and our protos failed to start: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("PASS")) {
		t.Fatalf("child did not run the check:\n%s", out)
	}
	_ = upcommonpb.File_opencensus_proto_agent_common_v1_common_proto // both linked
}

func ts(sec int64) *timestamppb.Timestamp { return &timestamppb.Timestamp{Seconds: sec, Nanos: 7} }

func upstreamTrace() *upagenttracepb.ExportTraceServiceRequest {
	return &upagenttracepb.ExportTraceServiceRequest{
		Node: &upcommonpb.Node{
			Identifier:  &upcommonpb.ProcessIdentifier{HostName: "h", Pid: 42, StartTimestamp: ts(1)},
			LibraryInfo: &upcommonpb.LibraryInfo{Language: upcommonpb.LibraryInfo_GO_LANG, ExporterVersion: "0.0.1", CoreLibraryVersion: "0.24.0"},
			ServiceInfo: &upcommonpb.ServiceInfo{Name: "svc"},
			Attributes:  map[string]string{"b": "2", "a": "1", "c": "3"},
		},
		Resource: &upresourcepb.Resource{Type: "k8s", Labels: map[string]string{"z": "1", "y": "2"}},
		Spans: []*uptracepb.Span{{
			TraceId: bytes.Repeat([]byte{1}, 16), SpanId: bytes.Repeat([]byte{2}, 8), ParentSpanId: bytes.Repeat([]byte{3}, 8),
			Tracestate: &uptracepb.Span_Tracestate{Entries: []*uptracepb.Span_Tracestate_Entry{{Key: "k", Value: "v"}}},
			Name:       &uptracepb.TruncatableString{Value: "n", TruncatedByteCount: 1},
			Kind:       uptracepb.Span_SERVER, StartTime: ts(10), EndTime: ts(11),
			Attributes: &uptracepb.Span_Attributes{AttributeMap: map[string]*uptracepb.AttributeValue{
				"s": {Value: &uptracepb.AttributeValue_StringValue{StringValue: &uptracepb.TruncatableString{Value: "v"}}},
				"i": {Value: &uptracepb.AttributeValue_IntValue{IntValue: -1}},
				"b": {Value: &uptracepb.AttributeValue_BoolValue{BoolValue: true}},
				"d": {Value: &uptracepb.AttributeValue_DoubleValue{DoubleValue: 1.5}},
			}, DroppedAttributesCount: 2},
			TimeEvents: &uptracepb.Span_TimeEvents{TimeEvent: []*uptracepb.Span_TimeEvent{
				{Time: ts(12), Value: &uptracepb.Span_TimeEvent_Annotation_{Annotation: &uptracepb.Span_TimeEvent_Annotation{Description: &uptracepb.TruncatableString{Value: "a"}}}},
				{Time: ts(13), Value: &uptracepb.Span_TimeEvent_MessageEvent_{MessageEvent: &uptracepb.Span_TimeEvent_MessageEvent{Type: 1, Id: 2, UncompressedSize: 3, CompressedSize: 4}}},
			}, DroppedAnnotationsCount: 1, DroppedMessageEventsCount: 2},
			Links:                   &uptracepb.Span_Links{Link: []*uptracepb.Span_Link{{TraceId: []byte{1}, SpanId: []byte{2}, Type: 1}}, DroppedLinksCount: 3},
			Status:                  &uptracepb.Status{Code: 2, Message: "m"},
			SameProcessAsParentSpan: wrapperspb.Bool(true),
			ChildSpanCount:          wrapperspb.UInt32(9),
		}},
	}
}

func upstreamMetrics() *upagentmetricspb.ExportMetricsServiceRequest {
	return &upagentmetricspb.ExportMetricsServiceRequest{
		Resource: &upresourcepb.Resource{Type: "t"},
		Metrics: []*upmetricspb.Metric{{
			MetricDescriptor: &upmetricspb.MetricDescriptor{Name: "m", Description: "d", Unit: "ms",
				Type: upmetricspb.MetricDescriptor_CUMULATIVE_DISTRIBUTION, LabelKeys: []*upmetricspb.LabelKey{{Key: "k"}}},
			Timeseries: []*upmetricspb.TimeSeries{{
				StartTimestamp: ts(1),
				LabelValues:    []*upmetricspb.LabelValue{{Value: "v", HasValue: true}},
				Points: []*upmetricspb.Point{{Timestamp: ts(2), Value: &upmetricspb.Point_DistributionValue{DistributionValue: &upmetricspb.DistributionValue{
					Count: 3, Sum: 4.5, SumOfSquaredDeviation: 1,
					BucketOptions: &upmetricspb.DistributionValue_BucketOptions{Type: &upmetricspb.DistributionValue_BucketOptions_Explicit_{Explicit: &upmetricspb.DistributionValue_BucketOptions_Explicit{Bounds: []float64{1, 2}}}},
					Buckets: []*upmetricspb.DistributionValue_Bucket{{Count: 1, Exemplar: &upmetricspb.DistributionValue_Exemplar{
						Value: 0.5, Timestamp: ts(3), Attachments: map[string]string{"b": "2", "a": "1"}}}, {Count: 2}, {}},
				}}}},
			}},
		}},
	}
}

// TestBytesIdenticalToUpstream decodes upstream's deterministic bytes into
// our types and encodes them again: the bytes must not change. Maps were
// rewritten as repeated entries, which upstream's deterministic marshal
// writes sorted by key, so decoding keeps that order.
func TestBytesIdenticalToUpstream(t *testing.T) {
	ourTrace := new(agenttracepb.ExportTraceServiceRequest)
	for _, c := range []struct {
		name     string
		upstream proto.Message
		ours     vtMessage
	}{
		{"trace", upstreamTrace(), ourTrace},
		{"metrics", upstreamMetrics(), new(agentmetricspb.ExportMetricsServiceRequest)},
	} {
		want, err := proto.MarshalOptions{Deterministic: true}.Marshal(c.upstream)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.ours.UnmarshalVT(want); err != nil {
			t.Fatal(err)
		}
		got, err := c.ours.MarshalVT()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s bytes differ:\n got %x\nwant %x", c.name, got, want)
		}
	}
	if a := ourTrace.Node.Attributes; len(a) != 3 || a[0].Key != "a" {
		t.Errorf("node attributes as sorted entries: %v", a)
	}
}

type vtMessage interface {
	UnmarshalVT([]byte) error
	MarshalVT() ([]byte, error)
}
