package stream_test

import (
	"bytes"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	agenttracepb "github.com/zerocensus/ocagent/internal/ocproto/agent/trace/v1"
	resourcepb "github.com/zerocensus/ocagent/internal/ocproto/resource/v1"
	tracepb "github.com/zerocensus/ocagent/internal/ocproto/trace/v1"
	otlpcolltracepb "github.com/zerocensus/ocagent/internal/otlpproto/collector/trace/v1"
	otlpcommonpb "github.com/zerocensus/ocagent/internal/otlpproto/common/v1"
	otlpresourcepb "github.com/zerocensus/ocagent/internal/otlpproto/resource/v1"
	otlptracepb "github.com/zerocensus/ocagent/internal/otlpproto/trace/v1"
	"github.com/zerocensus/ocagent/pool"
	"github.com/zerocensus/ocagent/stream"
)

// wrap encodes spans through a batch and env, as the scheduler does: the
// batch encodes its body into a pool buffer with the envelope's room around
// it (the room of the largest body, so that a small one leaves a gap before
// its head), and Wrap writes the rest of the request there.
func wrap[M proto.Message](t *testing.T, env stream.Envelope, spans []M) []byte {
	t.Helper()
	r := stream.NewRing[M](len(spans))
	for _, s := range spans {
		r.Push(s)
	}
	const maxBytes = 1 << 30
	head, tail := env.Room(maxBytes)
	var enc []byte
	b := stream.NewBatch(r, stream.EncoderFunc[M](func(m M, _ int) ([]byte, int, error) {
		var err error
		enc, err = proto.MarshalOptions{Deterministic: true}.MarshalAppend(enc[:0], m)
		return enc, len(enc), err
	}), len(spans), maxBytes, 0, stream.Room{Bufs: pool.NewBuffers(), Head: head, Tail: tail})
	_, size := b.Fill()
	buf, at, _ := b.Take()
	start, end := env.Wrap(*buf, at, size)
	return bytes.Clone((*buf)[start:end])
}

// TestOpenCensusEnvelope: spans and the resource after them are exactly a
// deterministic marshal of the request (the stream's first message carries
// the Node apart).
func TestOpenCensusEnvelope(t *testing.T) {
	spans := []*tracepb.Span{
		{TraceId: []byte{1}, SpanId: []byte{2}, Name: &tracepb.TruncatableString{Value: "a"}},
		{TraceId: bytes.Repeat([]byte{3}, 16), SpanId: []byte{4}, Kind: tracepb.Span_CLIENT},
	}
	res := &resourcepb.Resource{Type: "k8s", Labels: []*resourcepb.Resource_LabelsEntry{{Key: "k", Value: "v"}}}
	resBytes, err := proto.MarshalOptions{Deterministic: true}.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	suffix := append([]byte{0x1a, byte(len(resBytes))}, resBytes...)
	for _, c := range []struct {
		name   string
		suffix []byte
		res    *resourcepb.Resource
	}{{"with-resource", suffix, res}, {"no-resource", nil, nil}} {
		got := wrap(t, stream.NewOpenCensusEnvelope(c.suffix), spans)
		want, err := proto.MarshalOptions{Deterministic: true}.Marshal(&agenttracepb.ExportTraceServiceRequest{Spans: spans, Resource: c.res})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s:\n got %x\nwant %x", c.name, got, want)
		}
	}
}

// TestOTLPEnvelope: the OTLP request around a batch of spans is exactly a
// deterministic marshal of ExportTraceServiceRequest{ResourceSpans:
// [{Resource, ScopeSpans: [{Scope, Spans}]}]}, with and without a resource or
// a scope, for bodies whose length prefixes take one, two and three bytes.
func TestOTLPEnvelope(t *testing.T) {
	res := &otlpresourcepb.Resource{Attributes: []*otlpcommonpb.KeyValue{{Key: "service.name",
		Value: &otlpcommonpb.AnyValue{Value: &otlpcommonpb.AnyValue_StringValue{StringValue: "svc"}}}}}
	scope := &otlpcommonpb.InstrumentationScope{Name: "scope"}
	resB, _ := res.MarshalVT()
	scopeB, _ := scope.MarshalVT()
	for _, n := range []int{1, 3, 300} {
		var spans []*otlptracepb.Span
		for i := range n {
			spans = append(spans, &otlptracepb.Span{TraceId: bytes.Repeat([]byte{byte(i)}, 16), Name: strings.Repeat("n", i%50)})
		}
		for _, c := range []struct {
			res   *otlpresourcepb.Resource
			scope *otlpcommonpb.InstrumentationScope
		}{{res, scope}, {nil, scope}, {res, nil}, {nil, nil}} {
			var rb, sb []byte
			if c.res != nil {
				rb = resB
			}
			if c.scope != nil {
				sb = scopeB
			}
			got := wrap(t, stream.NewOTLPEnvelope(rb, sb), spans)
			want, err := proto.MarshalOptions{Deterministic: true}.Marshal(&otlpcolltracepb.ExportTraceServiceRequest{
				ResourceSpans: []*otlptracepb.ResourceSpans{{Resource: c.res, ScopeSpans: []*otlptracepb.ScopeSpans{{Scope: c.scope, Spans: spans}}}}})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%d spans, resource %v, scope %v: bytes differ", n, c.res != nil, c.scope != nil)
			}
		}
	}
}
