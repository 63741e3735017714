package stream_test

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/zerocensus/ocagent/pool"
	"github.com/zerocensus/ocagent/stream"
)

// A Batch pops items from a Ring, has its Encoder encode each, and lays the
// body out as the items fields of a request; an Envelope writes the rest of
// the request around it in place. Here the items are strings, encoded as
// themselves, in an OpenCensus request that ends with a Resource field.
func ExampleBatch() {
	ring := stream.NewRing[string](8)
	for _, s := range []string{"a", "bb", "ccc"} {
		ring.Push(s)
	}
	enc := stream.EncoderFunc[string](func(s string, max int) ([]byte, int, error) {
		if len(s) > max {
			return nil, len(s), nil
		}
		return []byte(s), len(s), nil
	})
	env := stream.NewOpenCensusEnvelope([]byte{0x1a, 0x00}) // an empty Resource (field 3)
	const maxBytes = 1 << 10
	head, tail := env.Room(maxBytes)
	bufs := pool.NewBuffers()
	b := stream.NewBatch(ring, stream.Encoder[string](enc), 100, maxBytes, 0, stream.Room{Bufs: bufs, Head: head, Tail: tail})

	items, size := b.Fill()
	buf, at, _ := b.Take() // the caller owns buf now
	start, end := env.Wrap(*buf, at, size)
	req := (*buf)[start:end]
	fmt.Println(items, "items,", len(req), "bytes")
	for len(req) > 0 {
		num, _, n := protowire.ConsumeTag(req)
		v, m := protowire.ConsumeBytes(req[n:])
		fmt.Printf("field %d: %q\n", num, v)
		req = req[n+m:]
	}
	bufs.Put(buf) // a transport would hand it to gRPC, which frees it here
	// Output:
	// 3 items, 14 bytes
	// field 2: "a"
	// field 2: "bb"
	// field 2: "ccc"
	// field 3: ""
}
