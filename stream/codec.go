package stream

import (
	"errors"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/zerocensus/ocagent/pool"
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

// codec is a grpc encoding.CodecV2 that sends a Frame's bytes as they are,
// skipping gRPC's marshalling, and decodes replies with vtprotobuf's
// UnmarshalVT or, for other messages, protobuf-go. It is forced per stream
// with grpc.ForceCodecV2; its name "proto" makes the content-type
// "application/grpc+proto", which gRPC servers treat as the plain
// "application/grpc" protobuf they expect.
type codec struct{}

var _ encoding.CodecV2 = codec{}

var errNotFrame = errors.New("stream: codec can only send *stream.Frame or proto.Message")

func (codec) Name() string { return "proto" }

func (codec) Marshal(v any) (mem.BufferSlice, error) {
	switch m := v.(type) {
	case *Frame:
		b := m.buf
		m.buf = nil
		return mem.BufferSlice{mem.NewBuffer(b, m.pool)}, nil
	case proto.Message:
		b, err := proto.Marshal(m)
		if err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	return nil, errNotFrame
}

type vtUnmarshaler interface{ UnmarshalVT([]byte) error }

func (codec) Unmarshal(data mem.BufferSlice, v any) error {
	b := data.Materialize()
	switch m := v.(type) {
	case vtUnmarshaler:
		return m.UnmarshalVT(b)
	case proto.Message:
		return proto.Unmarshal(b, m)
	}
	return errNotFrame
}
