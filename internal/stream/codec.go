package stream

import (
	"errors"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"

	"github.com/zerocensus/ocagent/internal/pool"
)

// Frame is one pre-encoded message on its way to gRPC.
//
// Ownership: the writer takes a buffer from the pool into a Frame and passes
// the Frame to ClientStream.SendMsg. If gRPC calls the codec's Marshal, the
// buffer moves into a mem.Buffer that gRPC owns and frees back to the pool
// after the transport wrote it; the Frame is then empty. If SendMsg fails
// before marshalling, the buffer is still in the Frame and the writer puts it
// back (Frame.release). The writer never touches the bytes after SendMsg.
type Frame struct {
	buf  *[]byte
	pool *pool.Buffers
}

// release returns the buffer if gRPC did not take it.
func (f *Frame) release() {
	if f.buf != nil {
		f.pool.Put(f.buf)
		f.buf = nil
	}
}

// codec is a grpc encoding.CodecV2 for the Export streams only: it sends a
// Frame's bytes as they are, skipping gRPC's marshalling, and discards the
// agent's replies (ExportTraceServiceResponse and its metrics twin are empty
// messages; the writer reads them only to see the stream end). It is forced
// per stream with grpc.ForceCodecV2; its name "proto" makes the content-type
// "application/grpc+proto", which gRPC servers treat as the plain
// "application/grpc" protobuf they expect.
type codec struct{}

var _ encoding.CodecV2 = codec{}

var errNotFrame = errors.New("stream: the Export codec only sends *stream.Frame")

func (codec) Name() string { return "proto" }

func (codec) Marshal(v any) (mem.BufferSlice, error) {
	f, ok := v.(*Frame)
	if !ok {
		return nil, errNotFrame
	}
	b := f.buf
	f.buf = nil
	return mem.BufferSlice{mem.NewBuffer(b, f.pool)}, nil
}

// Unmarshal ignores a reply without copying it.
func (codec) Unmarshal(mem.BufferSlice, any) error { return nil }
