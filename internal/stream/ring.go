// Package stream moves data from the exporter's callers to the agent: a
// bounded multi-producer ring, the batching writer that owns one gRPC stream,
// the pass-through codec that hands pre-encoded bytes to gRPC, and the
// connection with its reconnection backoff.
package stream

import (
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

// NewRing returns a ring of capacity n rounded up to a power of two.
func NewRing[T any](n int) *Ring[T] {
	size := 1
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
// It reports false when the ring is empty, or when the oldest push has taken
// its slot but not yet written it (the value is then popped by a later call).
func (r *Ring[T]) Pop() (T, bool) {
	var zero T
	pos := r.tail.Load()
	s := &r.slots[pos&r.mask]
	if s.seq.Load() != pos+1 {
		return zero, false
	}
	v := s.val
	s.val = zero
	s.seq.Store(pos + r.mask + 1)
	r.tail.Store(pos + 1)
	return v, true
}
