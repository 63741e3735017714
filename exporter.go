// Package ocagent is a drop-in, zero-allocation replacement for the OpenCensus
// Agent exporter contrib.go.opencensus.io/exporter/ocagent: the same
// functions and options, with spans converted into reused protocol messages,
// queued in a bounded lock-free ring and sent as pre-encoded bytes by one
// writer goroutine per gRPC stream.
//
// Data flows one way: ExportSpan -> ring -> batch (fastconv into reused
// messages) -> encode -> stream writer -> wire.
package ocagent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	commonpb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/common/v1"
	agentmetricspb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/metrics/v1"
	agenttracepb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/trace/v1"
	resourcepb "github.com/census-instrumentation/opencensus-proto/gen-go/resource/v1"
	tracepb "github.com/census-instrumentation/opencensus-proto/gen-go/trace/v1"
	"go.opencensus.io/resource"
	"go.opencensus.io/stats/view"
	"go.opencensus.io/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/zerocensus/ocagent/internal/fastconv"
	"github.com/zerocensus/ocagent/internal/pool"
	"github.com/zerocensus/ocagent/internal/stream"
)

// The real (upstream) method names: the generated types of this module live
// in a renamed proto package, so the streams are opened by name.
const (
	traceExportMethod   = "/opencensus.proto.agent.trace.v1.TraceService/Export"
	metricsExportMethod = "/opencensus.proto.agent.metrics.v1.MetricsService/Export"
)

var (
	errAlreadyStarted = errors.New("already started")
	errNotStarted     = errors.New("not started")
	errStopped        = errors.New("stopped")
)

var (
	_ trace.Exporter = (*Exporter)(nil)
	_ view.Exporter  = (*Exporter)(nil)
)

const (
	stateUnstarted int32 = iota
	stateRunning
	stateStopped
)

// Exporter sends OpenCensus spans and views to an OpenCensus agent.
type Exporter struct {
	cfg      config
	node     *commonpb.Node
	resource *resourcepb.Resource
	header   []byte // Node + Resource fields: the first message of a stream
	suffix   []byte // Resource field: ends every batch
	batch    uint64 // spans per batch, for waking the writer

	state atomic.Int32
	mu    sync.Mutex // serialises Start and Stop

	ring    *stream.Ring[*trace.SpanData]
	spans   *stream.SpanBatch
	views   *stream.Ring[*view.Data]
	metrics *stream.ViewBatch
	bufs    *pool.Buffers
	conn    *stream.Conn
	cc      *grpc.ClientConn
	cancel  context.CancelFunc
	traceW  *stream.Writer
	metricW *stream.Writer
	config  *stream.ConfigStream
	wg      sync.WaitGroup

	droppedFull            atomic.Uint64
	droppedNotRunning      atomic.Uint64
	viewsDroppedFull       atomic.Uint64
	viewsDroppedNotRunning atomic.Uint64
}

// NewExporter creates and starts an exporter.
func NewExporter(opts ...ExporterOption) (*Exporter, error) {
	e, err := NewUnstartedExporter(opts...)
	if err != nil {
		return nil, err
	}
	if err := e.Start(); err != nil {
		return nil, err
	}
	return e, nil
}

// NewUnstartedExporter creates an exporter that sends nothing until Start.
// Invalid options and a failing resource detector are reported here.
func NewUnstartedExporter(opts ...ExporterOption) (*Exporter, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if o == nil {
			continue
		}
		o.withExporter(&cfg)
	}
	if len(cfg.errs) > 0 {
		return nil, errors.Join(cfg.errs...)
	}
	if cfg.maxBatch > cfg.ringCapacity {
		return nil, fmt.Errorf("ocagent: max batch spans (%d) exceeds the span ring capacity (%d)", cfg.maxBatch, cfg.ringCapacity)
	}
	if cfg.reconnectionPeriod <= 0 {
		cfg.reconnectionPeriod = DefaultReconnectionPeriod
	}
	e := &Exporter{cfg: cfg, node: NodeWithStartTime(cfg.serviceName), bufs: pool.NewBuffers()}
	if cfg.detector != nil {
		res, err := cfg.detector(context.Background())
		if err != nil {
			return nil, fmt.Errorf("ocagent: resource detector: %w", err)
		}
		e.resource = resourceToProto(res)
	} else {
		res, _ := resource.FromEnv(context.Background())
		e.resource = resourceToProto(res)
	}
	nodeField, err := encodeField(1, e.node)
	if err != nil {
		return nil, err
	}
	e.suffix, err = encodeField(3, e.resource)
	if err != nil {
		return nil, err
	}
	e.header = append(nodeField, e.suffix...)

	e.ring = stream.NewRing[*trace.SpanData](cfg.ringCapacity)
	conv := fastconv.NewSpanConverter(cfg.spanConfig.GetAnnotationEventsPerSpan(), cfg.spanConfig.GetMessageEventsPerSpan())
	e.spans = stream.NewSpanBatch(e.ring, conv, cfg.maxBatch, cfg.maxBytes, cfg.prewarm)
	e.batch = uint64(cfg.maxBatch)
	e.views = stream.NewRing[*view.Data](max(viewRingCapacity, 2*cfg.viewCount))
	e.metrics = stream.NewViewBatch(e.views, fastconv.NewViewConverter(), cfg.metricNamePrefix, cfg.viewCount, cfg.maxBytes)

	// The writers exist from here on so that Stats never races with Start;
	// Start fills in the connection before they run.
	e.conn = new(stream.Conn)
	e.traceW = stream.NewWriter(e.conn, stream.WriterConfig{
		Method: traceExportMethod, Header: e.header, Suffix: e.suffix, Delay: cfg.maxDelay,
		ReplayBytes: cfg.replayBytes,
	}, e.spans, e.bufs)
	e.metricW = stream.NewWriter(e.conn, stream.WriterConfig{
		Method: metricsExportMethod, Header: e.header, Suffix: e.suffix, Delay: cfg.viewDelay,
		ReplayBytes: cfg.replayBytes,
	}, e.metrics, e.bufs)
	e.config = &stream.ConfigStream{Conn: e.conn, Node: e.node, Apply: applyTraceConfig}
	return e, nil
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

func (e *Exporter) address() string {
	if e.cfg.address != "" {
		return e.cfg.address
	}
	return net.JoinHostPort(DefaultAgentHost, strconv.Itoa(int(DefaultAgentPort)))
}

// openTimeout bounds each attempt to open a stream; startConnectWait bounds
// how long Start waits for the first attempts.
const (
	openTimeout      = 5 * time.Second
	startConnectWait = 2 * time.Second
)

// Start connects to the agent and starts the stream writers. It makes one
// connection attempt before returning (so that a reachable agent has the Node
// when NewExporter returns, as upstream); when the agent is unreachable it
// returns nil all the same and keeps retrying in the background, while spans
// wait in the ring. A second call returns "already started".
func (e *Exporter) Start() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.state.Load() != stateUnstarted {
		return errAlreadyStarted
	}
	var dialOpts []grpc.DialOption
	switch {
	case e.cfg.creds != nil:
		dialOpts = append(dialOpts, grpc.WithTransportCredentials(e.cfg.creds))
	case e.cfg.insecure:
		dialOpts = append(dialOpts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	dialOpts = append(dialOpts, e.cfg.dialOptions...)
	cc, err := grpc.NewClient(e.address(), dialOpts...)
	if err != nil {
		return fmt.Errorf("ocagent: %w (use WithInsecure or WithTLSCredentials)", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if len(e.cfg.headers) > 0 {
		ctx = metadata.NewOutgoingContext(ctx, metadata.New(e.cfg.headers))
	}
	var callOpts []grpc.CallOption
	if e.cfg.compressor != "" {
		callOpts = append(callOpts, grpc.UseCompressor(e.cfg.compressor))
	}
	*e.conn = stream.Conn{
		CC: cc, Ctx: ctx, CallOpts: callOpts,
		MaxBackoff: e.cfg.reconnectionPeriod, OpenTimeout: openTimeout,
	}
	e.cc, e.cancel = cc, cancel

	// As upstream, both Export streams open (and send the Node) at Start,
	// so that a reachable agent has the Node when NewExporter returns. The
	// attempts run concurrently and Start waits for them at most
	// startConnectWait: an agent that accepts TCP but never answers must not
	// hold the caller. A failure is recorded and retried by the writer.
	e.state.Store(stateRunning)
	ready := make(chan struct{}, 2)
	for _, w := range []*stream.Writer{e.traceW, e.metricW} {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			_ = w.Connect()
			ready <- struct{}{}
			w.Run()
		}()
	}
	e.wg.Add(1)
	go func() { defer e.wg.Done(); e.config.Run() }()
	wait := time.NewTimer(startConnectWait)
	defer wait.Stop()
	for range 2 {
		select {
		case <-ready:
		case <-wait.C:
			return nil
		}
	}
	return nil
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

// Stop sends what is queued (waiting at most DefaultStopTimeout), then closes
// the streams and the connection. Stop of an exporter never started returns
// "not started"; a second Stop returns nil.
func (e *Exporter) Stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultStopTimeout)
	defer cancel()
	return e.StopContext(ctx)
}

// StopContext is Stop with the caller's deadline for sending what is queued.
// Whatever could not be sent by then is counted as dropped.
func (e *Exporter) StopContext(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch e.state.Load() {
	case stateUnstarted:
		return errNotStarted
	case stateStopped:
		return nil
	}
	e.state.Store(stateStopped)
	t, m := e.traceW.StartClose(ctx), e.metricW.StartClose(ctx)
	_, _ = t.Wait(ctx), m.Wait(ctx)
	e.cancel()
	e.wg.Wait()
	// Items pushed by an ExportSpan or ExportView that raced with Stop.
	e.traceW.C.Discarded.Add(uint64(e.spans.Discard()))
	e.metricW.C.Discarded.Add(uint64(e.metrics.Discard()))
	return e.cc.Close()
}

// Flush sends everything queued and returns when it has been handed to gRPC,
// when the agent is unreachable (spans then stay queued), or after
// DefaultStopTimeout.
func (e *Exporter) Flush() {
	if e.state.Load() != stateRunning {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), DefaultStopTimeout)
	defer cancel()
	// Both writers work at once; Flush waits for the slower.
	t, m := e.traceW.StartFlush(ctx), e.metricW.StartFlush(ctx)
	_, _ = t.Wait(ctx), m.Wait(ctx)
}

// ExportSpan queues sd for sending. It never blocks on the network and never
// allocates: the pointer goes into a lock-free ring (OpenCensus hands
// ownership of sd to the exporter). When the ring is full the span is dropped
// and counted, unless WithBlockWhenFull was given. Before Start and after
// Stop it is a counted no-op.
func (e *Exporter) ExportSpan(sd *trace.SpanData) {
	if sd == nil {
		return
	}
	if e.state.Load() != stateRunning {
		e.droppedNotRunning.Add(1)
		return
	}
	pos := e.ring.Push(sd)
	if pos == 0 {
		if pos = e.pushSlow(sd); pos == 0 {
			return
		}
	}
	if pos%e.batch == 0 {
		e.traceW.Notify()
	}
}

// pushSlow handles a full ring: drop at once, or wait for room up to the
// block timeout, polling with a growing sleep.
func (e *Exporter) pushSlow(sd *trace.SpanData) uint64 {
	e.traceW.Notify()
	if e.cfg.blockTimeout > 0 {
		deadline := time.Now().Add(e.cfg.blockTimeout)
		sleep := 10 * time.Microsecond
		for time.Now().Before(deadline) && e.state.Load() == stateRunning {
			time.Sleep(sleep)
			if pos := e.ring.Push(sd); pos != 0 {
				return pos
			}
			sleep = min(2*sleep, time.Millisecond)
		}
	}
	e.droppedFull.Add(1)
	return 0
}

// ExportTraceServiceRequest sends a caller-built request on the trace stream,
// marshalled once, in order with the exporter's own batches. A nil or empty
// batch is a no-op.
func (e *Exporter) ExportTraceServiceRequest(batch *agenttracepb.ExportTraceServiceRequest) error {
	if batch == nil || len(batch.Spans) == 0 {
		return nil
	}
	return e.sendRaw(e.traceW, "ExportTraceServiceRequest", batch)
}

// ExportMetricsServiceRequest sends a caller-built request on the metrics
// stream. A nil or empty batch is a no-op.
func (e *Exporter) ExportMetricsServiceRequest(batch *agentmetricspb.ExportMetricsServiceRequest) error {
	if batch == nil || len(batch.Metrics) == 0 {
		return nil
	}
	return e.sendRaw(e.metricW, "ExportMetricsServiceRequest", batch)
}

func (e *Exporter) sendRaw(w *stream.Writer, what string, m proto.Message) error {
	switch e.state.Load() {
	case stateUnstarted:
		return errNotStarted
	case stateStopped:
		return errStopped
	}
	n := proto.Size(m)
	buf := e.bufs.Get(n)
	b, err := proto.MarshalOptions{}.MarshalAppend((*buf)[:0], m)
	if err != nil {
		e.bufs.Put(buf)
		return fmt.Errorf("%s: %w", what, err)
	}
	*buf = b
	if err := w.SendRaw(context.Background(), buf); err != nil {
		if errors.Is(err, stream.ErrStopped) {
			return errStopped
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// viewRingCapacity is the least number of views that can wait to be sent: a
// reporting period brings one view.Data per registered view.
const viewRingCapacity = 4096

// ExportView queues vd for the metrics stream without blocking or
// allocating; OpenCensus's view worker hands over a fresh *view.Data every
// reporting period, so keeping the pointer until conversion is safe. Views
// are sent in batches of WithDataBundlerOptions' count or after its delay.
// When the view ring is full the view is dropped and counted.
func (e *Exporter) ExportView(vd *view.Data) {
	if vd == nil {
		return
	}
	if e.state.Load() != stateRunning {
		e.viewsDroppedNotRunning.Add(1)
		return
	}
	pos := e.views.Push(vd)
	if pos == 0 {
		e.viewsDroppedFull.Add(1)
		e.metricW.Notify()
		return
	}
	if pos%uint64(e.cfg.viewCount) == 0 {
		e.metricW.Notify()
	}
}

// Stats are the exporter's own monotonic counters. Every span given to
// ExportSpan is, at any time, exactly one of: queued, exported, or dropped for
// one of the reasons below.
type Stats struct {
	SpansExported          uint64 // handed to gRPC in a batch
	SpansQueued            int    // in the ring or the batch being sent (approximate while spans arrive)
	SpansDroppedFull       uint64 // the ring was full
	SpansDroppedNotRunning uint64 // ExportSpan before Start or after Stop
	SpansDroppedOversize   uint64 // one span alone exceeded WithMaxBatchBytes (views count as invalid)
	SpansDroppedAtStop     uint64 // still queued when Stop's deadline passed
	ViewsExported          uint64 // views handed to gRPC as metrics
	ViewsDroppedFull       uint64 // the view ring was full
	ViewsDroppedNotRunning uint64 // ExportView before Start or after Stop
	ViewsDroppedInvalid    uint64 // nil View, Measure or Aggregation, unknown aggregation, rows not matching it, or one view over WithMaxBatchBytes
	ViewsDroppedAtStop     uint64 // still queued when Stop's deadline passed
	Batches                uint64 // span batches handed to gRPC
	Bytes                  uint64 // encoded span batch bytes handed to gRPC
	SendFailures           uint64 // failed sends (each batch is retried on the next stream)
	SpansResent            uint64 // sent again after a stream broke (the agent may have them twice)
	SpansInDoubt           uint64 // exported, but not confirmed read by the agent when Stop ended (its stream broke, or Stop's deadline cut it)
	ViewsResent            uint64
	Reconnects             uint64 // trace streams opened after the first
	ConfigUpdates          uint64 // sampler configurations applied from the agent
	LastError              error  // the trace stream's last error; nil while connected
}

// Stats returns a snapshot of the exporter's counters.
func (e *Exporter) Stats() Stats {
	s := Stats{
		SpansQueued:            e.ring.Len() + int(e.traceW.C.Pending.Load()),
		SpansDroppedFull:       e.droppedFull.Load(),
		SpansDroppedNotRunning: e.droppedNotRunning.Load(),
		SpansDroppedOversize:   e.spans.Oversize.Load(),
		ViewsExported:          e.metricW.C.Items.Load(),
		ViewsDroppedFull:       e.viewsDroppedFull.Load(),
		ViewsDroppedNotRunning: e.viewsDroppedNotRunning.Load(),
		ViewsDroppedInvalid:    e.metrics.Invalid.Load() + e.metrics.Oversize.Load(),
		ViewsDroppedAtStop:     e.metricW.C.Discarded.Load(),
	}
	c := e.traceW.C
	s.SpansExported = c.Items.Load()
	s.SpansDroppedAtStop = c.Discarded.Load()
	s.Batches = c.Batches.Load()
	s.Bytes = c.Bytes.Load()
	s.SendFailures = c.SendFailures.Load()
	s.SpansResent = c.Resent.Load()
	s.SpansInDoubt = c.InDoubt.Load()
	s.ViewsResent = e.metricW.C.Resent.Load()
	s.Reconnects = c.Reconnects.Load()
	s.LastError = c.LastError()
	s.ConfigUpdates = e.config.Applied.Load()
	return s
}
