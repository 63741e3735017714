package pool

import (
	"runtime"
	"testing"

	"google.golang.org/grpc/mem"
)

func TestBuffersClasses(t *testing.T) {
	b := NewBuffers()
	for _, n := range []int{0, 1, 1024, 1025, 4096, 300 << 10} {
		p := b.Get(n)
		if len(*p) != n || cap(*p) < minPooled || cap(*p)&(cap(*p)-1) != 0 {
			t.Errorf("Get(%d): len %d cap %d", n, len(*p), cap(*p))
		}
		b.Put(p)
	}
	// Over the largest class: allocated to size, not pooled.
	big := b.Get(1<<26 + 1)
	if len(*big) != 1<<26+1 {
		t.Errorf("big len %d", len(*big))
	}
	b.Put(big)
	// A foreign buffer is dropped, not pooled.
	odd := make([]byte, 1000, 3000)
	b.Put(&odd)
}

func TestBuffersReuseAllocs(t *testing.T) {
	b := NewBuffers()
	b.Put(b.Get(100 << 10))
	if n := testing.AllocsPerRun(100, func() { b.Put(b.Get(100 << 10)) }); n != 0 {
		t.Errorf("%v allocs per Get/Put", n)
	}
}

func TestPoisonOnPut(t *testing.T) {
	if !Poisoning {
		t.Skip("poisoning is on with -tags zerocensus_poison")
	}
	b := NewBuffers()
	p := b.Get(2048)
	kept := (*p)[:2048]
	for i := range kept {
		kept[i] = 1
	}
	b.Put(p)
	for i, c := range kept {
		if c != 0xDB {
			t.Fatalf("byte %d not poisoned after Put: %x", i, c)
		}
	}
}

func TestFreeList(t *testing.T) {
	var f FreeList[int]
	x := f.Get()
	f.Put(x)
	f.Put(nil)
	if f.Len() != 1 || f.Get() != x || f.Len() != 0 {
		t.Error("FreeList does not give back what was put")
	}
}

// TestBuffersSurviveGC: the last few buffers of a class are not lost to a
// garbage collection, so a steady exporter makes no new encode buffers.
func TestBuffersSurviveGC(t *testing.T) {
	b := NewBuffers()
	p := b.Get(1 << 20)
	b.Put(p)
	runtime.GC()
	runtime.GC()
	if q := b.Get(1 << 20); q != p {
		t.Error("a returned buffer was lost to the GC")
	}
}

// TestSmallestBufferIsPooledByGRPC: grpc-go wraps a buffer of capacity up to
// its pooling threshold in a SliceBuffer that is never freed back, so every
// class must be above it, or small frames allocate.
func TestSmallestBufferIsPooledByGRPC(t *testing.T) {
	b := NewBuffers()
	for _, n := range []int{0, 1, 100, 1024, 1025} {
		mb := mem.NewBuffer(b.Get(n), b)
		if _, ok := mb.(mem.SliceBuffer); ok {
			t.Errorf("Get(%d): gRPC wraps it in a SliceBuffer, which it never frees back", n)
		}
		mb.Free()
	}
	// And what gRPC frees comes back: a Get/NewBuffer/Free cycle of a
	// small frame allocates nothing.
	if n := testing.AllocsPerRun(100, func() { mem.NewBuffer(b.Get(10), b).Free() }); n != 0 {
		t.Errorf("small frame through mem.NewBuffer: %v allocs", n)
	}
}
