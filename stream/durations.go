package stream

import (
	"sync/atomic"
	"time"
)

// DurationBounds are the bucket bounds, in seconds, of export durations:
// OpenTelemetry's default explicit bucket boundaries, in seconds (the
// self-metric otel.sdk.exporter.operation.duration).
var DurationBounds = [...]float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

// Status codes are what a transport's outcomes are keyed by: a gRPC code
// (codes.Code) for the gRPC transports, an HTTP status for OTLP/HTTP, and
// CodeStopped for an export Stop cut before it had an answer, in either.
const CodeStopped = -1

// codeSlots bounds the distinct codes one table counts: gRPC has 17, an
// HTTP agent answers with a handful. A code past the first codeSlots-1 is
// counted under CodeOther.
const codeSlots = 32

// CodeOther is the code under which a table counts the codes beyond its
// capacity (never reached by gRPC's 17 codes plus CodeStopped).
const CodeOther = -2

// codeTable maps codes to slots, claimed once each with a compare-and-swap:
// lookups after the first are a few atomic loads, and nothing allocates.
type codeTable struct {
	keys [codeSlots]atomic.Int64 // code - CodeOther + 1 (0: free)
}

func (t *codeTable) slot(code int) int {
	k := int64(code) - CodeOther + 1
	for i := range codeSlots - 1 {
		v := t.keys[i].Load()
		if v == 0 && t.keys[i].CompareAndSwap(0, k) {
			return i
		}
		if v == k || t.keys[i].Load() == k {
			return i
		}
	}
	t.keys[codeSlots-1].Store(1) // CodeOther
	return codeSlots - 1
}

// code is the code of slot i, and whether the slot was claimed.
func (t *codeTable) code(i int) (int, bool) {
	v := t.keys[i].Load()
	return int(v) + CodeOther - 1, v != 0
}

// Durations is a histogram of export operations (one observation per
// export, all its attempts included) per final status code, with atomic
// counters: Observe costs a few atomic adds and no allocation.
type Durations struct {
	codes codeTable
	hists [codeSlots]histogram
}

type histogram struct {
	buckets [len(DurationBounds) + 1]atomic.Uint64
	sumNs   atomic.Int64
}

// Observe counts one export of duration d that ended with code (see
// CodeStopped).
func (h *Durations) Observe(d time.Duration, code int) {
	g := &h.hists[h.codes.slot(code)]
	s := d.Seconds()
	i := 0
	for i < len(DurationBounds) && s > DurationBounds[i] {
		i++
	}
	g.sumNs.Add(int64(d))
	g.buckets[i].Add(1)
}

// DurationSnapshot is one status code's histogram.
type DurationSnapshot struct {
	Code    int
	Count   uint64
	Sum     time.Duration
	Buckets [len(DurationBounds) + 1]uint64 // counts per bucket of DurationBounds (the last: above the last bound)
}

// Snapshot appends the histograms of the codes observed to dst.
func (h *Durations) Snapshot(dst []DurationSnapshot) []DurationSnapshot {
	for i := range h.hists {
		code, ok := h.codes.code(i)
		if !ok {
			continue
		}
		g := &h.hists[i]
		s := DurationSnapshot{Code: code, Sum: time.Duration(g.sumNs.Load())}
		for j := range g.buckets {
			s.Buckets[j] = g.buckets[j].Load()
			s.Count += s.Buckets[j] // consistent with the buckets, whatever races in
		}
		if s.Count > 0 {
			dst = append(dst, s)
		}
	}
	return dst
}

// Refusals count the items and data points of requests an agent refused as
// a whole, by status code.
type Refusals struct {
	codes  codeTable
	items  [codeSlots]atomic.Uint64
	points [codeSlots]atomic.Uint64
}

// Refusal is one status code's refusals.
type Refusal struct {
	Code          int
	Items, Points uint64
}

func (r *Refusals) add(n Count, code int) {
	i := r.codes.slot(code)
	r.points[i].Add(uint64(n.Points))
	r.items[i].Add(uint64(n.Items))
}

// Snapshot appends the refusals of each code seen to dst.
func (r *Refusals) Snapshot(dst []Refusal) []Refusal {
	for i := range r.items {
		if code, ok := r.codes.code(i); ok {
			dst = append(dst, Refusal{Code: code, Items: r.items[i].Load(), Points: r.points[i].Load()})
		}
	}
	return dst
}
