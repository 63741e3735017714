package bench

import (
	"testing"

	uptracepb "github.com/census-instrumentation/opencensus-proto/gen-go/trace/v1"
	"go.opencensus.io/trace"
	"google.golang.org/protobuf/proto"

	upagenttracepb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/trace/v1"

	"github.com/zerocensus/ocagent/internal/batch"
	"github.com/zerocensus/ocagent/internal/fastconv"
	octracepb "github.com/zerocensus/ocagent/internal/ocproto/trace/v1"
	"github.com/zerocensus/ocagent/internal/otlpconv"
	otlptracepb "github.com/zerocensus/ocagent/internal/otlpproto/trace/v1"
	"github.com/zerocensus/ocagent/internal/pool"
	"github.com/zerocensus/ocagent/internal/ring"
)

// microBatch is the spans of one batch of the default size.
const microBatch = 300

// BenchmarkMicro is the gate's deterministic part: the hot paths alone, in
// one goroutine, without gRPC. Their allocation counts are the same every
// run (the gate checks them exactly) and their times are pure CPU, so the
// ratio of ours to upstream's equivalent, measured in the same rounds, is
// stable (the gate checks it closely):
//
//	convert/impl=ours|ours-otlp  one typical span converted into a reused message
//	encode/impl=ours|ours-otlp   a batch of 300 converted typical spans encoded: batch.Fill
//	                             with a conversion that leaves the (already converted) message
//	                             as it is, so that only sizing, marshalling and the ring remain,
//	                             then batch.Encode (the copy out) and Sent
//	encode/impl=upstream         upstream's encoding of the same 300 spans (protobuf-go's Marshal of its request)
func BenchmarkMicro(b *testing.B) {
	sh := shapes[1] // typical
	sd := spanData(b, sh)
	b.Run("convert/shape=typical/impl=ours", func(b *testing.B) {
		announce(b)
		c, dst := fastconv.NewSpanConverter(0, 0), new(octracepb.Span)
		c.Convert(dst, sd)
		b.ReportAllocs()
		for b.Loop() {
			c.Convert(dst, sd)
		}
	})
	b.Run("convert/shape=typical/impl=ours-otlp", func(b *testing.B) {
		announce(b)
		c, dst := otlpconv.NewSpanConverter(0, 0), new(otlptracepb.Span)
		c.Convert(dst, sd)
		b.ReportAllocs()
		for b.Loop() {
			c.Convert(dst, sd)
		}
	})
	b.Run("encode/shape=typical/impl=ours", func(b *testing.B) {
		announce(b)
		encodeBatch(b, sd, func(m *octracepb.Span) { fastconv.NewSpanConverter(0, 0).Convert(m, sd) })
	})
	b.Run("encode/shape=typical/impl=ours-otlp", func(b *testing.B) {
		announce(b)
		encodeBatch(b, sd, func(m *otlptracepb.Span) { otlpconv.NewSpanConverter(0, 0).Convert(m, sd) })
	})
	b.Run("encode/shape=typical/impl=upstream", func(b *testing.B) {
		announce(b)
		// The same span as upstream's proto (ours is byte-identical to it).
		oc := new(octracepb.Span)
		fastconv.NewSpanConverter(0, 0).Convert(oc, sd)
		raw, err := oc.MarshalVT()
		if err != nil {
			b.Fatal(err)
		}
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

// encodeBatch times what a batch does besides converting: each round trip
// pushes a batch of sd into a ring, and the batch pops and marshals each
// span and appends it to the body (Fill), then hands the body's buffer over
// and takes another from the pool (Take; the buffer goes back to the pool
// at once, as gRPC returns it once written). Its
// conversion leaves the message as it is: the batch's messages are made
// already converted by fill (the converters' own cost is convert/...).
func encodeBatch[T any, M interface {
	*T
	batch.Message
}](b *testing.B, sd *trace.SpanData, fill func(M)) {
	r := ring.New[*trace.SpanData](microBatch)
	keep := func(M, *trace.SpanData) bool { return true }
	converted := func() M {
		m := M(new(T))
		fill(m)
		return m
	}
	bufs := pool.NewBuffers()
	bt := batch.New(r, keep, converted, microBatch, 1<<30, 0, batch.Room{Bufs: bufs})
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
