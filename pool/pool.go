// Package pool holds the typed pools this exporter recycles its memory
// through: an unsynchronised free list for objects owned by a single
// goroutine, and the byte buffers that carry encoded batches to gRPC.
// (Generated messages have their own pools, XxxFromVTPool, from vtprotobuf.)
//
// Ownership rule for everything here: an object taken from a pool has exactly
// one owner until that owner puts it back, and nobody touches it after that.
package pool

// FreeList is a stack of spare objects for one goroutine. It is cheaper than
// sync.Pool (no per-P shards, no atomic operations) and is used where a single
// writer goroutine swaps objects in and out of reused messages. It never
// shrinks: its length is bounded by the largest number of objects the owner
// ever released at once.
type FreeList[T any] struct {
	items []*T
}

// Get pops a spare object or allocates a zero one.
func (f *FreeList[T]) Get() *T {
	if n := len(f.items); n > 0 {
		x := f.items[n-1]
		f.items[n-1] = nil
		f.items = f.items[:n-1]
		return x
	}
	return new(T)
}

// Put pushes x as a spare; x must be reset by the caller when it matters.
func (f *FreeList[T]) Put(x *T) {
	if x != nil {
		f.items = append(f.items, x)
	}
}

// Len is the number of spare objects.
func (f *FreeList[T]) Len() int { return len(f.items) }
