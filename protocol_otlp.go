package ocagent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	agentmetricspb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/metrics/v1"
	agenttracepb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/trace/v1"
	"go.opencensus.io/metric/metricdata"
	"go.opencensus.io/stats/view"
	"go.opencensus.io/trace"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/zerocensus/ocagent/fastconv"
	"github.com/zerocensus/ocagent/internal/otlpconfig"
	"github.com/zerocensus/ocagent/stream"
	"github.com/zerocensus/ocagent/stream/ocstream"
	"github.com/zerocensus/ocagent/stream/otlpgrpc"
	"github.com/zerocensus/ocagent/stream/otlphttp"
)

// otlp is the OTLP protocol, gRPC or HTTP per signal: unary, acknowledged
// Export calls (or POSTs of the same bytes) of
// requests of one resource (the OpenCensus Node and Resource, translated as
// the Collector's OpenCensus receiver did, plus OTEL_RESOURCE_ATTRIBUTES) and
// one empty instrumentation scope.
type otlp struct {
	eps [2]*endpoint
	env stream.OTLPEnvelope
}

func newOTLP(e *build, getenv func(string) string) (*otlp, error) {
	p := &otlp{}
	var envs [2]otlpconfig.Config
	for i, s := range []otlpconfig.Signal{otlpconfig.Traces, otlpconfig.Metrics} {
		c, err := otlpconfig.Load(getenv, s)
		if err != nil {
			return nil, fmt.Errorf("ocagent: %w", err)
		}
		envs[i] = c
		if p.eps[i], err = otlpEndpoint(e.cfg, c, s); err != nil {
			return nil, err
		}
	}
	// OTEL_SERVICE_NAME (or service.name in OTEL_RESOURCE_ATTRIBUTES) names
	// the service unless WithServiceName did.
	if name := envs[0].ServiceName; name != "" && !e.cfg.set["serviceName"] {
		e.node.ServiceInfo.Name = name
	}
	resBytes, err := fastconv.OTLPResource(e.node, e.resource, envs[0].ResourceAttributes)
	if err != nil {
		return nil, fmt.Errorf("ocagent: encoding the OTLP resource: %w", err)
	}
	p.env = stream.NewOTLPEnvelope(resBytes, nil)
	return p, nil
}

// otlpEndpoint applies the precedence: an explicit option, then the
// signal's variable, then the generic variable, then the default.
func otlpEndpoint(cfg config, env otlpconfig.Config, s otlpconfig.Signal) (*endpoint, error) {
	ep := &endpoint{address: cfg.address, headers: cfg.headers, compressor: cfg.compressor, timeout: cfg.exportTimeout}
	if !cfg.set["headers"] && env.Headers != nil {
		ep.headers = env.Headers
	}
	if !cfg.set["compressor"] && env.CompSet {
		ep.compressor = env.Compression
	}
	if !cfg.set["timeout"] && env.TimeoutSet {
		ep.timeout = env.Timeout
	}
	// ProtocolOTLPHTTP is explicit; ProtocolOTLP takes the variable's.
	if cfg.protocol == ProtocolOTLPHTTP || env.Protocol == otlpconfig.HTTPProtobuf {
		return otlpHTTPEndpoint(cfg, env, s, ep)
	}
	if !cfg.set["address"] {
		ep.address = net.JoinHostPort(DefaultAgentHost, strconv.Itoa(int(DefaultOTLPPort)))
		if env.EndpointSet {
			ep.address = env.Endpoint
		}
	}
	switch {
	case cfg.creds != nil:
		ep.creds = cfg.creds
	case cfg.insecure:
		ep.creds = insecure.NewCredentials()
	case cfg.tlsConfig != nil:
		ep.creds = credentials.NewTLS(cfg.tlsConfig)
	case env.InsecureSet || env.EndpointSet:
		if env.Insecure {
			ep.creds = insecure.NewCredentials()
			break
		}
		tc, err := envTLS(env)
		if err != nil {
			return nil, err
		}
		ep.creds = credentials.NewTLS(tc)
	}
	return ep, nil
}

// otlpHTTPEndpoint is an OTLP/HTTP endpoint: its URL (WithAddress's
// host:port, or base URL, with the signal's path; else the signal's
// variable as given; else the generic one with the path; else
// localhost:4318) and its security: WithInsecure or an http URL
// plaintext, otherwise TLS from WithTLSConfig or the certificate
// variables, else the system's roots (as OpenTelemetry Go's otlptracehttp:
// https unless told otherwise).
func otlpHTTPEndpoint(cfg config, env otlpconfig.Config, s otlpconfig.Signal, ep *endpoint) (*endpoint, error) {
	if cfg.creds != nil {
		return nil, errors.New("ocagent: WithTLSCredentials cannot secure OTLP/HTTP: use WithTLSConfig")
	}
	if len(cfg.dialOptions) > 0 {
		return nil, errors.New("ocagent: WithGRPCDialOption has no meaning for OTLP/HTTP")
	}
	plain := cfg.insecure || (!cfg.set["tls"] && env.InsecureSet && env.Insecure)
	scheme := "https"
	if plain {
		scheme = "http"
	}
	switch {
	case cfg.set["address"] && strings.Contains(cfg.address, "://"):
		ep.url = otlpconfig.AppendPath(cfg.address, s)
	case cfg.set["address"]:
		ep.url = otlpconfig.AppendPath(scheme+"://"+cfg.address, s)
	case env.EndpointSet:
		ep.url = otlpconfig.HTTPURL(env, s)
		if cfg.insecure {
			ep.url = strings.Replace(ep.url, "https://", "http://", 1)
		}
	default:
		ep.url = otlpconfig.AppendPath(scheme+"://"+net.JoinHostPort(DefaultAgentHost, strconv.Itoa(int(DefaultOTLPHTTPPort))), s)
	}
	ep.address = ep.url
	if strings.HasPrefix(ep.url, "https://") {
		ep.tls = cfg.tlsConfig
		if ep.tls == nil {
			tc, err := envTLS(env)
			if err != nil {
				return nil, err
			}
			ep.tls = tc
		}
	}
	return ep, nil
}

// envTLS is the TLS configuration the certificate variables describe: the
// CAs to trust (..._CERTIFICATE, else the system's) and the client's
// certificate and key (..._CLIENT_CERTIFICATE, ..._CLIENT_KEY).
func envTLS(env otlpconfig.Config) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if env.CertificateFile != "" {
		pem, err := os.ReadFile(env.CertificateFile)
		if err != nil {
			return nil, fmt.Errorf("ocagent: OTEL_EXPORTER_OTLP_CERTIFICATE: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ocagent: OTEL_EXPORTER_OTLP_CERTIFICATE: no PEM certificate in %s", env.CertificateFile)
		}
	}
	if env.ClientCertFile != "" {
		cert, err := tls.LoadX509KeyPair(env.ClientCertFile, env.ClientKeyFile)
		if err != nil {
			return nil, fmt.Errorf("ocagent: OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE / _CLIENT_KEY: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

func (p *otlp) endpoints(*build) [2]*endpoint { return p.eps }

func (p *otlp) spans(e *build) *signal[*trace.SpanData] {
	cfg := e.cfg
	r := stream.NewRing[*trace.SpanData](cfg.ringCapacity)
	enc := fastconv.NewSpanEncoder(fastconv.OTLP, cfg.spanOptions())
	b := stream.NewBatch(r, stream.Encoder[*trace.SpanData](enc), cfg.maxBatch, cfg.maxBytes, cfg.prewarm, e.room(p.env))
	return newSignal(e, r, b, cfg.spanPipeline(p.env))
}

func (p *otlp) views(e *build) *signal[*view.Data] {
	cfg := e.cfg
	r := stream.NewRing[*view.Data](cfg.viewRingCapacity())
	enc := fastconv.NewViewEncoder(fastconv.OTLP, cfg.metricNamePrefix)
	b := stream.NewBatch(r, stream.Encoder[*view.Data](enc), cfg.viewBatch(), cfg.maxBytes, 0, e.room(p.env))
	return newViewSignal(e, r, b, enc, cfg.viewPipeline(p.env))
}

func (p *otlp) metrics(e *build) *signal[*metricdata.Metric] {
	return metricSignal(e, fastconv.OTLP, p.env)
}

func (p *otlp) spanTransport(e *build, ctx context.Context, conn *stream.Conn, c *stream.Counters) stream.Transport {
	if ep := p.eps[0]; ep.url != "" {
		return otlphttp.New(ctx, p.httpConfig(e, ep, false), c)
	}
	return otlpgrpc.New(conn, otlpgrpc.Config{Method: otlpgrpc.TraceMethod, MaxInFlight: e.cfg.maxInFlight,
		Timeout: p.eps[0].timeout}, c)
}

func (p *otlp) viewTransport(e *build, ctx context.Context, conn *stream.Conn, c *stream.Counters) stream.Transport {
	if ep := p.eps[1]; ep.url != "" {
		return otlphttp.New(ctx, p.httpConfig(e, ep, true), c)
	}
	return otlpgrpc.New(conn, otlpgrpc.Config{Method: otlpgrpc.MetricsMethod, MaxInFlight: e.cfg.maxInFlight,
		Timeout: p.eps[1].timeout, Points: true}, c)
}

// httpConfig is an OTLP/HTTP transport's configuration: the same in-flight
// limit, export timeout and backoff cap as OTLP/gRPC.
func (p *otlp) httpConfig(e *build, ep *endpoint, points bool) otlphttp.Config {
	return otlphttp.Config{URL: ep.url, Headers: ep.headers, Gzip: ep.compressor == "gzip",
		MaxInFlight: e.cfg.maxInFlight, Timeout: ep.timeout, MaxBackoff: e.cfg.reconnectionPeriod,
		Points: points, TLS: ep.tls, MaxConnAge: e.cfg.maxStreamAge}
}

// configStream: OTLP has no Config RPC.
func (p *otlp) configStream(*build, *stream.Conn) *ocstream.ConfigStream { return nil }

// encodeRaw translates a caller-built OpenCensus request into OTLP, with the
// exporter's Node and Resource where the request has none (an agent applies
// a stream's last ones).
func (p *otlp) rawSize(e *build, m proto.Message) (int, error) {
	req, err := p.translate(e, m)
	if err != nil {
		return 0, err
	}
	return req.Size(), nil
}

// translate translates a caller-built OpenCensus request into OTLP.
func (p *otlp) translate(e *build, m proto.Message) (fastconv.Request, error) {
	switch r := m.(type) {
	case *agenttracepb.ExportTraceServiceRequest:
		return fastconv.TranslateTraces(r, e.node, e.resource), nil
	case *agentmetricspb.ExportMetricsServiceRequest:
		return fastconv.TranslateMetrics(r, e.node, e.resource)
	}
	return fastconv.Request{}, fmt.Errorf("unexpected request type %T", m)
}

func (p *otlp) encodeRaw(e *build, m proto.Message) (*[]byte, int, error) {
	req, err := p.translate(e, m)
	if err != nil {
		return nil, 0, err
	}
	buf := e.bufs.Get(req.Size())
	if err := req.Encode(*buf); err != nil {
		e.bufs.Put(buf)
		return nil, 0, err
	}
	return buf, req.Items(), nil
}
