package pool_test

import (
	"fmt"

	"google.golang.org/grpc/mem"

	"github.com/zerocensus/ocagent/pool"
)

// A FreeList keeps spare objects for the one goroutine that owns it.
func ExampleFreeList() {
	type event struct{ name string }
	var spare pool.FreeList[event]
	e := spare.Get() // a new one: the list is empty
	e.name = "sent"
	spare.Put(e) // the owner gives it back; it must not touch e after this
	again := spare.Get()
	fmt.Println(again == e, again.name, spare.Len())
	// Output: true sent 0
}

// A buffer from Buffers is owned by the caller until it is put back, or
// handed to gRPC inside a mem.Buffer: gRPC then frees it into the pool once
// it has written it.
func ExampleBuffers() {
	bufs := pool.NewBuffers()
	buf := bufs.Get(3000) // len 3000, in the 4 KiB class
	fmt.Println(len(*buf), cap(*buf))
	copy(*buf, "payload")
	mb := mem.NewBuffer(buf, bufs) // ownership passes to the mem.Buffer
	fmt.Println(string(mb.ReadOnlyData()[:7]))
	mb.Free() // the last reference: buf goes back to bufs
	// Output:
	// 3000 4096
	// payload
}
