package fastconv

// ocdata.go holds what both converters (span.go and view.go for the
// OpenCensus protocol, otlp_*.go for OTLP) need to know about OpenCensus data: how a view
// is validated and what its rows become, the prefixed metric names, and the
// reuse helpers both use to fill generated messages in place.

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
	"unsafe"

	"go.opencensus.io/stats"
	"go.opencensus.io/stats/view"
)

// validUTF8 returns s if it is valid UTF-8, and otherwise a copy with each
// invalid byte sequence replaced by U+FFFD. protobuf-go rejects a whole
// message when one proto3 string is not valid UTF-8, so one bad attribute
// would otherwise lose the whole batch at the agent. Valid strings cost no
// allocation.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// validUTF8Since is validUTF8(s) for a field that holds prev, what an
// earlier conversion stored there (always through validUTF8, or a constant).
// When s is prev itself, the same bytes at the same address (an
// instrumentation's literal key, a value shared by many spans), it was
// valid when stored and a Go string's bytes never change, so it is not
// validated again. A repaired string is a copy at another address: its
// source is validated, and repaired, every time.
func validUTF8Since(prev, s string) string {
	if sameString(prev, s) {
		return s
	}
	return validUTF8(s)
}

// Same reports whether a and b are the same string: the same length at the
// same address (then, for Go strings, the same bytes).
func sameString(a, b string) bool {
	return len(a) == len(b) && unsafe.StringData(a) == unsafe.StringData(b)
}

// smallMap is the most entries of a Go map that iterates as a rotation:
// a map of at most 8 entries is one group of slots, and each range over it
// starts at a random slot and goes round the group in order.
const smallMap = 8

// keyed is a generated key-value message.
type keyed interface{ GetKey() string }

// rotation places the entries of one range over a map into slots, the
// key-value messages the previous range filled, in range order. For a small
// map the new range is the previous one rotated, so the first entry goes to
// the slot that holds its key itself and the rest go round from there:
// every key keeps its slot, and every value's type with it, so no oneof
// wrapper changes hands, no key or value is stored again, and
// validUTF8Since finds them as they were. A larger map (whose ranges are
// not rotations), or a first key in no slot, fills the slots in order.
//
// For each entry of the range: Next, then Keep if the entry was stored
// (one that is skipped leaves its slot to the next entry); after the range,
// Done.
type rotation[T keyed] struct {
	slots           []T
	start, at, kept int
	started         bool
}

// rotate begins a range over a map of len(slots) entries.
func rotate[T keyed](slots []T) rotation[T] {
	// One slot or none: nothing to rotate, nothing to look for.
	return rotation[T]{slots: slots, started: len(slots) <= 1}
}

// Next is the slot for the range's next entry, whose key is k.
func (r *rotation[T]) Next(k string) T {
	if !r.started {
		r.begin(k) // out of line, so that Next is inlined
	}
	return r.slots[r.at]
}

//go:noinline
func (r *rotation[T]) begin(k string) {
	r.started = true
	r.start = rotationStart(r.slots, k)
	r.at = r.start
}

// Keep records that the entry Next placed was stored in its slot.
func (r *rotation[T]) Keep() {
	r.kept++
	if r.at++; r.at == len(r.slots) {
		r.at = 0
	}
}

// Done returns how many entries were kept, and makes them the first
// elements of the slots.
func (r *rotation[T]) Done() int {
	unrotate(r.slots, r.start, r.kept)
	return r.kept
}

// rotationStart is the slot that holds k itself, or 0 when none does or
// there are more than smallMap slots.
func rotationStart[T keyed](slots []T, k string) int {
	if len(slots) > smallMap {
		return 0
	}
	for i, s := range slots {
		if sameString(s.GetKey(), k) {
			return i
		}
	}
	return 0
}

// unrotate makes the kept entries that a range placed at s[start],
// s[start+1], ... (going round s) the first kept elements of s. Only a range
// that skipped some entries needs it: one that filled all of s holds them
// in an order that is as good as any other.
func unrotate[T any](s []T, start, kept int) {
	if kept == len(s) || start == 0 {
		return
	}
	slices.Reverse(s[:start])
	slices.Reverse(s[start:])
	slices.Reverse(s)
}

// Grow returns s with length n, reusing the elements kept in its capacity and
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

// clip32 saturates x to the int32 range.
func clip32(x int) int32 {
	switch {
	case x > 1<<31-1:
		return 1<<31 - 1
	case x < -1<<31:
		return -1 << 31
	}
	return int32(x)
}

// Errors of kindOf.
var (
	ErrNilViewData    = errors.New("expecting a non-nil view.Data")
	ErrNilView        = errors.New("expecting a non-nil view.View")
	ErrNilMeasure     = errors.New("expecting a non-nil stats.Measure")
	ErrNilAggregation = errors.New("expecting a non-nil view.Aggregation")
)

// viewKind is what a view's rows become: the aggregation and, for sum and
// last value, whether the measure is a float64 one.
type viewKind uint8

// The kinds of views.
const (
	kindCount viewKind = iota
	kindSumInt
	kindSumDouble
	kindLastInt
	kindLastDouble
	kindDistribution
)

// kindOf validates vd completely (view, measure, aggregation, and every row's
// data against the aggregation) and returns what its rows convert to.
func kindOf(vd *view.Data) (viewKind, error) {
	if vd == nil {
		return 0, ErrNilViewData
	}
	v := vd.View
	if v == nil {
		return 0, ErrNilView
	}
	// Only an int64 measure makes int64 sums and last values: any other
	// measure (float64, or a user's own type) keeps its fraction as a double.
	double := true
	switch m := v.Measure.(type) {
	case nil:
		return 0, ErrNilMeasure
	case *stats.Float64Measure:
		if m == nil {
			return 0, ErrNilMeasure
		}
	case *stats.Int64Measure:
		if m == nil {
			return 0, ErrNilMeasure
		}
		double = false
	}
	if v.Aggregation == nil {
		return 0, ErrNilAggregation
	}
	var kind viewKind
	switch v.Aggregation.Type {
	case view.AggTypeCount:
		kind = kindCount
	case view.AggTypeSum:
		kind = kindSumInt
		if double {
			kind = kindSumDouble
		}
	case view.AggTypeLastValue:
		kind = kindLastInt
		if double {
			kind = kindLastDouble
		}
	case view.AggTypeDistribution:
		kind = kindDistribution
	default:
		return 0, fmt.Errorf("view %q: unsupported aggregation type %v", v.Name, v.Aggregation.Type)
	}
	for i, row := range vd.Rows {
		var ok bool
		if row != nil {
			switch kind {
			case kindCount:
				d, is := row.Data.(*view.CountData)
				ok = is && d != nil
			case kindSumInt, kindSumDouble:
				d, is := row.Data.(*view.SumData)
				ok = is && d != nil
			case kindLastInt, kindLastDouble:
				d, is := row.Data.(*view.LastValueData)
				ok = is && d != nil
			case kindDistribution:
				d, is := row.Data.(*view.DistributionData)
				ok = is && d != nil
			}
		}
		if !ok {
			return 0, fmt.Errorf("view %q: row %d: want %v aggregation data", v.Name, i, v.Aggregation.Type)
		}
	}
	return kind, nil
}

// maxCachedNames bounds the prefixed-name cache; past it the cache starts
// afresh (a process exports a fixed, small set of views).
const maxCachedNames = 4096

type nameKey struct{ prefix, name string }

// nameCache builds metric names: the view's name (or its measure's), prefixed
// by prefix + "/" when there is a prefix, caching the prefixed strings so
// that a prefixed view name costs one allocation per view for the life of
// the cache. It belongs to one goroutine.
type nameCache struct{ m map[nameKey]string }

// Metric returns the metric name of v with prefix, valid UTF-8, without
// allocating when old already holds it or the cache has built it before.
func (n *nameCache) Metric(old, prefix string, v *view.View) string {
	name := v.Name
	if name == "" {
		name = v.Measure.Name()
	}
	if prefix == "" {
		return validUTF8(name)
	}
	if len(old) == len(prefix)+1+len(name) && old[len(prefix)] == '/' &&
		strings.HasPrefix(old, prefix) && strings.HasSuffix(old, name) {
		return old
	}
	k := nameKey{prefix, name}
	if s, ok := n.m[k]; ok {
		return s
	}
	s := validUTF8(prefix + "/" + name)
	if n.m == nil || len(n.m) >= maxCachedNames {
		n.m = make(map[nameKey]string)
	}
	n.m[k] = s
	return s
}

// Description is the view's description, or its measure's.
func viewDescription(v *view.View) string {
	if v.Description != "" {
		return validUTF8(v.Description)
	}
	return validUTF8(v.Measure.Description())
}
