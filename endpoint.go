package ocagent

import (
	"context"
	"crypto/tls"
	"maps"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	"github.com/zerocensus/ocagent/stream"
	"github.com/zerocensus/ocagent/stream/compress"
	"github.com/zerocensus/ocagent/stream/otlpgrpc"
)

// endpoint is where one signal goes and how: its own connection unless the
// other signal's endpoint is the same (OpenCensus: always; OTLP: unless the
// OTEL_EXPORTER_OTLP_{TRACES,METRICS}_* variables tell them apart).
type endpoint struct {
	address    string
	creds      credentials.TransportCredentials // nil: the user's dial options must bring them
	headers    map[string]string
	compressor string
	timeout    time.Duration // each OTLP call attempt

	// OTLP/HTTP: the full URL of the signal's requests ("" for gRPC) and
	// the client's TLS configuration for an https URL (nil: the system's
	// roots).
	url string
	tls *tls.Config
}

func (ep *endpoint) same(o *endpoint) bool {
	return ep.address == o.address && ep.creds == o.creds && ep.compressor == o.compressor &&
		maps.Equal(ep.headers, o.headers) && ep.url == o.url && ep.tls == o.tls
}

// dial makes the endpoint's connection; ctx ends it (Stop) and carries its
// headers to every stream and call.
func (ep *endpoint) dial(ctx context.Context, cfg config) (*stream.Conn, error) {
	var dialOpts []grpc.DialOption
	if ep.creds != nil {
		dialOpts = append(dialOpts, grpc.WithTransportCredentials(ep.creds))
	}
	if cfg.protocol.otlp() {
		// OTLP calls learn from it whether their request was written.
		dialOpts = append(dialOpts, otlpgrpc.DialOption())
	}
	dialOpts = append(dialOpts, cfg.dialOptions...)
	if len(ep.headers) > 0 {
		ctx = metadata.NewOutgoingContext(ctx, metadata.New(ep.headers))
	}
	var callOpts []grpc.CallOption
	switch c := ep.compressor; {
	case compress.Known(c):
		// Compression per connection, not through gRPC's registry: see
		// compressorFor.
		cp := compressorFor(c)
		dialOpts = append([]grpc.DialOption{grpc.WithCompressor(cp), grpc.WithDecompressor(cp.Decompressor())}, dialOpts...)
	case c != "":
		callOpts = append(callOpts, grpc.UseCompressor(c))
	}
	return stream.Dial(ctx, ep.address, cfg.reconnectionPeriod, attemptTimeout, callOpts, dialOpts...)
}

// compressorFor returns the process's one compress.Compressor for name
// (gzip, zstd or snappy), shared by every exporter so that its encoders are
// pooled once.
//
// The design: gRPC's compressor registry (encoding.RegisterCompressor) is
// global by name, and its "gzip" (google.golang.org/grpc/encoding/gzip) runs
// compress/gzip at its default level, allocating per message; replacing it
// would change every other gRPC client and server of the user's process. The
// exporter instead gives its own connections a per-connection compressor
// with grpc.WithCompressor (deprecated in grpc-go, "supported throughout
// 1.x", still in v1.85): gRPC hands it each encoded message and sends
// grpc-encoding with its Type, so the wire is the usual gzip, zstd or snappy.
// The compressor writes into gRPC's buffer pool in one Write, from encoders
// and buffers of its own free list: it allocates nothing per message (gRPC's
// compression path adds a few allocations per message of its own, none per
// span). A server that answers in the request's encoding is read with the
// matching grpc.WithDecompressor. Compressing in our own codec instead is
// not possible: gRPC sets the compressed flag and grpc-encoding only from
// its compressors, never from a codec.
// UseCompressor with any other name goes through the registry as before
// (and must be registered); a compressor set with the user's own dial
// options (grpc.WithCompressor, or a default UseCompressor call option) wins
// over this one, as gRPC orders them.
func compressorFor(name string) *compress.Compressor {
	compressorsOnce.Do(func() {
		for _, n := range compress.Names {
			c, err := compress.New(n)
			if err != nil {
				panic(err)
			}
			compressors[n] = c
		}
	})
	return compressors[name]
}

var (
	compressorsOnce sync.Once
	compressors     = map[string]*compress.Compressor{}
)

// Timing of connections: each attempt to open a stream waits at most
// attemptTimeout for the channel; Start waits at most startConnectWait for
// the first attempts, so that a reachable agent has the Node when
// NewExporter returns (as upstream) while an unreachable or silent one does
// not hold a service's start-up.
const (
	attemptTimeout   = time.Second
	startConnectWait = 500 * time.Millisecond
)
