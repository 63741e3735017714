package fastconv

import (
	commonpb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/common/v1"
	agentmetricspb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/metrics/v1"
	agenttracepb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/trace/v1"
	resourcepb "github.com/census-instrumentation/opencensus-proto/gen-go/resource/v1"
)

// Request is a caller-built OpenCensus request translated into OTLP, ready
// to be encoded. Not a hot path: translation allocates.
type Request struct {
	m     vtMessage
	items int
}

// Size is the request's encoded size.
func (r Request) Size() int { return r.m.SizeVT() }

// Items is the number of spans or metrics the request carries.
func (r Request) Items() int { return r.items }

// Encode writes the request into buf, which must be exactly Size() bytes.
func (r Request) Encode(buf []byte) error {
	_, err := r.m.MarshalToSizedBufferVT(buf)
	return err
}

// TranslateTraces translates req into an OTLP ExportTraceServiceRequest by
// the rules of the Collector's OpenCensus translator: the spans without a
// resource of their own share one ResourceSpans with the request's Node and
// Resource, or node and res where the request has none (an agent applies a
// stream's last ones).
func TranslateTraces(req *agenttracepb.ExportTraceServiceRequest, node *commonpb.Node, res *resourcepb.Resource) Request {
	return Request{
		m:     otlpTraceRequest(orDefault(req.Node, node), orDefault(req.Resource, res), req.Spans),
		items: nonNil(req.Spans),
	}
}

// TranslateMetrics translates req into an OTLP ExportMetricsServiceRequest,
// as TranslateTraces. It refuses metrics OTLP cannot carry.
func TranslateMetrics(req *agentmetricspb.ExportMetricsServiceRequest, node *commonpb.Node, res *resourcepb.Resource) (Request, error) {
	m, err := otlpMetricsRequest(orDefault(req.Node, node), orDefault(req.Resource, res), req.Metrics)
	if err != nil {
		return Request{}, err
	}
	return Request{m: m, items: nonNil(req.Metrics)}, nil
}

// OTLPResource encodes the OTLP Resource of node and res (translated as the
// Collector's OpenCensus receiver did) with attrs added (the pairs of
// OTEL_RESOURCE_ATTRIBUTES; an attribute already present keeps its value).
// It returns nil when there is nothing to say.
func OTLPResource(node *commonpb.Node, res *resourcepb.Resource, attrs [][2]string) ([]byte, error) {
	r := otlpWithAttributes(otlpResource(node, res), attrs)
	if r == nil {
		return nil, nil
	}
	return r.MarshalVT()
}

// orDefault is v, or def when v is nil.
func orDefault[T any](v, def *T) *T {
	if v == nil {
		return def
	}
	return v
}

// nonNil counts the elements of s that are not nil.
func nonNil[T any](s []*T) int {
	n := 0
	for _, v := range s {
		if v != nil {
			n++
		}
	}
	return n
}
