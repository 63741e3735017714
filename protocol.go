package ocagent

import (
	"go.opencensus.io/stats/view"
	"go.opencensus.io/trace"
	"google.golang.org/protobuf/proto"

	"github.com/zerocensus/ocagent/internal/pipeline"
	"github.com/zerocensus/ocagent/internal/transport"
	"github.com/zerocensus/ocagent/internal/transport/ocstream"
)

// protocol is what differs between the OpenCensus and the OTLP output: the
// default address, the converters, envelopes and transports of each signal,
// and the translation of caller-built requests. Everything else (rings,
// batches, schedulers, pools, Stats, Flush, Stop) is one implementation.
type protocol interface {
	// endpoints are where spans and views go.
	endpoints(e *Exporter) [2]*endpoint
	spans(e *Exporter) *signal[*trace.SpanData]
	views(e *Exporter) *signal[*view.Data]
	spanTransport(e *Exporter, conn *transport.Conn) pipeline.Transport
	viewTransport(e *Exporter, conn *transport.Conn) pipeline.Transport
	// configStream is the trace Config stream, or nil.
	configStream(e *Exporter, conn *transport.Conn) *ocstream.ConfigStream
	// encodeRaw encodes a caller-built OpenCensus request for the wire,
	// into a buffer from e.bufs, and counts the items it carries.
	encodeRaw(e *Exporter, m proto.Message) (buf *[]byte, items int, err error)
}
