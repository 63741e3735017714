// Package rawcodec is the gRPC codec of this module's test agents: it hands
// a server the bytes of each message it receives and sends the bytes it is
// given, so that an agent can check what was on the wire without decoding
// into generated types. Not for the exporter itself (transport.Codec sends
// pooled frames without copying).
package rawcodec

import (
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
)

// Codec sends a *[]byte as it is and receives into a *[]byte (a copy the
// receiver owns). Its name "proto" makes the content type plain gRPC
// protobuf; use it with grpc.ForceServerCodecV2.
type Codec struct{}

var _ encoding.CodecV2 = Codec{}

// Name implements encoding.CodecV2.
func (Codec) Name() string { return "proto" }

// Marshal implements encoding.CodecV2.
func (Codec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}

// Unmarshal implements encoding.CodecV2.
func (Codec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}
