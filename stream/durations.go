package stream

import (
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
)

// DurationBounds are the bucket bounds, in seconds, of export durations:
// OpenTelemetry's default explicit bucket boundaries, in seconds (the
// self-metric otel.sdk.exporter.operation.duration).
var DurationBounds = [...]float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

// codeCount is the number of gRPC status codes (OK..Unauthenticated).
const codeCount = 17

// Durations is a histogram of export operations (one observation per
// export, all its attempts included) per final gRPC status code, with
// atomic counters: Observe costs a few atomic adds and no allocation.
type Durations struct {
	codes [codeCount]histogram
}

type histogram struct {
	buckets [len(DurationBounds) + 1]atomic.Uint64
	count   atomic.Uint64
	sumNs   atomic.Int64
}

// Observe counts one export of duration d that ended with code c.
func (h *Durations) Observe(d time.Duration, c codes.Code) {
	if int(c) >= codeCount {
		c = codes.Unknown
	}
	g := &h.codes[c]
	s := d.Seconds()
	i := 0
	for i < len(DurationBounds) && s > DurationBounds[i] {
		i++
	}
	g.buckets[i].Add(1)
	g.sumNs.Add(int64(d))
	g.count.Add(1)
}

// DurationSnapshot is one status code's histogram.
type DurationSnapshot struct {
	Code    codes.Code
	Count   uint64
	Sum     time.Duration
	Buckets [len(DurationBounds) + 1]uint64 // counts per bucket of DurationBounds (the last: above the last bound)
}

// Snapshot appends the histograms of the codes observed to dst.
func (h *Durations) Snapshot(dst []DurationSnapshot) []DurationSnapshot {
	for c := range h.codes {
		g := &h.codes[c]
		n := g.count.Load()
		if n == 0 {
			continue
		}
		s := DurationSnapshot{Code: codes.Code(c), Sum: time.Duration(g.sumNs.Load())}
		for i := range g.buckets {
			s.Buckets[i] = g.buckets[i].Load()
			s.Count += s.Buckets[i] // consistent with the buckets, whatever races in
		}
		dst = append(dst, s)
	}
	return dst
}
