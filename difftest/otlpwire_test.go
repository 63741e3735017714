package difftest

// The generated OTLP types of internal/otlpproto against the real
// go.opentelemetry.io/proto/otlp at the version scripts/protogen pins: a
// program links both (the renaming works) and their bytes are identical.

import (
	"bytes"
	"os"
	"os/exec"
	"testing"

	ucollmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	ucolltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	ucommon "go.opentelemetry.io/proto/otlp/common/v1"
	umetrics "go.opentelemetry.io/proto/otlp/metrics/v1"
	uresource "go.opentelemetry.io/proto/otlp/resource/v1"
	utrace "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	collmetrics "github.com/zerocensus/ocagent/internal/otlpproto/collector/metrics/v1"
	colltrace "github.com/zerocensus/ocagent/internal/otlpproto/collector/trace/v1"
)

const otlpChildEnv = "OTLPPROTO_REGISTRATION_CHILD"

// TestOTLPLinksBesideUpstream runs this test binary again with protobuf-go's
// strictest conflict policy: registration happens at init, so the child
// starting at all proves both sets of files link together.
func TestOTLPLinksBesideUpstream(t *testing.T) {
	if os.Getenv(otlpChildEnv) == "1" {
		for _, name := range []protoreflect.FullName{
			"opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest",
			"zerocensus.otlpproto.collector.trace.v1.ExportTraceServiceRequest",
			"opentelemetry.proto.metrics.v1.Metric",
			"zerocensus.otlpproto.metrics.v1.Metric",
		} {
			if _, err := protoregistry.GlobalTypes.FindMessageByName(name); err != nil {
				t.Errorf("%s not registered: %v", name, err)
			}
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestOTLPLinksBesideUpstream$", "-test.count=1")
	cmd.Env = append(os.Environ(), otlpChildEnv+"=1", "GOLANG_PROTOBUF_REGISTRATION_CONFLICT=panic")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("program linking both otlp and our types failed to start: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("PASS")) {
		t.Fatalf("child did not run the check:\n%s", out)
	}
}

func kv(k string, v *ucommon.AnyValue) *ucommon.KeyValue { return &ucommon.KeyValue{Key: k, Value: v} }

// fullTraces sets every kind of field of a trace request: every AnyValue
// variant (arrays and kvlists nested), bytes, events, links, status, flags,
// trace state and dropped counts.
func fullTraces() *ucolltrace.ExportTraceServiceRequest {
	attrs := []*ucommon.KeyValue{
		kv("s", &ucommon.AnyValue{Value: &ucommon.AnyValue_StringValue{StringValue: "v\u00e9"}}),
		kv("b", &ucommon.AnyValue{Value: &ucommon.AnyValue_BoolValue{BoolValue: true}}),
		kv("i", &ucommon.AnyValue{Value: &ucommon.AnyValue_IntValue{IntValue: -42}}),
		kv("d", &ucommon.AnyValue{Value: &ucommon.AnyValue_DoubleValue{DoubleValue: 0.25}}),
		kv("y", &ucommon.AnyValue{Value: &ucommon.AnyValue_BytesValue{BytesValue: []byte{0, 1, 2}}}),
		kv("a", &ucommon.AnyValue{Value: &ucommon.AnyValue_ArrayValue{ArrayValue: &ucommon.ArrayValue{Values: []*ucommon.AnyValue{
			{Value: &ucommon.AnyValue_IntValue{IntValue: 1}}, {Value: &ucommon.AnyValue_StringValue{StringValue: "x"}}}}}}),
		kv("k", &ucommon.AnyValue{Value: &ucommon.AnyValue_KvlistValue{KvlistValue: &ucommon.KeyValueList{Values: []*ucommon.KeyValue{
			kv("n", &ucommon.AnyValue{Value: &ucommon.AnyValue_BoolValue{BoolValue: false}})}}}}),
		kv("empty", &ucommon.AnyValue{}),
	}
	return &ucolltrace.ExportTraceServiceRequest{ResourceSpans: []*utrace.ResourceSpans{{
		Resource:  &uresource.Resource{Attributes: attrs, DroppedAttributesCount: 3},
		SchemaUrl: "https://opentelemetry.io/schemas/1.4.0",
		ScopeSpans: []*utrace.ScopeSpans{{
			Scope: &ucommon.InstrumentationScope{Name: "scope", Version: "1", Attributes: attrs[:2], DroppedAttributesCount: 1},
			Spans: []*utrace.Span{{
				TraceId: bytes.Repeat([]byte{1}, 16), SpanId: bytes.Repeat([]byte{2}, 8), ParentSpanId: bytes.Repeat([]byte{3}, 8),
				TraceState: "a=b,c=d", Flags: 0x301, Name: "span", Kind: utrace.Span_SPAN_KIND_CLIENT,
				StartTimeUnixNano: 1e18, EndTimeUnixNano: 1e18 + 5,
				Attributes: attrs, DroppedAttributesCount: 4,
				Events:             []*utrace.Span_Event{{TimeUnixNano: 7, Name: "ev", Attributes: attrs[:3], DroppedAttributesCount: 1}},
				DroppedEventsCount: 5,
				Links: []*utrace.Span_Link{{TraceId: bytes.Repeat([]byte{4}, 16), SpanId: bytes.Repeat([]byte{5}, 8), TraceState: "x=y",
					Attributes: attrs[3:], DroppedAttributesCount: 2, Flags: 0x100}},
				DroppedLinksCount: 6,
				Status:            &utrace.Status{Code: utrace.Status_STATUS_CODE_ERROR, Message: "bad"},
			}, {TraceId: []byte{9}, SpanId: []byte{8}}},
		}},
	}}}
}

// fullMetrics sets every data kind: gauge and sum (both value variants,
// exemplars of both variants), histogram and exponential histogram (with the
// optional sum, min and max), summary.
func fullMetrics() *ucollmetrics.ExportMetricsServiceRequest {
	a := []*ucommon.KeyValue{kv("k", &ucommon.AnyValue{Value: &ucommon.AnyValue_StringValue{StringValue: "v"}})}
	ex := []*umetrics.Exemplar{
		{FilteredAttributes: a, TimeUnixNano: 3, Value: &umetrics.Exemplar_AsDouble{AsDouble: 1.5}, SpanId: []byte{1, 2, 3, 4, 5, 6, 7, 8}, TraceId: bytes.Repeat([]byte{9}, 16)},
		{TimeUnixNano: 4, Value: &umetrics.Exemplar_AsInt{AsInt: 7}},
	}
	num := []*umetrics.NumberDataPoint{
		{Attributes: a, StartTimeUnixNano: 1, TimeUnixNano: 2, Value: &umetrics.NumberDataPoint_AsInt{AsInt: 10}, Exemplars: ex, Flags: 1},
		{TimeUnixNano: 2, Value: &umetrics.NumberDataPoint_AsDouble{AsDouble: -0.5}},
	}
	f := func(x float64) *float64 { return &x }
	return &ucollmetrics.ExportMetricsServiceRequest{ResourceMetrics: []*umetrics.ResourceMetrics{{
		Resource: &uresource.Resource{Attributes: a},
		ScopeMetrics: []*umetrics.ScopeMetrics{{
			Scope: &ucommon.InstrumentationScope{Name: "s"},
			Metrics: []*umetrics.Metric{
				{Name: "g", Description: "gauge", Unit: "1", Data: &umetrics.Metric_Gauge{Gauge: &umetrics.Gauge{DataPoints: num}}},
				{Name: "s", Data: &umetrics.Metric_Sum{Sum: &umetrics.Sum{DataPoints: num, IsMonotonic: true,
					AggregationTemporality: umetrics.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE}}},
				{Name: "h", Data: &umetrics.Metric_Histogram{Histogram: &umetrics.Histogram{DataPoints: []*umetrics.HistogramDataPoint{{
					Attributes: a, StartTimeUnixNano: 1, TimeUnixNano: 2, Count: 6, Sum: f(12.5), BucketCounts: []uint64{1, 2, 3},
					ExplicitBounds: []float64{1, 10}, Exemplars: ex, Min: f(0.1), Max: f(99)}},
					AggregationTemporality: umetrics.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA}}},
				{Name: "e", Data: &umetrics.Metric_ExponentialHistogram{ExponentialHistogram: &umetrics.ExponentialHistogram{DataPoints: []*umetrics.ExponentialHistogramDataPoint{{
					Count: 4, Sum: f(2), Scale: -1, ZeroCount: 1, ZeroThreshold: 1e-9, Min: f(0), Max: f(3),
					Positive: &umetrics.ExponentialHistogramDataPoint_Buckets{Offset: -2, BucketCounts: []uint64{1, 2}},
					Negative: &umetrics.ExponentialHistogramDataPoint_Buckets{Offset: 1, BucketCounts: []uint64{1}}}}}}},
				{Name: "q", Data: &umetrics.Metric_Summary{Summary: &umetrics.Summary{DataPoints: []*umetrics.SummaryDataPoint{{
					Count: 3, Sum: 6, QuantileValues: []*umetrics.SummaryDataPoint_ValueAtQuantile{{Quantile: 0.5, Value: 2}, {Quantile: 1, Value: 3}}}}}}},
			},
		}},
	}}}
}

// TestOTLPBytesIdentical: a deterministic marshal of the real otlp types and
// our MarshalVT of the same request (moved across through the wire) are the
// same bytes, and each side decodes the other's to an equal message.
func TestOTLPBytesIdentical(t *testing.T) {
	for _, c := range []struct {
		name string
		up   proto.Message
		ours interface {
			proto.Message
			MarshalVT() ([]byte, error)
			UnmarshalVT([]byte) error
		}
	}{
		{"traces", fullTraces(), &colltrace.ExportTraceServiceRequest{}},
		{"metrics", fullMetrics(), &collmetrics.ExportMetricsServiceRequest{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			want, err := proto.MarshalOptions{Deterministic: true}.Marshal(c.up)
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
				t.Fatalf("bytes differ:\n ours %x\n otlp %x", got, want)
			}
			// And protobuf-go's own marshal of ours agrees too.
			if pg, _ := (proto.MarshalOptions{Deterministic: true}).Marshal(c.ours); !bytes.Equal(pg, want) {
				t.Fatal("protobuf-go's marshal of our type differs")
			}
			back := c.up.ProtoReflect().New().Interface()
			if err := (proto.UnmarshalOptions{}).Unmarshal(got, back); err != nil || !proto.Equal(back, c.up) {
				t.Fatalf("otlp decodes ours differently: %v", err)
			}
		})
	}
}
