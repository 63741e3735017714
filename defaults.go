package ocagent

import (
	"fmt"
	"time"

	"github.com/zerocensus/ocagent/fastconv"
)

// Defaults of the agent address, as upstream; DefaultOTLPPort with
// WithProtocol(ProtocolOTLP).
const (
	DefaultAgentPort uint16 = 55678
	DefaultAgentHost string = "localhost"
	DefaultOTLPPort  uint16 = 4317
	// DefaultOTLPHTTPPort with WithProtocol(ProtocolOTLPHTTP) (or
	// OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf).
	DefaultOTLPHTTPPort uint16 = 4318
)

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
	// chosen by measurement (docs/otlp.md: "OTLP batch size"): each OTLP call
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
	// DefaultMaxStreamAge is how long an OpenCensus Export stream carries
	// batches before it is ended cleanly and the next one opened
	// (WithMaxStreamAge): a Collector fleet that scales up gets this
	// exporter's streams within it, and each clean end confirms what the
	// stream carried, so that a break resends at most this long's worth.
	// A rotation costs one stream (an HTTP/2 stream, the Node, a round
	// trip for the agent's end): nothing at this period.
	DefaultMaxStreamAge = 30 * time.Second
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

// Protocol is what the exporter speaks to the agent.
type Protocol int

const (
	// ProtocolOpenCensus is the OpenCensus agent protocol, as upstream: one
	// bidirectional Export stream per signal, without acknowledgements.
	ProtocolOpenCensus Protocol = iota
	// ProtocolOTLP is OTLP/gRPC, which every current OpenTelemetry Collector
	// and most tracing backends take: unary Export calls, acknowledged.
	ProtocolOTLP
	// ProtocolOTLPHTTP is OTLP/HTTP with protobuf bodies (http/protobuf):
	// the same requests as ProtocolOTLP, each one POST to /v1/traces or
	// /v1/metrics, for networks that carry no gRPC (README: "OTLP/HTTP").
	ProtocolOTLPHTTP
)

// otlp reports an OTLP protocol, gRPC or HTTP.
func (p Protocol) otlp() bool { return p == ProtocolOTLP || p == ProtocolOTLPHTTP }

func (p Protocol) String() string {
	switch p {
	case ProtocolOpenCensus:
		return "opencensus"
	case ProtocolOTLP:
		return "otlp"
	case ProtocolOTLPHTTP:
		return "otlp-http"
	}
	return fmt.Sprintf("Protocol(%d)", int(p))
}
