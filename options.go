package ocagent

import (
	"context"
	"errors"
	"fmt"
	"time"

	resourcepb "github.com/census-instrumentation/opencensus-proto/gen-go/resource/v1"
	"go.opencensus.io/resource"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/zerocensus/ocagent/internal/fastconv"
)

// Defaults of the agent address, as upstream; DefaultOTLPPort with
// WithProtocol(ProtocolOTLP).
const (
	DefaultAgentPort uint16 = 55678
	DefaultAgentHost string = "localhost"
	DefaultOTLPPort  uint16 = 4317
)

// Protocol is what the exporter speaks to the agent.
type Protocol int

const (
	// ProtocolOpenCensus is the OpenCensus agent protocol, as upstream: one
	// bidirectional Export stream per signal, without acknowledgements.
	ProtocolOpenCensus Protocol = iota
	// ProtocolOTLP is OTLP/gRPC, which every current OpenTelemetry Collector
	// and most tracing backends take: unary Export calls, acknowledged.
	ProtocolOTLP
)

func (p Protocol) String() string {
	switch p {
	case ProtocolOpenCensus:
		return "opencensus"
	case ProtocolOTLP:
		return "otlp"
	}
	return fmt.Sprintf("Protocol(%d)", int(p))
}

// Defaults of the tuning options.
const (
	// DefaultSpanRingCapacity is the number of spans that can wait for the
	// writer. Memory: 16 bytes per slot for the ring itself, plus the
	// *trace.SpanData each waiting span keeps alive (typically 0.5–2 KiB).
	DefaultSpanRingCapacity = 8192
	// DefaultMaxBatchSpans is the most spans sent in one message (upstream's
	// bundler threshold). Memory: the batch encodes each span as it takes it
	// and keeps the encoded body (a few hundred bytes per span, at most
	// WithMaxBatchBytes), one reused span message and a 64 KiB buffer each
	// span is encoded into first (it grows to twice the largest span that
	// did not fit, at most WithMaxBatchBytes).
	DefaultMaxBatchSpans = 300
	// DefaultMaxBatchSpansOTLP is the same with WithProtocol(ProtocolOTLP),
	// chosen by measurement (README: "OTLP batch size"): each OTLP call
	// costs a unary gRPC call (about 82 allocations, headers and trailers,
	// an answer to wait for), and OTLP spans are larger, so fewer, larger
	// calls cost less CPU per span (typical spans, CPU per span against 512:
	// -12% in the Exporter scenario, -14% end to end). A call of 2048 typical
	// spans is about 1.7 MB; WithMaxBatchBytes still caps every call under
	// gRPC's 4 MiB default.
	DefaultMaxBatchSpansOTLP = 2048
	// DefaultMaxBatchDelay is the longest a span waits before it is sent
	// (upstream's bundler delay).
	DefaultMaxBatchDelay = 2 * time.Second
	// DefaultMaxBatchBytes keeps every message under gRPC's default 4 MiB
	// receive limit of the agent, with room for the Node and Resource.
	DefaultMaxBatchBytes = 4<<20 - 64<<10
	// DefaultReconnectionPeriod caps the reconnection backoff (upstream's
	// fixed period).
	DefaultReconnectionPeriod = 10 * time.Second
	// DefaultStopTimeout bounds Stop's (and Flush's) wait for queued data to
	// be handed to gRPC, so that an agent that stops reading cannot hang the
	// caller. StopContext takes any deadline.
	DefaultStopTimeout = 5 * time.Second
	// DefaultReplayBytes is how much of what was recently sent on a stream
	// is kept to be sent again if the stream breaks (per stream).
	DefaultReplayBytes = 4 << 20
	// DefaultExportTimeout bounds each OTLP Export call attempt (the
	// OpenTelemetry exporters' default, OTEL_EXPORTER_OTLP_TIMEOUT).
	DefaultExportTimeout = 10 * time.Second
	// DefaultMaxConcurrentExports is how many OTLP Export calls of one
	// signal may be in flight at once.
	DefaultMaxConcurrentExports = 4
	// DefaultViewDelay and DefaultViewCount are upstream's view bundler
	// settings (WithDataBundlerOptions): views are sent at least every
	// delay, or as soon as count of them are queued.
	DefaultViewDelay = 2 * time.Second
	DefaultViewCount = 500
	// ViewRingCapacity is the number of views that can wait to be sent: a
	// reporting period brings one view.Data per registered view. A
	// WithDataBundlerOptions count above it sends batches of this many.
	ViewRingCapacity = 4096
	// DefaultAnnotationEventsPerSpan and DefaultMessageEventsPerSpan are
	// upstream's SpanConfig defaults.
	DefaultAnnotationEventsPerSpan = fastconv.DefaultAnnotationEventsPerSpan
	DefaultMessageEventsPerSpan    = fastconv.DefaultMessageEventsPerSpan
)

// ExporterOption configures an Exporter. The interface is sealed: only the
// functions of this package make options.
type ExporterOption interface {
	withExporter(c *config)
}

type config struct {
	address            string
	serviceName        string
	insecure           bool
	creds              credentials.TransportCredentials
	reconnectionPeriod time.Duration
	compressor         string
	headers            map[string]string
	dialOptions        []grpc.DialOption
	detector           resource.Detector
	metricNamePrefix   string
	viewDelay          time.Duration
	viewCount          int
	spanConfig         SpanConfig

	ringCapacity int
	maxBatch     int
	maxDelay     time.Duration
	maxBytes     int
	prewarm      int
	blockTimeout time.Duration // > 0: block up to this long when the ring is full
	replayBytes  int

	protocol      Protocol
	exportTimeout time.Duration
	maxInFlight   int
	// set records which options were given explicitly: they win over the
	// OTEL_* environment variables in OTLP mode.
	set map[string]bool

	errs []error
}

func defaultConfig() config {
	return config{
		viewDelay:    DefaultViewDelay,
		viewCount:    DefaultViewCount,
		ringCapacity: DefaultSpanRingCapacity,
		maxBatch:     DefaultMaxBatchSpans,
		maxDelay:     DefaultMaxBatchDelay,
		maxBytes:     DefaultMaxBatchBytes,
		replayBytes:  DefaultReplayBytes,

		exportTimeout: DefaultExportTimeout,
		maxInFlight:   DefaultMaxConcurrentExports,
	}
}

// mark records that option name was given explicitly.
func (c *config) mark(name string) {
	if c.set == nil {
		c.set = make(map[string]bool)
	}
	c.set[name] = true
}

// newConfig applies opts to the defaults and validates the result.
func newConfig(opts []ExporterOption) (config, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if o != nil {
			o.withExporter(&cfg)
		}
	}
	if len(cfg.errs) > 0 {
		return cfg, errors.Join(cfg.errs...)
	}
	if !cfg.set["maxBatch"] {
		if cfg.protocol == ProtocolOTLP {
			cfg.maxBatch = DefaultMaxBatchSpansOTLP
		}
		// A default never makes a ring size invalid: it is capped at the
		// ring. Only an explicit WithMaxBatchSpans larger than the ring is
		// an error.
		cfg.maxBatch = min(cfg.maxBatch, cfg.ringCapacity)
	}
	if cfg.maxBatch > cfg.ringCapacity {
		return cfg, fmt.Errorf("ocagent: max batch spans (%d) exceeds the span ring capacity (%d)", cfg.maxBatch, cfg.ringCapacity)
	}
	if cfg.reconnectionPeriod <= 0 {
		cfg.reconnectionPeriod = DefaultReconnectionPeriod
	}
	return cfg, nil
}

// viewRingCapacity is the view ring's size: fixed, so that no bundler count
// (upstream allowed any, math.MaxInt32 meaning "no count limit") can make
// the constructor allocate without bound.
func (c *config) viewRingCapacity() int { return ViewRingCapacity }

// viewBatch is the most views per request: the bundler count, within the ring.
func (c *config) viewBatch() int { return min(c.viewCount, ViewRingCapacity) }

// detectResource runs the resource detector, or reads OC_RESOURCE_TYPE and
// OC_RESOURCE_LABELS without one.
func detectResource(detector resource.Detector) (*resourcepb.Resource, error) {
	if detector != nil {
		res, err := detector(context.Background())
		if err != nil {
			return nil, fmt.Errorf("ocagent: resource detector: %w", err)
		}
		return resourceToProto(res), nil
	}
	res, _ := resource.FromEnv(context.Background())
	return resourceToProto(res), nil
}

func resourceToProto(rs *resource.Resource) *resourcepb.Resource {
	if rs == nil {
		return nil
	}
	r := &resourcepb.Resource{Type: rs.Type}
	if rs.Labels != nil {
		r.Labels = make(map[string]string, len(rs.Labels))
		for k, v := range rs.Labels {
			r.Labels[k] = v
		}
	}
	return r
}

func (c *config) invalid(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("ocagent: "+format, args...))
}

type optionFunc func(c *config)

func (f optionFunc) withExporter(c *config) { f(c) }

// WithResourceDetector sets the detector of the Resource sent with every
// message. Unlike upstream, a detector error is returned by NewExporter
// instead of panicking. Without a detector the resource comes from the
// OC_RESOURCE_TYPE and OC_RESOURCE_LABELS environment variables.
func WithResourceDetector(rd resource.Detector) ExporterOption {
	return optionFunc(func(c *config) { c.detector = rd })
}

// WithInsecure disables transport security, like grpc's insecure
// credentials. Without it (or WithTLSCredentials, or credentials passed with
// WithGRPCDialOption) NewExporter fails.
func WithInsecure() ExporterOption { return optionFunc(func(c *config) { c.insecure = true }) }

// WithAddress sets the agent's address; default DefaultAgentHost:DefaultAgentPort.
func WithAddress(addr string) ExporterOption {
	return optionFunc(func(c *config) { c.address = addr; c.mark("address") })
}

// WithServiceName sets the service name in the Node sent to the agent.
func WithServiceName(serviceName string) ExporterOption {
	return optionFunc(func(c *config) { c.serviceName = serviceName; c.mark("serviceName") })
}

// WithReconnectionPeriod caps the delay between reconnection attempts
// (default 10 s). Attempts back off exponentially with jitter from 100 ms up
// to this cap; upstream waited the full period every time. Values <= 0 select
// the default, as upstream.
func WithReconnectionPeriod(rp time.Duration) ExporterOption {
	return optionFunc(func(c *config) { c.reconnectionPeriod = rp })
}

// UseCompressor sets the gRPC compressor of every stream, e.g. "gzip"
// (import _ "google.golang.org/grpc/encoding/gzip" to register it).
func UseCompressor(compressorName string) ExporterOption {
	return optionFunc(func(c *config) { c.compressor = compressorName; c.mark("compressor") })
}

// WithHeaders sets metadata sent with every stream: trace, config and
// metrics (upstream sent it on the trace stream only).
func WithHeaders(headers map[string]string) ExporterOption {
	return optionFunc(func(c *config) { c.headers = headers; c.mark("headers") })
}

// WithTLSCredentials secures the connection with creds.
func WithTLSCredentials(creds credentials.TransportCredentials) ExporterOption {
	return optionFunc(func(c *config) { c.creds = creds; c.mark("creds") })
}

// WithGRPCDialOption adds dial options, applied after the exporter's own so
// that they take precedence.
func WithGRPCDialOption(opts ...grpc.DialOption) ExporterOption {
	return optionFunc(func(c *config) { c.dialOptions = append(c.dialOptions, opts...) })
}

// WithMetricNamePrefix prefixes every exported metric name with prefix + "/".
func WithMetricNamePrefix(prefix string) ExporterOption {
	return optionFunc(func(c *config) { c.metricNamePrefix = prefix })
}

// WithDataBundlerOptions sets the view batching delay and count (defaults
// DefaultViewDelay and DefaultViewCount). Values <= 0 keep the default, as
// upstream. A count above ViewRingCapacity (math.MaxInt32, upstream's "no
// count limit", among them) sends batches of ViewRingCapacity views.
func WithDataBundlerOptions(delay time.Duration, count int) ExporterOption {
	return optionFunc(func(c *config) {
		if delay > 0 {
			c.viewDelay = delay
		}
		if count > 0 {
			c.viewCount = count
		}
	})
}

// SpanConfig caps the time events sent per span; the excess is counted in
// the dropped counts. It is itself an ExporterOption, as upstream.
type SpanConfig struct {
	AnnotationEventsPerSpan int
	MessageEventsPerSpan    int
}

// GetAnnotationEventsPerSpan returns the cap on annotations,
// DefaultAnnotationEventsPerSpan (32) when unset.
func (s SpanConfig) GetAnnotationEventsPerSpan() int {
	if s.AnnotationEventsPerSpan <= 0 {
		return DefaultAnnotationEventsPerSpan
	}
	return s.AnnotationEventsPerSpan
}

// GetMessageEventsPerSpan returns the cap on message events,
// DefaultMessageEventsPerSpan (128) when unset.
func (s SpanConfig) GetMessageEventsPerSpan() int {
	if s.MessageEventsPerSpan <= 0 {
		return DefaultMessageEventsPerSpan
	}
	return s.MessageEventsPerSpan
}

func (s SpanConfig) withExporter(c *config) { c.spanConfig = s }

var _ ExporterOption = SpanConfig{}

// WithSpanConfig sets the caps on time events per span.
func WithSpanConfig(spanConfig SpanConfig) ExporterOption { return spanConfig }

// WithSpanRingCapacity sets how many spans can wait to be sent (default
// DefaultSpanRingCapacity, rounded up to a power of two). While the agent is
// unreachable spans wait here; when it is full new spans are dropped and
// counted (or block, see WithBlockWhenFull). Memory: 16 bytes per slot plus
// the spans waiting in it.
func WithSpanRingCapacity(n int) ExporterOption {
	return optionFunc(func(c *config) {
		if n <= 0 || n > 1<<26 {
			c.invalid("span ring capacity must be in 1..%d, got %d", 1<<26, n)
			return
		}
		c.ringCapacity = n
	})
}

// WithMaxBatchSpans sets the most spans per message (default
// DefaultMaxBatchSpans, DefaultMaxBatchSpansOTLP with OTLP, either capped at
// the span ring's capacity; an explicit n above the capacity is an error).
// Larger batches spread gRPC's per-message cost over more spans; memory: the
// batch keeps its encoded body, about the encoded size of a batch.
func WithMaxBatchSpans(n int) ExporterOption {
	return optionFunc(func(c *config) {
		if n <= 0 {
			c.invalid("max batch spans must be positive, got %d", n)
			return
		}
		c.maxBatch = n
		c.mark("maxBatch")
	})
}

// WithMaxBatchDelay sets the longest a span waits before it is sent (default
// DefaultMaxBatchDelay).
func WithMaxBatchDelay(d time.Duration) ExporterOption {
	return optionFunc(func(c *config) {
		if d <= 0 {
			c.invalid("max batch delay must be positive, got %v", d)
			return
		}
		c.maxDelay = d
	})
}

// WithMaxBatchBytes sets the most encoded span or view bytes per message
// (default DefaultMaxBatchBytes, under the agent's usual 4 MiB limit); it
// applies to both signals. A single span or view larger than this is dropped
// and counted, since the agent would reject it. Memory: the encode buffers
// grow to this size.
func WithMaxBatchBytes(n int) ExporterOption {
	return optionFunc(func(c *config) {
		if n < 1024 {
			c.invalid("max batch bytes must be at least 1024, got %d", n)
			return
		}
		c.maxBytes = n
	})
}

// WithPoolPrewarm reserves room for n spans of 1 KiB (at most
// WithMaxBatchBytes) in the batch's body buffer when the exporter is made,
// instead of growing it with the first batches (default 0). The batch
// encodes each span as it takes it, so the body is the batch's only memory
// that grows with its size; the span messages' children are still made by
// the first spans that need them.
func WithPoolPrewarm(n int) ExporterOption {
	return optionFunc(func(c *config) {
		if n < 0 {
			c.invalid("pool prewarm must not be negative, got %d", n)
			return
		}
		c.prewarm = n
	})
}

// WithBlockWhenFull makes ExportSpan wait up to timeout for room when the
// ring is full, then drop (and count) the span. The default policy drops the
// new span at once, so that telemetry never slows the caller down.
func WithBlockWhenFull(timeout time.Duration) ExporterOption {
	return optionFunc(func(c *config) {
		if timeout <= 0 {
			c.invalid("block timeout must be positive, got %v", timeout)
			return
		}
		c.blockTimeout = timeout
	})
}

// WithDropWhenFull restores the default policy: a span that finds the ring
// full is dropped at once and counted.
func WithDropWhenFull() ExporterOption {
	return optionFunc(func(c *config) { c.blockTimeout = 0 })
}

// WithReplayBytes sets how many bytes each OpenCensus stream keeps (default
// DefaultReplayBytes), twice over:
//
//   - of the batches most recently sent, to send again when the stream
//     breaks. gRPC's SendMsg returns once a message is queued and the
//     protocol has no acknowledgements, so a batch sent just before the agent
//     died may never have been read; the agent can hold at most its
//     flow-control window unread (64 KiB at first, up to 16 MiB once gRPC's
//     BDP estimation has grown it). With a budget at least that large nothing
//     is lost across an agent restart, at the price of duplicates (counted in
//     Stats.SpansResent).
//   - of batches encoded while the agent is unreachable, which go out first
//     when it is back: an encoded span takes a few hundred bytes where a span
//     waiting in the ring keeps its whole SpanData alive, and the ring stays
//     free for new spans during a short outage.
//
// 0 turns both off: at most once for batches handed to gRPC, and only the
// ring holds spans while the agent is down. Memory: up to 2n bytes per
// stream. OTLP, whose calls are acknowledged, has no replay.
func WithReplayBytes(n int) ExporterOption {
	return optionFunc(func(c *config) {
		if n < 0 {
			c.invalid("replay bytes must not be negative, got %d", n)
			return
		}
		c.replayBytes = n
	})
}

// WithProtocol selects the protocol: ProtocolOpenCensus (the default, as
// upstream) or ProtocolOTLP, which sends the same spans and views as OTLP
// to an OpenTelemetry Collector or backend (default address
// localhost:4317). In OTLP mode the OTEL_EXPORTER_OTLP_* and OTEL_SERVICE_NAME
// / OTEL_RESOURCE_ATTRIBUTES environment variables are honoured, explicit
// options winning (README: "OTLP").
func WithProtocol(p Protocol) ExporterOption {
	return optionFunc(func(c *config) {
		if p != ProtocolOpenCensus && p != ProtocolOTLP {
			c.invalid("unknown protocol %v", p)
			return
		}
		c.protocol = p
	})
}

// WithExportTimeout bounds each OTLP Export call attempt (default
// DefaultExportTimeout); an attempt that times out is retried.
func WithExportTimeout(d time.Duration) ExporterOption {
	return optionFunc(func(c *config) {
		if d <= 0 {
			c.invalid("export timeout must be positive, got %v", d)
			return
		}
		c.exportTimeout = d
		c.mark("timeout")
	})
}

// WithMaxConcurrentExports sets how many OTLP Export calls of one signal may
// be in flight at once (default DefaultMaxConcurrentExports). More hides
// more of the agent's latency; memory: each call holds its encoded batch
// until answered.
func WithMaxConcurrentExports(n int) ExporterOption {
	return optionFunc(func(c *config) {
		if n <= 0 || n > 256 {
			c.invalid("max concurrent exports must be in 1..256, got %d", n)
			return
		}
		c.maxInFlight = n
	})
}
