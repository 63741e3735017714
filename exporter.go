package ocagent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	agentmetricspb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/metrics/v1"
	agenttracepb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/trace/v1"
	"go.opencensus.io/metric/metricdata"
	"go.opencensus.io/metric/metricexport"
	"go.opencensus.io/stats/view"
	"go.opencensus.io/trace"
	"google.golang.org/protobuf/proto"

	"github.com/zerocensus/ocagent/pool"
	"github.com/zerocensus/ocagent/stream"
	"github.com/zerocensus/ocagent/stream/ocstream"
)

var (
	errAlreadyStarted = errors.New("already started")
	errNotStarted     = errors.New("not started")
	errStopped        = errors.New("stopped")
)

var (
	_ trace.Exporter        = (*Exporter)(nil)
	_ view.Exporter         = (*Exporter)(nil)
	_ metricexport.Exporter = (*Exporter)(nil)
)

const (
	stateUnstarted int32 = iota
	stateRunning
	stateStopped
)

// Exporter sends OpenCensus spans and views to an OpenCensus agent.
type Exporter struct {
	build
	proto protocol

	state atomic.Int32
	mu    sync.Mutex // serialises Start and Stop

	spans *signal[*trace.SpanData]
	views *signal[*view.Data]
	// metrics carries ExportMetrics' metricdata to the views' endpoint
	// (a second Export stream, or OTLP calls of their own), started by the
	// first ExportMetrics: an exporter that is never given metricdata
	// opens the one metrics stream upstream did.
	metrics   *signal[*metricdata.Metric]
	metricsOn atomic.Bool
	ctx       context.Context // the writers' (Start to Stop)
	viewConn  *stream.Conn
	self      *selfMetrics // WithSelfMetrics, or nil
	eps       [2]*endpoint // spans, views
	conns     []*stream.Conn
	cancel    context.CancelFunc
	config    atomic.Pointer[ocstream.ConfigStream]
	wg        sync.WaitGroup
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
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	e := &Exporter{build: build{cfg: cfg, node: NodeWithStartTime(cfg.serviceName), bufs: pool.NewBuffers()}}
	if e.resource, err = detectResource(cfg.detector); err != nil {
		return nil, err
	}
	switch cfg.protocol {
	case ProtocolOTLP, ProtocolOTLPHTTP:
		e.proto, err = newOTLP(&e.build, os.Getenv)
	default:
		e.proto, err = newOpenCensus(&e.build)
	}
	if err != nil {
		return nil, err
	}
	e.eps = e.proto.endpoints(&e.build)
	if err := validateEndpoints(e.eps, e.cfg); err != nil {
		return nil, err
	}
	e.spans = e.proto.spans(&e.build)
	e.views = e.proto.views(&e.build)
	e.metrics = e.proto.metrics(&e.build)
	if cfg.selfProducer || cfg.selfPeriod > 0 {
		e.self = newSelfMetrics(e)
	}
	return e, nil
}

// Start connects to the agent and starts the writers. It makes one
// connection attempt per stream before returning (waiting at most 500 ms);
// when the agent is unreachable it returns nil all the same and keeps
// retrying in the background, while spans wait in the ring. A second call
// returns "already started".
func (e *Exporter) Start() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.state.Load() != stateUnstarted {
		return errAlreadyStarted
	}
	ctx, cancel := context.WithCancel(context.Background())
	// One gRPC connection per distinct endpoint: both signals share it
	// unless OTLP's per-signal settings tell them apart. An OTLP/HTTP
	// endpoint has none (its transport keeps its own connections).
	var conns [2]*stream.Conn
	var err error
	for i, ep := range e.eps {
		switch {
		case ep.url != "":
		case i == 1 && conns[0] != nil && ep.same(e.eps[0]):
			conns[1] = conns[0]
		default:
			if conns[i], err = ep.dial(ctx, e.cfg); err == nil {
				e.conns = append(e.conns, conns[i])
			}
		}
		if err != nil {
			break
		}
	}
	spanConn, viewConn := conns[0], conns[1]
	if err == nil {
		e.cancel = cancel
		e.state.Store(stateRunning)
		e.ctx, e.viewConn = ctx, viewConn
		ready := make(chan struct{}, 2)
		e.spans.Start(ctx, e.proto.spanTransport(&e.build, ctx, spanConn, e.spans.Counters()), ready)
		e.views.Start(ctx, e.proto.viewTransport(&e.build, ctx, viewConn, e.views.Counters()), ready)
		if cs := e.proto.configStream(&e.build, spanConn); cs != nil {
			e.config.Store(cs)
			e.wg.Add(1)
			go func() { defer e.wg.Done(); cs.Run() }()
		}
		for _, c := range e.conns {
			e.wg.Add(1)
			go func() { defer e.wg.Done(); c.Watch() }()
		}
		err := waitReady(ready)
		if e.self != nil {
			e.self.start(ctx, &e.wg)
		}
		return err
	}
	cancel()
	for _, c := range e.conns {
		_ = c.Close()
	}
	e.conns = nil
	return fmt.Errorf("ocagent: %w (use WithInsecure or WithTLSCredentials)", err)
}

// waitReady waits for both writers' first connection attempts, at most
// startConnectWait.
func waitReady(ready <-chan struct{}) error {
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

// Stop sends what is queued (waiting at most DefaultStopTimeout), then closes
// the streams and the connection. As upstream, Stop of an exporter that is
// not running (never started, or already stopped) returns "not started".
func (e *Exporter) Stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultStopTimeout)
	defer cancel()
	return e.StopContext(ctx)
}

// StopContext is Stop with the caller's deadline for sending what is queued.
// Whatever could not be sent by then is counted as dropped at stop, or in
// doubt when it was sent but not confirmed.
func (e *Exporter) StopContext(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.state.Load() != stateRunning {
		return errNotStarted
	}
	if e.self != nil && e.self.period > 0 {
		e.startMetricsLocked() // the last report goes out with what is queued
	}
	e.state.Store(stateStopped)
	if e.self != nil {
		e.self.stop()
	}
	e.spans.Stopped()
	e.views.Stopped()
	e.metrics.Stopped()
	metrics := e.metricsOn.Load() // stable: startMetrics holds e.mu
	t, m := e.spans.Close(ctx), e.views.Close(ctx)
	if metrics {
		d := e.metrics.Close(ctx)
		_ = d.Wait(ctx)
	}
	_, _ = t.Wait(ctx), m.Wait(ctx)
	e.cancel()
	e.spans.Wait()
	e.views.Wait()
	e.metrics.Wait()
	e.wg.Wait()
	var err error
	for _, c := range e.conns {
		err = errors.Join(err, c.Close())
	}
	return err
}

// Flush sends everything queued and returns when it has been handed to the
// agent (OTLP: acknowledged), when the agent is unreachable (spans then stay
// queued), or after DefaultStopTimeout.
func (e *Exporter) Flush() {
	if e.state.Load() != stateRunning {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), DefaultStopTimeout)
	defer cancel()
	// Both writers work at once; Flush waits for the slower.
	t, m := e.spans.Flush(ctx), e.views.Flush(ctx)
	if e.metricsOn.Load() {
		d := e.metrics.Flush(ctx)
		_ = d.Wait(ctx)
	}
	_, _ = t.Wait(ctx), m.Wait(ctx)
}

// startMetrics starts the metricdata pipeline on the first ExportMetrics
// of a running exporter; it reports whether the pipeline runs.
func (e *Exporter) startMetrics() bool {
	if e.metricsOn.Load() {
		return true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.state.Load() != stateRunning {
		return false
	}
	e.startMetricsLocked()
	return true
}

// startMetricsLocked is startMetrics for a caller holding e.mu, with the
// exporter running.
func (e *Exporter) startMetricsLocked() {
	if !e.metricsOn.Load() {
		e.metrics.Start(e.ctx, e.proto.viewTransport(&e.build, e.ctx, e.viewConn, e.metrics.Counters()), nil)
		e.metricsOn.Store(true)
	}
}

// ExportSpan queues sd for sending. It never blocks on the network and never
// allocates: the pointer goes into a lock-free ring (OpenCensus hands
// ownership of sd to the exporter). When the ring is full the span is dropped
// and counted, unless WithBlockWhenFull was given. Before Start and after
// Stop it is a counted no-op.
func (e *Exporter) ExportSpan(sd *trace.SpanData) {
	if sd != nil {
		e.spans.Export(sd)
	}
}

// ExportView queues vd for the metrics stream without blocking or
// allocating; OpenCensus's view worker hands over a fresh *view.Data every
// reporting period, so keeping the pointer until conversion is safe. Views
// are sent in batches of WithDataBundlerOptions' count or after its delay.
// When the view ring is full the view is dropped and counted.
func (e *Exporter) ExportView(vd *view.Data) {
	if vd != nil {
		e.views.Export(vd)
	}
}

// ExportMetrics queues metrics (what a metricproducer.Producer read; an
// metricexport.IntervalReader calls it every reporting period) for the
// metrics endpoint, as OpenCensus or OTLP metrics by the exporter's
// protocol, without blocking or allocating: each pointer goes into the
// metric ring and is converted later, so the caller must not change the
// metrics afterwards (producers such as metric.Registry read fresh ones each
// time). Metrics are batched as views are (WithDataBundlerOptions). It
// returns an error when some were dropped: the ring was full, or the
// exporter is not running; ctx is not used (nothing waits).
func (e *Exporter) ExportMetrics(_ context.Context, metrics []*metricdata.Metric) error {
	if len(metrics) > 0 && e.state.Load() == stateRunning {
		e.startMetrics()
	}
	dropped := 0
	for _, m := range metrics {
		if m != nil && !e.metrics.Offer(m) {
			dropped++
		}
	}
	if dropped == 0 {
		return nil
	}
	switch e.state.Load() {
	case stateUnstarted:
		return errNotStarted
	case stateStopped:
		return errStopped
	}
	return fmt.Errorf("ocagent: ExportMetrics: %d of %d metrics dropped: the metric ring is full", dropped, len(metrics))
}

// ExportTraceServiceRequest sends a caller-built request on the trace stream,
// marshalled once, in order with the exporter's own batches. A nil or empty
// batch is a no-op.
func (e *Exporter) ExportTraceServiceRequest(batch *agenttracepb.ExportTraceServiceRequest) error {
	if batch == nil || len(batch.Spans) == 0 {
		return nil
	}
	return sendRaw(e, e.spans.Pipeline, "ExportTraceServiceRequest", batch)
}

// ExportMetricsServiceRequest sends a caller-built request on the metrics
// stream. A nil or empty batch is a no-op.
func (e *Exporter) ExportMetricsServiceRequest(batch *agentmetricspb.ExportMetricsServiceRequest) error {
	if batch == nil || len(batch.Metrics) == 0 {
		return nil
	}
	return sendRaw(e, e.views.Pipeline, "ExportMetricsServiceRequest", batch)
}

func sendRaw[T any](e *Exporter, p *stream.Pipeline[T], what string, m proto.Message) error {
	switch e.state.Load() {
	case stateUnstarted:
		return errNotStarted
	case stateStopped:
		return errStopped
	}
	parts, dropped, err := splitRequest(m, func(m proto.Message) (int, error) { return e.proto.rawSize(&e.build, m) }, e.cfg.maxBytes)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	for _, part := range parts {
		buf, items, err := e.proto.encodeRaw(&e.build, part)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if err := p.SendRaw(context.Background(), buf, items); err != nil {
			if errors.Is(err, stream.ErrStopped) {
				return errStopped
			}
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	if dropped != nil {
		return fmt.Errorf("%s: %w", what, dropped)
	}
	return nil
}
