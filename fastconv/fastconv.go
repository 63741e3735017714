// Package fastconv converts OpenCensus data (*trace.SpanData, *view.Data,
// caller-built agent requests) into protocol wire bytes, for the OpenCensus
// agent protocol and for OTLP, without allocating in steady state.
//
// The public API is one encoder per signal: a SpanEncoder or a ViewEncoder
// for a Protocol. Encode returns one item's encoding (an
// opencensus.proto.trace.v1.Span, an opentelemetry.proto.trace.v1.Span, a
// metric of either protocol); Append appends it to a caller's buffer. Behind
// them, a converter fills a reused generated message in place (vtprotobuf
// types of this module, which never appear in the API): every child
// message, slice element and oneof wrapper already present is reused, and
// what a value does not need is kept aside in free lists for the next value
// that does. The message is then encoded at the end of a reused scratch
// buffer, without sizing it first.
//
// Ownership: an encoder, its messages and its scratch buffer belong to one
// goroutine (the stream writer); an encoder is not safe for concurrent use.
// The bytes Encode returns belong to the encoder and are valid until its
// next call; Append's result belongs to the caller. An encoder keeps no
// reference to its input except cached view and tag names.
package fastconv

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"
)

// setTime writes t into *dst, reusing the Timestamp already there.
func setTime(dst **timestamppb.Timestamp, t time.Time) {
	ts := *dst
	if ts == nil {
		ts = new(timestamppb.Timestamp)
		*dst = ts
	}
	// Upstream divides UnixNano, which gives negative nanos before 1970 and
	// overflows outside 1678..2262; Unix and Nanosecond are right everywhere and
	// equal to upstream's result for every time after 1970.
	ts.Seconds = t.Unix()
	ts.Nanos = int32(t.Nanosecond())
}
