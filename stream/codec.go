package stream

import (
	"errors"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
)

// Frame is one pre-encoded message on its way to gRPC.
//
// Ownership: the transport wraps a pool buffer in a mem.Buffer (one
// reference, the transport's) and passes a Frame holding it to SendMsg or
// Invoke. The codec's Marshal gives gRPC a reference of its own, which gRPC
// frees once the transport has written the bytes (or the send failed). The
// transport keeps its own reference for as long as it may need to send the
// bytes again (the OpenCensus replay, an OTLP retry) and frees it after; the
// last Free returns the buffer to the pool. Nobody writes to the bytes after
// they were encoded.
type Frame struct {
	Buf mem.Buffer
}

// Reply receives an agent's reply without copying it: UnmarshalReply reads
// what it needs from data and keeps no reference to it.
type Reply interface {
	UnmarshalReply(data mem.BufferSlice) error
}

// Codec is the grpc encoding.CodecV2 of the exporter's Export streams and
// calls: it sends a Frame's bytes as they are, skipping gRPC's marshalling,
// and hands replies to a Reply (or ignores them). It is forced per call with
// grpc.ForceCodecV2; its name "proto" makes the content-type
// "application/grpc+proto", which gRPC servers treat as the plain
// "application/grpc" protobuf they expect.
type Codec struct{}

var _ encoding.CodecV2 = Codec{}

var errNotFrame = errors.New("transport: the Export codec only sends *Frame")

// Name implements encoding.CodecV2.
func (Codec) Name() string { return "proto" }

// Marshal implements encoding.CodecV2.
func (Codec) Marshal(v any) (mem.BufferSlice, error) {
	f, ok := v.(*Frame)
	if !ok {
		return nil, errNotFrame
	}
	f.Buf.Ref()
	return mem.BufferSlice{f.Buf}, nil
}

// Unmarshal implements encoding.CodecV2.
func (Codec) Unmarshal(data mem.BufferSlice, v any) error {
	if r, ok := v.(Reply); ok {
		return r.UnmarshalReply(data)
	}
	return nil
}
