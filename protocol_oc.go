package ocagent

import (
	"fmt"
	"net"
	"strconv"

	"go.opencensus.io/stats/view"
	"go.opencensus.io/trace"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/zerocensus/ocagent/internal/batch"
	"github.com/zerocensus/ocagent/internal/envelope"
	"github.com/zerocensus/ocagent/internal/fastconv"
	metricspb "github.com/zerocensus/ocagent/internal/ocproto/metrics/v1"
	octracepb "github.com/zerocensus/ocagent/internal/ocproto/trace/v1"
	"github.com/zerocensus/ocagent/internal/pipeline"
	"github.com/zerocensus/ocagent/internal/ring"
	"github.com/zerocensus/ocagent/internal/transport"
	"github.com/zerocensus/ocagent/internal/transport/ocstream"
)

// The real (upstream) method names: the generated types of this module live
// in a renamed proto package, so the streams are opened by name.
const (
	traceExportMethod   = "/opencensus.proto.agent.trace.v1.TraceService/Export"
	metricsExportMethod = "/opencensus.proto.agent.metrics.v1.MetricsService/Export"
)

// openCensus is the OpenCensus agent protocol: one bidirectional Export
// stream per signal, the Node in each stream's first message, the Resource
// at the end of every request.
type openCensus struct {
	header []byte // Node + Resource fields: the first message of a stream
	suffix []byte // Resource field: ends every batch
}

func newOpenCensus(e *Exporter) (*openCensus, error) {
	nodeField, err := encodeField(1, e.node)
	if err != nil {
		return nil, err
	}
	suffix, err := encodeField(3, e.resource)
	if err != nil {
		return nil, err
	}
	return &openCensus{header: append(nodeField, suffix...), suffix: suffix}, nil
}

// encodeField encodes m as field num of a request, deterministically, or
// nothing for a nil message.
func encodeField(num int, m proto.Message) ([]byte, error) {
	if m == nil || !m.ProtoReflect().IsValid() {
		return nil, nil
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("ocagent: encoding field %d: %w", num, err)
	}
	out := protowire.AppendTag(nil, protowire.Number(num), protowire.BytesType)
	return protowire.AppendBytes(out, b), nil
}

// endpoints: one connection for both streams, as upstream.
func (p *openCensus) endpoints(e *Exporter) [2]*endpoint {
	ep := &endpoint{address: e.cfg.address, creds: e.cfg.creds, headers: e.cfg.headers, compressor: e.cfg.compressor}
	if ep.address == "" {
		ep.address = net.JoinHostPort(DefaultAgentHost, strconv.Itoa(int(DefaultAgentPort)))
	}
	if ep.creds == nil && e.cfg.insecure {
		ep.creds = insecure.NewCredentials()
	}
	return [2]*endpoint{ep, ep}
}

func (p *openCensus) spans(e *Exporter) *signal[*trace.SpanData] {
	cfg := e.cfg
	r := ring.New[*trace.SpanData](cfg.ringCapacity)
	conv := fastconv.NewSpanConverter(cfg.spanConfig.GetAnnotationEventsPerSpan(), cfg.spanConfig.GetMessageEventsPerSpan())
	env := envelope.NewOpenCensus(p.suffix)
	b := batch.New(r, func(dst *octracepb.Span, sd *trace.SpanData) bool {
		conv.Convert(dst, sd)
		return true
	}, octracepb.SpanFromVTPool, cfg.maxBatch, cfg.maxBytes, cfg.prewarm, e.room(env))
	return newSignal(e, r, b, cfg.spanPipeline(env))
}

func (p *openCensus) views(e *Exporter) *signal[*view.Data] {
	cfg := e.cfg
	r := ring.New[*view.Data](cfg.viewRingCapacity())
	conv := fastconv.NewViewConverter()
	env := envelope.NewOpenCensus(p.suffix)
	b := batch.New(r, func(dst *metricspb.Metric, vd *view.Data) bool {
		return conv.Convert(dst, vd, cfg.metricNamePrefix) == nil
	}, metricspb.MetricFromVTPool, cfg.viewBatch(), cfg.maxBytes, 0, e.room(env))
	return newSignal(e, r, b, cfg.viewPipeline(env))
}

func (p *openCensus) spanTransport(e *Exporter, conn *transport.Conn) pipeline.Transport {
	return ocstream.New(conn, ocstream.Config{Method: traceExportMethod, Header: p.header, ReplayBytes: e.cfg.replayBytes},
		e.bufs, e.spans.Counters())
}

func (p *openCensus) viewTransport(e *Exporter, conn *transport.Conn) pipeline.Transport {
	return ocstream.New(conn, ocstream.Config{Method: metricsExportMethod, Header: p.header, ReplayBytes: e.cfg.replayBytes},
		e.bufs, e.views.Counters())
}

func (p *openCensus) configStream(e *Exporter, conn *transport.Conn) *ocstream.ConfigStream {
	return &ocstream.ConfigStream{Conn: conn, Node: e.node, Apply: applyTraceConfig}
}

// encodeRaw marshals the caller's request as it is (it already has its
// Node and Resource, if any). Its spans are not counted in Stats, which
// counts what ExportSpan and ExportView were given.
func (p *openCensus) encodeRaw(e *Exporter, m proto.Message) (*[]byte, int, error) {
	buf := e.bufs.Get(proto.Size(m))
	b, err := proto.MarshalOptions{}.MarshalAppend((*buf)[:0], m)
	if err != nil {
		e.bufs.Put(buf)
		return nil, 0, err
	}
	*buf = b
	return buf, 0, nil
}

// newSignal builds a pipeline over a ring and its batch, for either protocol
// and either signal.
func newSignal[T any, M batch.Message](e *Exporter, r *ring.Ring[T], b *batch.Batch[T, M], cfg pipeline.Config) *signal[T] {
	return &signal[T]{Pipeline: pipeline.New(r, b, e.bufs, cfg), oversize: b.Oversize, invalid: b.Invalid}
}

// room is what a batch keeps free around its body for env.
func (e *Exporter) room(env envelope.Envelope) batch.Room {
	head, tail := env.Room(e.cfg.maxBytes)
	return batch.Room{Bufs: e.bufs, Head: head, Tail: tail}
}

// spanPipeline and viewPipeline are the pipelines' settings, the same for
// both protocols but for the envelope.
func (c *config) spanPipeline(env envelope.Envelope) pipeline.Config {
	return pipeline.Config{Delay: c.maxDelay, WakeEvery: c.maxBatch, ConvertEvery: c.maxBatch / 4, BlockTimeout: c.blockTimeout, Envelope: env}
}

func (c *config) viewPipeline(env envelope.Envelope) pipeline.Config {
	return pipeline.Config{Delay: c.viewDelay, WakeEvery: c.viewBatch(), Envelope: env}
}
