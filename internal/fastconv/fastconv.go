// Package fastconv converts OpenCensus data into this module's generated
// protocol messages without allocating in steady state.
//
// A converter fills a destination message in place: every child message, slice
// element and oneof wrapper already present in the destination is reused, and
// what the new value does not need is kept aside in the converter's free lists
// for the next value that does. Converting a stream of spans of a similar shape
// into the same few destination messages therefore allocates nothing.
//
// Ownership: a converter and the messages it fills belong to one goroutine
// (the stream writer). The converter keeps no reference to its input.
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
