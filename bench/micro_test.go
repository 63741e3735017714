package bench

import (
	"testing"

	uptracepb "github.com/census-instrumentation/opencensus-proto/gen-go/trace/v1"
	"go.opencensus.io/trace"
	"google.golang.org/protobuf/proto"

	upagenttracepb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/trace/v1"

	"github.com/zerocensus/ocagent/fastconv"
	octracepb "github.com/zerocensus/ocagent/internal/ocproto/trace/v1"
	otlptracepb "github.com/zerocensus/ocagent/internal/otlpproto/trace/v1"
	"github.com/zerocensus/ocagent/pool"
	"github.com/zerocensus/ocagent/stream"
)

// microBatch is the spans of one batch of the default size.
const microBatch = 300

// BenchmarkMicro is the gate's deterministic part: the hot paths alone, in
// one goroutine, without gRPC. Their allocation counts are the same every
// run (the gate checks them exactly) and their times are pure CPU, so the
// ratio of ours to upstream's equivalent, measured in the same rounds, is
// stable (the gate checks it closely):
//
//	convert/impl=ours|ours-otlp  one typical span through fastconv's public SpanEncoder:
//	                             converted into its reused message and marshalled at the end
//	                             of its scratch buffer (conversion alone is BenchmarkConvertSpan
//	                             in package fastconv, which make bench runs)
//	encode/impl=ours|ours-otlp   a batch of 300 converted typical spans encoded: stream's
//	                             Batch.Fill with an encoder that marshals the (already
//	                             converted) message as fastconv's does, so that only
//	                             marshalling, the ring and the body remain, then Take
//	encode/impl=upstream         upstream's encoding of the same 300 spans (protobuf-go's Marshal of its request)
func BenchmarkMicro(b *testing.B) {
	sh := shapes[1] // typical
	sd := spanData(b, sh)
	b.Run("convert/shape=typical/impl=ours", func(b *testing.B) {
		announce(b)
		encodeSpans(b, fastconv.NewSpanEncoder(fastconv.OpenCensus, fastconv.SpanOptions{}), sd)
	})
	b.Run("convert/shape=typical/impl=ours-otlp", func(b *testing.B) {
		announce(b)
		encodeSpans(b, fastconv.NewSpanEncoder(fastconv.OTLP, fastconv.SpanOptions{}), sd)
	})
	b.Run("encode/shape=typical/impl=ours", func(b *testing.B) {
		announce(b)
		encodeBatch(b, sd, converted[octracepb.Span](b, fastconv.OpenCensus, sd))
	})
	b.Run("encode/shape=typical/impl=ours-otlp", func(b *testing.B) {
		announce(b)
		encodeBatch(b, sd, converted[otlptracepb.Span](b, fastconv.OTLP, sd))
	})
	b.Run("encode/shape=typical/impl=upstream", func(b *testing.B) {
		announce(b)
		// The same span as upstream's proto (ours is byte-identical to it).
		raw := fastconv.NewSpanEncoder(fastconv.OpenCensus, fastconv.SpanOptions{}).Append(nil, sd)
		var err error
		req := &upagenttracepb.ExportTraceServiceRequest{}
		for range microBatch {
			s := new(uptracepb.Span)
			if err := proto.Unmarshal(raw, s); err != nil {
				b.Fatal(err)
			}
			req.Spans = append(req.Spans, s)
		}
		var buf []byte
		b.ReportAllocs()
		for b.Loop() {
			if buf, err = (proto.MarshalOptions{}).MarshalAppend(buf[:0], req); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*microBatch), "ns/span")
	})
}

// encodeSpans times one span through a public encoder.
func encodeSpans(b *testing.B, enc *fastconv.SpanEncoder, sd *trace.SpanData) {
	enc.Encode(sd, 1<<30)
	b.ReportAllocs()
	for b.Loop() {
		enc.Encode(sd, 1<<30)
	}
}

// converted is sd converted by fastconv's encoder in protocol p, decoded
// into this module's generated message M.
func converted[T any, M interface {
	*T
	vtMessage
	UnmarshalVT([]byte) error
}](b *testing.B, p fastconv.Protocol, sd *trace.SpanData) M {
	m := M(new(T))
	if err := m.UnmarshalVT(fastconv.NewSpanEncoder(p, fastconv.SpanOptions{}).Append(nil, sd)); err != nil {
		b.Fatal(err)
	}
	return m
}

// preEncoded is a stream.Encoder of a message already converted: it only
// marshals it at the end of its scratch buffer, as fastconv's encoders do.
type preEncoded struct {
	m       vtMessage
	scratch []byte
}

func (e *preEncoded) Encode(_ *trace.SpanData, _ int) ([]byte, int, error) {
	n, err := e.m.MarshalToSizedBufferVT(e.scratch)
	return e.scratch[len(e.scratch)-n:], n, err
}

// encodeBatch times what a batch does besides converting: each round trip
// pushes a batch of sd into a ring, and the batch pops and marshals each
// span and appends it to the body (Fill), then hands the body's buffer over
// and takes another from the pool (Take; the buffer goes back to the pool
// at once, as gRPC returns it once written). Its encoder marshals m, the
// span already converted (the converters' own cost is convert/...).
func encodeBatch(b *testing.B, sd *trace.SpanData, m vtMessage) {
	r := stream.NewRing[*trace.SpanData](microBatch)
	bufs := pool.NewBuffers()
	enc := &preEncoded{m: m, scratch: make([]byte, fastconv.ScratchBytes)}
	bt := stream.NewBatch(r, stream.Encoder[*trace.SpanData](enc), microBatch, 1<<30, 0, stream.Room{Bufs: bufs})
	round := func() {
		for range microBatch {
			r.Push(sd)
		}
		if n, _ := bt.Fill(); n != microBatch {
			b.Fatalf("batch of %d", n)
		}
		buf, _, _ := bt.Take()
		bufs.Put(buf) // as gRPC does once it has written it
	}
	round() // the body buffer grows once
	b.ReportAllocs()
	for b.Loop() {
		round()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*microBatch), "ns/span")
}
