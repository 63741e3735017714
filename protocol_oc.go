package ocagent

import (
	"context"
	"fmt"
	"net"
	"strconv"

	tracepb "github.com/census-instrumentation/opencensus-proto/gen-go/trace/v1"

	"go.opencensus.io/metric/metricdata"
	"go.opencensus.io/stats/view"
	"go.opencensus.io/trace"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/zerocensus/ocagent/fastconv"
	"github.com/zerocensus/ocagent/stream"
	"github.com/zerocensus/ocagent/stream/ocstream"
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

func newOpenCensus(e *build) (*openCensus, error) {
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
func (p *openCensus) endpoints(e *build) [2]*endpoint {
	ep := &endpoint{address: e.cfg.address, creds: e.cfg.creds, headers: e.cfg.headers, compressor: e.cfg.compressor}
	if ep.address == "" {
		ep.address = net.JoinHostPort(DefaultAgentHost, strconv.Itoa(int(DefaultAgentPort)))
	}
	if ep.creds == nil && e.cfg.insecure {
		ep.creds = insecure.NewCredentials()
	}
	return [2]*endpoint{ep, ep}
}

func (p *openCensus) spans(e *build) *signal[*trace.SpanData] {
	cfg := e.cfg
	r := stream.NewRing[*trace.SpanData](cfg.ringCapacity)
	enc := fastconv.NewSpanEncoder(fastconv.OpenCensus, cfg.spanOptions())
	env := stream.NewOpenCensusEnvelope(p.suffix)
	b := stream.NewBatch(r, stream.Encoder[*trace.SpanData](enc), cfg.maxBatch, cfg.maxBytes, cfg.prewarm, e.room(env))
	return newSignal(e, r, b, cfg.spanPipeline(env))
}

func (p *openCensus) views(e *build) *signal[*view.Data] {
	cfg := e.cfg
	r := stream.NewRing[*view.Data](cfg.viewRingCapacity())
	enc := fastconv.NewViewEncoder(fastconv.OpenCensus, cfg.metricNamePrefix)
	env := stream.NewOpenCensusEnvelope(p.suffix)
	b := stream.NewBatch(r, stream.Encoder[*view.Data](enc), cfg.viewBatch(), cfg.maxBytes, 0, e.room(env))
	return newViewSignal(e, r, b, enc, cfg.viewPipeline(env))
}

func (p *openCensus) metrics(e *build) *signal[*metricdata.Metric] {
	return metricSignal(e, fastconv.OpenCensus, stream.NewOpenCensusEnvelope(p.suffix))
}

func (p *openCensus) spanTransport(e *build, _ context.Context, conn *stream.Conn, c *stream.Counters) stream.Transport {
	return ocstream.New(conn, ocstream.Config{Method: traceExportMethod, Header: p.header, ReplayBytes: e.cfg.replayBytes, MaxAge: e.cfg.maxStreamAge, ConfirmOnFlush: e.cfg.confirmFlush, ConfirmBytes: e.cfg.streamConfirmBytes()},
		e.bufs, c)
}

func (p *openCensus) viewTransport(e *build, _ context.Context, conn *stream.Conn, c *stream.Counters) stream.Transport {
	return ocstream.New(conn, ocstream.Config{Method: metricsExportMethod, Header: p.header, ReplayBytes: e.cfg.replayBytes, MaxAge: e.cfg.maxStreamAge, ConfirmOnFlush: e.cfg.confirmFlush, ConfirmBytes: e.cfg.streamConfirmBytes()},
		e.bufs, c)
}

func (p *openCensus) configStream(e *build, conn *stream.Conn) *ocstream.ConfigStream {
	return &ocstream.ConfigStream{Conn: conn, Node: e.node, Apply: applyTraceConfig}
}

func (p *openCensus) rawSize(_ *build, m proto.Message) (int, error) { return proto.Size(m), nil }

// encodeRaw marshals the caller's request as it is (it already has its
// Node and Resource, if any). Its spans are not counted in Stats, which
// counts what ExportSpan and ExportView were given.
func (p *openCensus) encodeRaw(e *build, m proto.Message) (*[]byte, int, error) {
	buf := e.bufs.Get(proto.Size(m))
	b, err := proto.MarshalOptions{}.MarshalAppend((*buf)[:0], m)
	if err != nil {
		e.bufs.Put(buf)
		return nil, 0, err
	}
	*buf = b
	return buf, 0, nil
}

// applyTraceConfig applies a sampler pushed by the agent, as upstream.
func applyTraceConfig(cfg *tracepb.TraceConfig) {
	if p := cfg.GetProbabilitySampler(); p != nil {
		trace.ApplyConfig(trace.Config{DefaultSampler: trace.ProbabilitySampler(p.SamplingProbability)})
	} else if c := cfg.GetConstantSampler(); c != nil {
		if c.Decision == tracepb.ConstantSampler_ALWAYS_ON {
			trace.ApplyConfig(trace.Config{DefaultSampler: trace.AlwaysSample()})
		} else {
			trace.ApplyConfig(trace.Config{DefaultSampler: trace.NeverSample()})
		}
	}
}
