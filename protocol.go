package ocagent

import (
	"context"

	"go.opencensus.io/metric/metricdata"
	"go.opencensus.io/stats/view"
	"go.opencensus.io/trace"
	"google.golang.org/protobuf/proto"

	"github.com/zerocensus/ocagent/fastconv"
	"github.com/zerocensus/ocagent/stream"
	"github.com/zerocensus/ocagent/stream/ocstream"
)

// protocol is what differs between the OpenCensus and the OTLP output: the
// default address, the converters, envelopes and transports of each signal,
// and the translation of caller-built requests. Everything else (rings,
// batches, schedulers, pools, Stats, Flush, Stop) is one implementation.
type protocol interface {
	// endpoints are where spans and views go.
	endpoints(e *build) [2]*endpoint
	spans(e *build) *signal[*trace.SpanData]
	views(e *build) *signal[*view.Data]
	// metrics is the metricdata pipeline (ExportMetrics): its own ring and
	// batch, sent to the views' endpoint through a transport of its own.
	metrics(e *build) *signal[*metricdata.Metric]
	// spanTransport and viewTransport make a signal's transport over conn,
	// or, for an OTLP/HTTP endpoint (conn nil), its own until ctx ends.
	spanTransport(e *build, ctx context.Context, conn *stream.Conn, c *stream.Counters) stream.Transport
	viewTransport(e *build, ctx context.Context, conn *stream.Conn, c *stream.Counters) stream.Transport
	// configStream is the trace Config stream, or nil.
	configStream(e *build, conn *stream.Conn) *ocstream.ConfigStream
	// encodeRaw encodes a caller-built OpenCensus request for the wire,
	// into a buffer from e.bufs, and counts the items it carries.
	encodeRaw(e *build, m proto.Message) (buf *[]byte, items int, err error)
	// rawSize is the size encodeRaw would give m.
	rawSize(e *build, m proto.Message) (int, error)
}

// signal is one signal's pipeline with the counters of its batch.
type signal[T any] struct {
	*stream.Pipeline[T]
	oversize func() uint64 // items alone over the batch byte budget
	invalid  func() uint64 // items the converter refused
	// invalidPts: the data points of those; droppedPts: of the rows
	// droppedRows counts.
	invalidPts, droppedPts func() uint64
	// Views: rows that alone exceeded the budget when a view was split,
	// and the error naming the last such view.
	droppedRows func() uint64
	lastDrop    func() error
}

// newViewSignal is newSignal for views, with the view encoder's drops.
func newViewSignal(e *build, r *stream.Ring[*view.Data], b *stream.Batch[*view.Data], enc *fastconv.ViewEncoder, cfg stream.Config) *signal[*view.Data] {
	s := newSignal(e, r, b, cfg)
	s.droppedRows, s.lastDrop, s.droppedPts = enc.DroppedRows, enc.LastDrop, enc.DroppedPoints
	return s
}

// newMetricSignal is newSignal for metricdata metrics.
func newMetricSignal(e *build, r *stream.Ring[*metricdata.Metric], b *stream.Batch[*metricdata.Metric], enc *fastconv.MetricEncoder, cfg stream.Config) *signal[*metricdata.Metric] {
	s := newSignal(e, r, b, cfg)
	s.droppedRows, s.lastDrop, s.droppedPts = enc.DroppedRows, enc.LastDrop, enc.DroppedPoints
	return s
}

// metricSignal builds the metricdata pipeline of either protocol.
func metricSignal(e *build, p fastconv.Protocol, env stream.Envelope) *signal[*metricdata.Metric] {
	cfg := e.cfg
	r := stream.NewRing[*metricdata.Metric](cfg.viewRingCapacity())
	enc := fastconv.NewMetricEncoder(p)
	b := stream.NewBatch(r, stream.Encoder[*metricdata.Metric](enc), cfg.viewBatch(), cfg.maxBytes, 0, e.room(env))
	return newMetricSignal(e, r, b, enc, cfg.viewPipeline(env))
}

// newSignal builds a pipeline over a ring and its batch, for either protocol
// and either signal.
func newSignal[T any](e *build, r *stream.Ring[T], b *stream.Batch[T], cfg stream.Config) *signal[T] {
	none := func() uint64 { return 0 }
	return &signal[T]{Pipeline: stream.New(r, b, e.bufs, cfg), oversize: b.Oversize, invalid: b.Invalid, invalidPts: b.InvalidPoints,
		droppedRows: none, droppedPts: none, lastDrop: func() error { return nil }}
}
