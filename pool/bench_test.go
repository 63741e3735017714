package pool_test

import (
	"testing"

	"github.com/zerocensus/ocagent/pool"
)

// BenchmarkFreeList: a Get and a Put of a warm list, 0 allocs/op.
func BenchmarkFreeList(b *testing.B) {
	var f pool.FreeList[[64]byte]
	f.Put(f.Get())
	b.ReportAllocs()
	for b.Loop() {
		f.Put(f.Get())
	}
}

// BenchmarkBuffers: a Get and a Put of a 64 KiB buffer, the size of a
// typical span batch, 0 allocs/op once the class holds one.
func BenchmarkBuffers(b *testing.B) {
	bufs := pool.NewBuffers()
	bufs.Put(bufs.Get(64 << 10))
	b.ReportAllocs()
	for b.Loop() {
		bufs.Put(bufs.Get(64 << 10))
	}
}
