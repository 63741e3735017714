package stream

// The ring is the queue between the exporter's callers and its
// writer: a bounded lock-free ring for many producers and one consumer.

import (
	"runtime"
	"sync/atomic"
)

// cacheLine separates fields written by different goroutines.
type cacheLine [64]byte

type ringSlot[T any] struct {
	seq atomic.Uint64
	val T
}

// Ring is a bounded lock-free queue for many producers and one consumer
// (Vyukov's bounded queue). Push never blocks and never allocates; it fails
// when the ring is full.
//
// Ownership: a value pushed belongs to the ring until Pop returns it to the
// consumer; the slot is cleared on Pop so the ring keeps no reference.
type Ring[T any] struct {
	_     cacheLine
	head  atomic.Uint64 // next position to push
	_     cacheLine
	tail  atomic.Uint64 // next position to pop (written by the consumer only)
	_     cacheLine
	mask  uint64
	slots []ringSlot[T]
}

// NewRing returns a ring of capacity n rounded up to a power of two, and at
// least 2: with one slot, the sequence number a push leaves ("full at pos")
// equals the one the next push looks for ("free at pos+1"), so a second push
// would overwrite the first.
func NewRing[T any](n int) *Ring[T] {
	size := 2
	for size < n {
		size <<= 1
	}
	r := &Ring[T]{mask: uint64(size - 1), slots: make([]ringSlot[T], size)}
	for i := range r.slots {
		r.slots[i].seq.Store(uint64(i))
	}
	return r
}

// Cap is the number of values the ring holds when full.
func (r *Ring[T]) Cap() int { return len(r.slots) }

// Len is the number of values in the ring (approximate while producers push).
func (r *Ring[T]) Len() int {
	n := int64(r.head.Load() - r.tail.Load())
	if n < 0 {
		return 0
	}
	return int(n)
}

// Push appends v and reports the position it took (1-based count of pushes so
// far, used by producers to decide when to wake the consumer), or 0 when the
// ring is full.
func (r *Ring[T]) Push(v T) uint64 {
	pos := r.head.Load()
	for {
		s := &r.slots[pos&r.mask]
		seq := s.seq.Load()
		switch d := int64(seq - pos); {
		case d == 0:
			if r.head.CompareAndSwap(pos, pos+1) {
				s.val = v
				s.seq.Store(pos + 1)
				return pos + 1
			}
			pos = r.head.Load()
		case d < 0:
			return 0
		default:
			pos = r.head.Load()
		}
	}
}

// Pop removes the oldest value. It must be called from one goroutine only.
// It reports false only when the ring is empty. When the oldest push has
// claimed its slot but not yet written it, Pop waits for that write (a few
// instructions, unless the producer was descheduled): returning early would
// make a Flush stop short of pushes that completed after the claim.
func (r *Ring[T]) Pop() (T, bool) {
	var zero T
	pos := r.tail.Load()
	s := &r.slots[pos&r.mask]
	for s.seq.Load() != pos+1 {
		if r.head.Load() == pos {
			return zero, false // empty: no push has claimed this slot
		}
		runtime.Gosched()
	}
	v := s.val
	s.val = zero
	s.seq.Store(pos + r.mask + 1)
	r.tail.Store(pos + 1)
	return v, true
}
