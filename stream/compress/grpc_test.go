package compress

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/stats"
)

// rawCodec sends and receives *[]byte as they are.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

// wireSize records the wire length of each message received.
type wireSize struct{ got chan int }

func (w wireSize) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (w wireSize) HandleRPC(_ context.Context, s stats.RPCStats) {
	if in, ok := s.(*stats.InPayload); ok {
		w.got <- in.CompressedLength
	}
}
func (wireSize) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (wireSize) HandleConn(context.Context, stats.ConnStats)                       {}

// TestPerConnectionNotRegistered: a client with WithCompressor and
// WithDecompressor and a server with RPCCompressor and RPCDecompressor talk
// compressed both ways (the server answers in the request's encoding) while
// gRPC's registry has none of these names: nothing process-wide is needed,
// nothing is changed.
func TestPerConnectionNotRegistered(t *testing.T) {
	for _, name := range []string{Zstd, Snappy} { // this test binary registers neither
		if encoding.GetCompressor(name) != nil {
			t.Fatalf("%s is registered: the test would prove nothing", name)
		}
	}
	for _, name := range Names {
		t.Run(name, func(t *testing.T) {
			c, _ := New(name)
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srvWire, cliWire := wireSize{make(chan int, 1)}, wireSize{make(chan int, 1)}
			srv := grpc.NewServer(grpc.ForceServerCodecV2(rawCodec{}), grpc.RPCCompressor(c), grpc.RPCDecompressor(c.Decompressor()),
				grpc.StatsHandler(srvWire),
				grpc.UnknownServiceHandler(func(_ any, st grpc.ServerStream) error {
					var b []byte
					if err := st.RecvMsg(&b); err != nil {
						return err
					}
					return st.SendMsg(&b) // the echo
				}))
			go func() { _ = srv.Serve(lis) }()
			defer srv.Stop()
			cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
				grpc.WithCompressor(c), grpc.WithDecompressor(c.Decompressor()), grpc.WithStatsHandler(cliWire))
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			msg := bytes.Repeat([]byte("a span, again and again. "), 400)
			var reply []byte
			if err := cc.Invoke(ctx, "/test.Echo/Echo", &msg, &reply, grpc.ForceCodecV2(rawCodec{})); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(reply, msg) {
				t.Fatalf("echo: %d bytes, want %d", len(reply), len(msg))
			}
			if n := <-srvWire.got; n <= 0 || n >= len(msg)/4 {
				t.Errorf("request: %d compressed bytes for %d", n, len(msg))
			}
			if n := <-cliWire.got; n <= 0 || n >= len(msg)/4 {
				t.Errorf("reply: %d compressed bytes for %d", n, len(msg))
			}
		})
	}
	for _, name := range []string{Zstd, Snappy} {
		if encoding.GetCompressor(name) != nil {
			t.Errorf("%s registered by using it", name)
		}
	}
}
