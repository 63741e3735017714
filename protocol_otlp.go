package ocagent

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strconv"

	agentmetricspb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/metrics/v1"
	agenttracepb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/trace/v1"
	"go.opencensus.io/stats/view"
	"go.opencensus.io/trace"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/encoding/gzip" // OTEL_EXPORTER_OTLP_COMPRESSION=gzip needs it registered
	"google.golang.org/protobuf/proto"

	"github.com/zerocensus/ocagent/internal/batch"
	"github.com/zerocensus/ocagent/internal/envelope"
	"github.com/zerocensus/ocagent/internal/otlpconfig"
	"github.com/zerocensus/ocagent/internal/otlpconv"
	metricspb "github.com/zerocensus/ocagent/internal/otlpproto/metrics/v1"
	tracepb "github.com/zerocensus/ocagent/internal/otlpproto/trace/v1"
	"github.com/zerocensus/ocagent/internal/pipeline"
	"github.com/zerocensus/ocagent/internal/ring"
	"github.com/zerocensus/ocagent/internal/transport"
	"github.com/zerocensus/ocagent/internal/transport/ocstream"
	"github.com/zerocensus/ocagent/internal/transport/otlpgrpc"
)

// otlp is the OTLP/gRPC protocol: unary, acknowledged Export calls of
// requests of one resource (the OpenCensus Node and Resource, translated as
// the Collector's OpenCensus receiver did, plus OTEL_RESOURCE_ATTRIBUTES) and
// one empty instrumentation scope.
type otlp struct {
	eps [2]*endpoint
	env envelope.OTLP
}

func newOTLP(e *Exporter, getenv func(string) string) (*otlp, error) {
	p := &otlp{}
	var envs [2]otlpconfig.Config
	for i, s := range []otlpconfig.Signal{otlpconfig.Traces, otlpconfig.Metrics} {
		c, err := otlpconfig.Load(getenv, s)
		if err != nil {
			return nil, fmt.Errorf("ocagent: %w", err)
		}
		envs[i] = c
		if p.eps[i], err = otlpEndpoint(e.cfg, c); err != nil {
			return nil, err
		}
	}
	// OTEL_SERVICE_NAME (or service.name in OTEL_RESOURCE_ATTRIBUTES) names
	// the service unless WithServiceName did.
	if name := envs[0].ServiceName; name != "" && !e.cfg.set["serviceName"] {
		e.node.ServiceInfo.Name = name
	}
	res := otlpconv.WithAttributes(otlpconv.Resource(e.node, e.resource), envs[0].ResourceAttributes)
	var resBytes []byte
	if res != nil {
		var err error
		if resBytes, err = res.MarshalVT(); err != nil {
			return nil, fmt.Errorf("ocagent: encoding the OTLP resource: %w", err)
		}
	}
	p.env = envelope.NewOTLP(resBytes, nil)
	return p, nil
}

// otlpEndpoint applies the precedence: an explicit option, then the
// signal's variable, then the generic variable, then the default.
func otlpEndpoint(cfg config, env otlpconfig.Config) (*endpoint, error) {
	ep := &endpoint{address: cfg.address, headers: cfg.headers, compressor: cfg.compressor, timeout: cfg.exportTimeout}
	if !cfg.set["address"] {
		ep.address = net.JoinHostPort(DefaultAgentHost, strconv.Itoa(int(DefaultOTLPPort)))
		if env.EndpointSet {
			ep.address = env.Endpoint
		}
	}
	if !cfg.set["headers"] && env.Headers != nil {
		ep.headers = env.Headers
	}
	if !cfg.set["compressor"] && env.CompSet {
		ep.compressor = env.Compression
	}
	if !cfg.set["timeout"] && env.TimeoutSet {
		ep.timeout = env.Timeout
	}
	switch {
	case cfg.creds != nil:
		ep.creds = cfg.creds
	case cfg.insecure:
		ep.creds = insecure.NewCredentials()
	case env.InsecureSet || env.EndpointSet:
		if env.Insecure {
			ep.creds = insecure.NewCredentials()
			break
		}
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
		ep.creds = credentials.NewTLS(tc)
	}
	return ep, nil
}

func (p *otlp) endpoints(*Exporter) [2]*endpoint { return p.eps }

func (p *otlp) spans(e *Exporter) *signal[*trace.SpanData] {
	cfg := e.cfg
	r := ring.New[*trace.SpanData](cfg.ringCapacity)
	conv := otlpconv.NewSpanConverter(cfg.spanConfig.GetAnnotationEventsPerSpan(), cfg.spanConfig.GetMessageEventsPerSpan())
	b := batch.New(r, func(dst *tracepb.Span, sd *trace.SpanData) bool {
		conv.Convert(dst, sd)
		return true
	}, tracepb.SpanFromVTPool, cfg.maxBatch, cfg.maxBytes, cfg.prewarm, e.room(p.env))
	return newSignal(e, r, b, cfg.spanPipeline(p.env))
}

func (p *otlp) views(e *Exporter) *signal[*view.Data] {
	cfg := e.cfg
	r := ring.New[*view.Data](cfg.viewRingCapacity())
	conv := otlpconv.NewViewConverter()
	b := batch.New(r, func(dst *metricspb.Metric, vd *view.Data) bool {
		return conv.Convert(dst, vd, cfg.metricNamePrefix) == nil
	}, metricspb.MetricFromVTPool, cfg.viewBatch(), cfg.maxBytes, 0, e.room(p.env))
	return newSignal(e, r, b, cfg.viewPipeline(p.env))
}

func (p *otlp) spanTransport(e *Exporter, conn *transport.Conn) pipeline.Transport {
	return otlpgrpc.New(conn, otlpgrpc.Config{Method: otlpgrpc.TraceMethod, MaxInFlight: e.cfg.maxInFlight,
		Timeout: p.eps[0].timeout}, e.spans.Counters())
}

func (p *otlp) viewTransport(e *Exporter, conn *transport.Conn) pipeline.Transport {
	return otlpgrpc.New(conn, otlpgrpc.Config{Method: otlpgrpc.MetricsMethod, MaxInFlight: e.cfg.maxInFlight,
		Timeout: p.eps[1].timeout, Points: true}, e.views.Counters())
}

// configStream: OTLP has no Config RPC.
func (p *otlp) configStream(*Exporter, *transport.Conn) *ocstream.ConfigStream { return nil }

// encodeRaw translates a caller-built OpenCensus request into OTLP, with the
// exporter's Node and Resource where the request has none (an agent applies
// a stream's last ones).
func (p *otlp) encodeRaw(e *Exporter, m proto.Message) (*[]byte, int, error) {
	var out batch.Message
	items := 0
	switch r := m.(type) {
	case *agenttracepb.ExportTraceServiceRequest:
		out = otlpconv.Traces(orDefault(r.Node, e.node), orDefault(r.Resource, e.resource), r.Spans)
		items = nonNil(r.Spans)
	case *agentmetricspb.ExportMetricsServiceRequest:
		req, err := otlpconv.Metrics(orDefault(r.Node, e.node), orDefault(r.Resource, e.resource), r.Metrics)
		if err != nil {
			return nil, 0, err
		}
		out, items = req, nonNil(r.Metrics)
	default:
		return nil, 0, fmt.Errorf("unexpected request type %T", m)
	}
	n := out.SizeVT()
	buf := e.bufs.Get(n)
	if _, err := out.MarshalToSizedBufferVT(*buf); err != nil {
		e.bufs.Put(buf)
		return nil, 0, err
	}
	return buf, items, nil
}

// orDefault is v, or def when v is nil.
func orDefault[T any](v, def *T) *T {
	if v == nil {
		return def
	}
	return v
}

// nonNil counts the elements of s that are not nil.
func nonNil[T any](s []*T) int {
	n := 0
	for _, v := range s {
		if v != nil {
			n++
		}
	}
	return n
}
