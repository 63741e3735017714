package ocagent

import (
	"context"
	"crypto/tls"
	"maps"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	"github.com/zerocensus/ocagent/stream"
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
	if ep.compressor != "" {
		callOpts = append(callOpts, grpc.UseCompressor(ep.compressor))
	}
	return stream.Dial(ctx, ep.address, cfg.reconnectionPeriod, attemptTimeout, callOpts, dialOpts...)
}

// Timing of connections: each attempt to open a stream waits at most
// attemptTimeout for the channel; Start waits at most startConnectWait for
// the first attempts, so that a reachable agent has the Node when
// NewExporter returns (as upstream) while an unreachable or silent one does
// not hold a service's start-up.
const (
	attemptTimeout   = time.Second
	startConnectWait = 500 * time.Millisecond
)
