package pool

import (
	"math/bits"
	"sync"

	"google.golang.org/grpc/mem"
)

const (
	// 2 KiB: grpc-go's mem.NewBuffer pools a buffer only when its capacity is
	// above mem.IsBelowBufferPoolingThreshold (1 KiB inclusive in v1.85);
	// below, it wraps the slice in a SliceBuffer that is never freed back, so
	// a 1 KiB class would make every small frame an allocation. minPooled
	// follows the installed gRPC should its threshold move.
	minClassShift = 11
	maxClassShift = 26 // 64 MiB: larger buffers are allocated and left to the GC
	numClasses    = maxClassShift - minClassShift + 1
)

// Buffers is a pool of byte slices in power-of-two size classes. It
// implements grpc's mem.BufferPool so that a buffer handed to gRPC inside a
// mem.Buffer comes back here when the transport has written it.
//
// Ownership: Get makes the caller the owner. The owner either calls Put, or
// wraps the buffer with mem.NewBuffer(buf, b) and hands the mem.Buffer to gRPC,
// which then owns it and calls Put after the last reference is freed.
//
// Each class keeps its last few returned buffers in a small stack that the
// garbage collector does not empty, in front of a sync.Pool (which it does):
// a steady exporter then reuses the same encode buffers forever, where a bare
// sync.Pool would make new multi-megabyte buffers after every collection.
type Buffers struct {
	classes [numClasses]sync.Pool
	mu      sync.Mutex
	kept    [numClasses][]*[]byte
}

// keptPerClass bounds the GC-proof stack of each class: at most this many
// buffers of each size stay allocated while idle.
const keptPerClass = 4

var _ mem.BufferPool = (*Buffers)(nil)

// NewBuffers returns an empty pool.
func NewBuffers() *Buffers { return &Buffers{} }

// minPooled is the smallest capacity Get hands out: the smallest class whose
// buffers gRPC returns to the pool.
var minPooled = func() int {
	n := 1 << minClassShift
	for mem.IsBelowBufferPoolingThreshold(n) {
		n <<= 1
	}
	return n
}()

func class(n int) int {
	n = max(n, minPooled)
	if n <= 1<<minClassShift {
		return 0
	}
	return bits.Len(uint(n-1)) - minClassShift
}

// Get returns a buffer of length n. Its capacity is at least minPooled, so
// that gRPC gives it back to the pool rather than dropping it.
func (b *Buffers) Get(n int) *[]byte {
	c := class(n)
	if c >= numClasses {
		buf := make([]byte, n)
		return &buf
	}
	b.mu.Lock()
	if k := b.kept[c]; len(k) > 0 {
		p := k[len(k)-1]
		k[len(k)-1] = nil
		b.kept[c] = k[:len(k)-1]
		b.mu.Unlock()
		*p = (*p)[:n]
		return p
	}
	b.mu.Unlock()
	if p, ok := b.classes[c].Get().(*[]byte); ok {
		*p = (*p)[:n]
		return p
	}
	buf := make([]byte, n, 1<<(c+minClassShift))
	return &buf
}

// Put returns buf to its size class. Buffers of a capacity that is not a class
// size (not made by Get) are dropped.
func (b *Buffers) Put(buf *[]byte) {
	c := cap(*buf)
	if c < minPooled || c&(c-1) != 0 {
		return
	}
	k := bits.Len(uint(c)) - 1 - minClassShift
	if k >= numClasses {
		return
	}
	poison(*buf)
	*buf = (*buf)[:0]
	b.mu.Lock()
	if len(b.kept[k]) < keptPerClass {
		if b.kept[k] == nil {
			b.kept[k] = make([]*[]byte, 0, keptPerClass)
		}
		b.kept[k] = append(b.kept[k], buf)
		b.mu.Unlock()
		return
	}
	b.mu.Unlock()
	b.classes[k].Put(buf)
}
