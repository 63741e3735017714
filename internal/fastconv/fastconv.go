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
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"
)

// validUTF8 returns s if it is valid UTF-8, and otherwise a copy with each
// invalid byte sequence replaced by U+FFFD. protobuf-go rejects a whole
// message when one proto3 string is not valid UTF-8, so one bad attribute would
// otherwise lose the whole batch at the agent. Valid strings cost no allocation.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// grow returns s with length n, reusing the elements kept in its capacity and
// filling empty places with fresh messages from newT.
func grow[T any](s []*T, n int, newT func() *T) []*T {
	if cap(s) < n {
		s = append(s[:cap(s)], make([]*T, n-cap(s))...)
	}
	s = s[:n]
	for i, x := range s {
		if x == nil {
			s[i] = newT()
		}
	}
	return s
}

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

func clip32(x int) int32 {
	switch {
	case x > 1<<31-1:
		return 1<<31 - 1
	case x < -1<<31:
		return -1 << 31
	}
	return int32(x)
}
