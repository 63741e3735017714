package ocagent

import (
	commonpb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/common/v1"
	resourcepb "github.com/census-instrumentation/opencensus-proto/gen-go/resource/v1"

	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"github.com/zerocensus/ocagent/fastconv"
	"github.com/zerocensus/ocagent/pool"
	"github.com/zerocensus/ocagent/stream"

	"go.opencensus.io/resource"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// ExporterOption configures an Exporter. The interface is sealed: only the
// functions of this package make options.
type ExporterOption interface {
	withExporter(c *config)
}

// build is what the protocols build an exporter's pipelines and transports
// from: its settings, the Node and Resource it reports, and the buffer pool
// every encoded request comes from and returns to.
type build struct {
	cfg      config
	node     *commonpb.Node
	resource *resourcepb.Resource
	bufs     *pool.Buffers
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
	spanOpts           fastconv.SpanOptions // WithSpanConfig

	ringCapacity int
	maxBatch     int
	maxDelay     time.Duration
	maxBytes     int
	prewarm      int
	blockTimeout time.Duration // > 0: block up to this long when the ring is full
	replayBytes  int
	maxStreamAge time.Duration
	confirmFlush bool
	confirmBytes int // -1: the replay budget (WithConfirmBytes)

	protocol      Protocol
	tlsConfig     *tls.Config // WithTLSConfig
	exportTimeout time.Duration
	maxInFlight   int

	selfProducer bool          // WithSelfMetrics(0): a producer in the global manager
	selfPeriod   time.Duration // WithSelfMetrics(d): sent on the exporter's own metrics path every d
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
		maxStreamAge: DefaultMaxStreamAge,
		confirmBytes: -1,

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
		if cfg.protocol.otlp() {
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
func (c *config) invalid(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("ocagent: "+format, args...))
}

type optionFunc func(c *config)

func (f optionFunc) withExporter(c *config) { f(c) }

// room is what a batch keeps free around its body for env.
func (e *build) room(env stream.Envelope) stream.Room {
	head, tail := env.Room(e.cfg.maxBytes)
	return stream.Room{Bufs: e.bufs, Head: head, Tail: tail}
}

// spanOptions are the span encoders' limits (WithSpanConfig).
func (c *config) spanOptions() fastconv.SpanOptions {
	return c.spanOpts
}

// spanPipeline and viewPipeline are the pipelines' settings, the same for
// both protocols but for the envelope.
func (c *config) spanPipeline(env stream.Envelope) stream.Config {
	return stream.Config{Delay: c.maxDelay, WakeEvery: c.maxBatch, ConvertEvery: c.maxBatch / 4, BlockTimeout: c.blockTimeout, Envelope: env}
}

func (c *config) viewPipeline(env stream.Envelope) stream.Config {
	return stream.Config{Delay: c.viewDelay, WakeEvery: c.viewBatch(), Envelope: env}
}

// streamConfirmBytes is ocstream.Config.ConfirmBytes: the replay budget
// unless WithConfirmBytes set less (more would never be reached: the
// replay holds at most its budget).
func (c *config) streamConfirmBytes() int {
	if c.confirmBytes < 0 || c.confirmBytes > c.replayBytes {
		return c.replayBytes
	}
	return c.confirmBytes
}
