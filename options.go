package ocagent

import (
	"crypto/tls"
	"time"

	"go.opencensus.io/resource"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/zerocensus/ocagent/fastconv"
)

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

// UseCompressor sets the compression of every stream and call: "gzip",
// "zstd" or "snappy" are the exporter's own (package stream/compress, given
// to its connections alone: gRPC's registry is left as it is, nothing to
// import); any other name must be registered with gRPC
// (encoding.RegisterCompressor), else NewExporter fails. zstd and snappy are
// an extension for OTLP (the OpenTelemetry specification names gzip and
// none): the Collector's gRPC receivers accept both.
func UseCompressor(compressorName string) ExporterOption {
	return optionFunc(func(c *config) { c.compressor = compressorName; c.mark("compressor") })
}

// WithHeaders sets metadata sent with every stream: trace, config and
// metrics (upstream sent it on the trace stream only).
func WithHeaders(headers map[string]string) ExporterOption {
	return optionFunc(func(c *config) { c.headers = headers; c.mark("headers") })
}

// WithTLSConfig secures the connection with TLS configured by tc: the
// OTLP/HTTP client's configuration, or, for gRPC, credentials made from it
// (WithTLSCredentials wins). With ProtocolOTLPHTTP it is the way to set the
// roots, the client certificate or the server name (gRPC credentials cannot
// secure an HTTP client). tc is not modified; do not modify it after.
func WithTLSConfig(tc *tls.Config) ExporterOption {
	return optionFunc(func(c *config) {
		if tc == nil {
			c.invalid("WithTLSConfig: nil *tls.Config")
			return
		}
		c.tlsConfig = tc
		c.mark("tls")
	})
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

func (s SpanConfig) withExporter(c *config) {
	c.spanOpts = fastconv.SpanOptions{MaxAnnotations: s.GetAnnotationEventsPerSpan(), MaxMessageEvents: s.GetMessageEventsPerSpan()}
}

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
// stream (3n while an agent fails to end streams cleanly: WithConfirmBytes).
// OTLP, whose calls are acknowledged, has no replay.
func WithReplayBytes(n int) ExporterOption {
	return optionFunc(func(c *config) {
		if n < 0 {
			c.invalid("replay bytes must not be negative, got %d", n)
			return
		}
		c.replayBytes = n
	})
}

// WithMaxStreamAge sets how long an OpenCensus Export stream carries batches
// before it is rotated (default DefaultMaxStreamAge, 30 s; each stream's age
// is drawn from [0.8d, d] so that a fleet of exporters does not rotate at
// once; 0 never rotates). A rotation half-closes the stream and waits for
// the agent to end it, which confirms that it read everything the stream
// carried: those batches leave the replay and are never sent again; the
// next stream opens at once, and the channel's round_robin places it on the
// next address the agent's name resolves to (WithFlushConfirmed makes Flush
// end the stream the same way). OTLP/gRPC, whose calls each go to the next
// address, has no streams. OTLP/HTTP connections live as long: each is
// closed after its next request once the age has passed, so that the next
// one dials, and resolves the name, anew.
func WithMaxStreamAge(d time.Duration) ExporterOption {
	return optionFunc(func(c *config) {
		if d < 0 {
			c.invalid("max stream age must not be negative, got %v", d)
			return
		}
		c.maxStreamAge = d
	})
}

// WithFlushConfirmed makes Flush, over OpenCensus, end each stream cleanly
// and wait for the agent to end it, which confirms that it read everything
// sent: Flush then means what it means with OTLP's acknowledgements, and
// what it confirmed is never sent again after a break (an agent restart
// resends only what came after the last Flush). It costs a round trip and a
// new stream per Flush (about 90 allocations and 0.3 ms on loopback: see
// docs/fleet.md), so it is off by default: Flush then returns once
// everything was handed to the stream, as upstream's.
func WithFlushConfirmed() ExporterOption {
	return optionFunc(func(c *config) { c.confirmFlush = true })
}

// WithConfirmBytes sets how many bytes an OpenCensus stream carries between
// confirmations (default: the replay budget, WithReplayBytes, 4 MiB). When
// the next batch would take what the stream sent since its last
// confirmation past n, the stream is rotated first, as at its maximum age:
// ended cleanly, the agent's end awaited (which confirms that it read
// everything), the next opened. A break then resends at most n bytes (at
// high rates the replay budget's worth at most, half of it on average),
// and a batch leaves the replay only once confirmed read, whatever the
// agent's flow-control window (an agent that fails to end streams cleanly
// is bounded by twice the replay budget instead). Each rotation
// costs about 90 allocations and a round trip (0.3 ms on loopback): at the
// default, one per 4 MiB sent, about 8,000 typical spans. 0 confirms by
// age (WithMaxStreamAge) and Flush (WithFlushConfirmed) only; the replay
// then evicts its oldest batches, read or not. Values above the replay
// budget act as the budget.
func WithConfirmBytes(n int) ExporterOption {
	return optionFunc(func(c *config) {
		if n < 0 {
			c.invalid("confirm bytes must not be negative, got %d", n)
			return
		}
		c.confirmBytes = n
	})
}

// WithProtocol selects the protocol: ProtocolOpenCensus (the default, as
// upstream), ProtocolOTLP, which sends the same spans and views as OTLP
// to an OpenTelemetry Collector or backend (default address
// localhost:4317), or ProtocolOTLPHTTP, the same requests over OTLP/HTTP
// (default address localhost:4318). In OTLP mode the OTEL_EXPORTER_OTLP_*
// and OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES environment variables are
// honoured, explicit options winning (docs/otlp.md); with ProtocolOTLP,
// OTEL_EXPORTER_OTLP_PROTOCOL (and per signal) = http/protobuf selects
// OTLP/HTTP for that signal.
func WithProtocol(p Protocol) ExporterOption {
	return optionFunc(func(c *config) {
		if p != ProtocolOpenCensus && p != ProtocolOTLP && p != ProtocolOTLPHTTP {
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

// WithSelfMetrics makes the exporter report its own counters (Stats) as
// OpenTelemetry's SDK self-metrics (semantic conventions
// docs/otel/sdk-metrics.md: otel.sdk.exporter.span.inflight,
// .span.exported, .metric_data_point.inflight and .exported,
// otel.sdk.processor.span.queue.size, .queue.capacity and .processed), as
// OpenCensus metrics (README: "Self-metrics").
//
// period 0: the exporter registers a metricproducer.Producer with
// metricproducer.GlobalManager() at Start (removed at Stop), which any
// OpenCensus metrics exporter reads through a metricexport.IntervalReader
// (this one too). period > 0: the exporter sends them itself on its own
// metrics path every period (and once more at Stop), not registered
// globally, so that an IntervalReader over the global manager does not send
// them a second time. Use WithSelfMetrics twice (0 and a period) for both.
func WithSelfMetrics(period time.Duration) ExporterOption {
	return optionFunc(func(c *config) {
		if period < 0 {
			c.invalid("self-metrics period must not be negative, got %v", period)
			return
		}
		if period == 0 {
			c.selfProducer = true
		} else {
			c.selfPeriod = period
		}
	})
}
