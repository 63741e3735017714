// Package mockagent is a mock OpenCensus agent for tests and benchmarks: a
// real gRPC server on 127.0.0.1 that implements the upstream agent
// TraceService (Export and Config) and MetricsService (Export) and records
// what it receives.
//
// Recorded data survives Stop and Restart and is forgotten only by Reset.
// Every accessor is safe for concurrent use and returns a fresh slice; the
// proto messages in it are the recorded ones and must be treated as read-only.
package mockagent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"sync"
	"time"

	agentmetricspb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/metrics/v1"
	agenttracepb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/trace/v1"
	metricspb "github.com/census-instrumentation/opencensus-proto/gen-go/metrics/v1"
	tracepb "github.com/census-instrumentation/opencensus-proto/gen-go/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	_ "google.golang.org/grpc/encoding/gzip" // accept gzip-compressed requests, as a real agent does
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/zerocensus/ocagent/stream/compress"
)

// The exporter may compress with zstd or snappy too (gzip stays gRPC's own).
func init() { compress.RegisterDecompressors() }

// Full gRPC method names, used to attribute wire bytes to a service.
const (
	traceExportMethod   = "/opencensus.proto.agent.trace.v1.TraceService/Export"
	metricsExportMethod = "/opencensus.proto.agent.metrics.v1.MetricsService/Export"
)

// loopback is the only host the agent ever listens on, so tests never expose
// a port beyond the machine.
const loopback = "127.0.0.1"

// Restart retries the listen for up to restartTries*restartPause because the
// port the old listener held can be briefly unavailable.
const (
	restartTries = 100
	restartPause = 20 * time.Millisecond
)

// Option configures Start.
type Option func(*config)

type config struct {
	cert                *tls.Certificate
	configUnimplemented bool
	discard             bool
	addr                string
	noRead              bool
	endAfterFirst       bool
	spanIDs             bool
	readDelay           time.Duration
	exportErr           error
}

// WithTLS serves TLS with cert (see SelfSignedCert) instead of plaintext.
func WithTLS(cert tls.Certificate) Option {
	return func(c *config) { c.cert = &cert }
}

// WithConfigUnimplemented makes the Config RPC fail at once with
// codes.Unimplemented, as the OpenTelemetry Collector's OpenCensus receiver
// does. Such calls are counted by ConfigCalls but not recorded as streams.
func WithConfigUnimplemented() Option {
	return func(c *config) { c.configUnimplemented = true }
}

// WithDiscard keeps no messages, spans or metrics, only the counters and the
// stream headers, so that benchmarks measure the client, not the recorder.
func WithDiscard() Option {
	return func(c *config) { c.discard = true }
}

// WithAddress listens on addr, which must be "127.0.0.1:port"; use it to bring
// an agent back on a port a client already knows. The default is
// "127.0.0.1:0" (any free port).
func WithAddress(addr string) Option {
	return func(c *config) { c.addr = addr }
}

// WithNoRead makes every stream (Export and Config) a black hole: it is
// accepted and recorded, but Recv is never called, so flow control
// eventually blocks the client's Send. For fault-injection tests.
func WithNoRead() Option {
	return func(c *config) { c.noRead = true }
}

// WithEndAfterFirst makes every Export stream read its first message (the
// Node) and then end with status OK without reading the rest: an agent or
// proxy that returns early, whose end of stream looks like a clean one.
func WithEndAfterFirst() Option {
	return func(c *config) { c.endAfterFirst = true }
}

// WithExportError makes every Export stream read its first message (the
// Node) and then end with err: an agent that refuses the stream.
func WithExportError(err error) Option {
	return func(c *config) { c.exportErr = err }
}

// WithReadDelay makes every Export stream sleep d before each Recv: a
// slow agent, for fault tests.
func WithReadDelay(d time.Duration) Option {
	return func(c *config) { c.readDelay = d }
}

// WithSpanIDCounts counts how often each span id arrives (see SpanIDs), even
// in discard mode: delivery accounting over millions of spans without keeping
// the spans.
func WithSpanIDCounts() Option {
	return func(c *config) { c.spanIDs = true }
}

// Agent is a running (or stopped) mock agent. Create it with Start.
type Agent struct {
	cfg  config
	addr string // fixed by the first listen; Restart reuses it

	srvMu     sync.Mutex // serialises Stop/Restart; guards srv and serveDone
	srv       *grpc.Server
	serveDone chan struct{}

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every recorded change
	gen     uint64        // bumped by Reset; stale stream records are replaced

	traces        exportLog[*agenttracepb.ExportTraceServiceRequest, *tracepb.Span]
	metrics       exportLog[*agentmetricspb.ExportMetricsServiceRequest, *metricspb.Metric]
	configStreams []*configRec
	configRecv    int64
	configCalls   int64
	openConfig    []*configConn // live Config streams, for PushConfig
	idCounts      map[[8]byte]uint32
}

// Start listens on 127.0.0.1 (see WithAddress) and serves until Stop.
func Start(opts ...Option) (*Agent, error) {
	cfg := config{addr: loopback + ":0"}
	for _, o := range opts {
		o(&cfg)
	}
	host, _, err := net.SplitHostPort(cfg.addr)
	if err != nil {
		return nil, fmt.Errorf("mockagent: bad address %q: %w", cfg.addr, err)
	}
	if host != loopback {
		return nil, fmt.Errorf("mockagent: address %q: host must be %s", cfg.addr, loopback)
	}
	a := &Agent{cfg: cfg, changed: make(chan struct{})}
	if err := a.start(cfg.addr, 1); err != nil {
		return nil, err
	}
	return a, nil
}

// start listens on addr (trying up to tries times) and serves in the
// background.
func (a *Agent) start(addr string, tries int) error {
	a.srvMu.Lock()
	defer a.srvMu.Unlock()
	if a.srv != nil {
		return errors.New("mockagent: already running")
	}
	var lis net.Listener
	var err error
	for i := 0; i < tries; i++ {
		if i > 0 {
			time.Sleep(restartPause)
		}
		if lis, err = net.Listen("tcp", addr); err == nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("mockagent: listen: %w", err)
	}
	if a.addr == "" { // first start: learn the port; later starts reuse it
		a.addr = lis.Addr().String()
	}

	opts := []grpc.ServerOption{
		// Stop then waits for every handler, so no goroutine outlives it.
		grpc.WaitForHandlers(true),
		grpc.StatsHandler(wireCounter{a}),
	}
	if a.cfg.cert != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(&tls.Config{
			Certificates: []tls.Certificate{*a.cfg.cert},
			MinVersion:   tls.VersionTLS12,
		})))
	}
	srv := grpc.NewServer(opts...)
	agenttracepb.RegisterTraceServiceServer(srv, &traceService{a: a})
	agentmetricspb.RegisterMetricsServiceServer(srv, &metricsService{a: a})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis) // returns once Stop has closed the listener
	}()
	a.srv, a.serveDone = srv, done
	return nil
}

// Addr is the "127.0.0.1:port" the agent listens on; it does not change
// across Restart.
func (a *Agent) Addr() string { return a.addr }

// Stop is a hard stop: it closes the listener and every connection, cancels
// all streams and waits for their handlers. Calling it again is a no-op.
func (a *Agent) Stop() {
	a.srvMu.Lock()
	defer a.srvMu.Unlock()
	if a.srv == nil {
		return
	}
	a.srv.Stop()
	<-a.serveDone
	a.srv, a.serveDone = nil, nil
}

// Restart stops the agent (if running) and serves again on the same address,
// keeping what was recorded. It simulates an agent restart for reconnection
// tests.
func (a *Agent) Restart() error {
	a.Stop()
	return a.start(a.addr, restartTries)
}

// Reset forgets everything recorded, including counters. The agent keeps
// serving; streams that are still open are listed again (with their headers
// and only new messages) once they deliver their next message. Open Config
// streams stay available to PushConfig.
func (a *Agent) Reset() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.gen++
	a.traces = exportLog[*agenttracepb.ExportTraceServiceRequest, *tracepb.Span]{}
	a.metrics = exportLog[*agentmetricspb.ExportMetricsServiceRequest, *metricspb.Metric]{}
	a.configStreams = nil
	a.configRecv, a.configCalls = 0, 0
	a.notifyLocked()
}

// notifyLocked wakes every Wait*; a.mu must be held.
func (a *Agent) notifyLocked() {
	close(a.changed)
	a.changed = make(chan struct{})
}

// waitFor blocks until count() >= n or timeout; count runs under a.mu.
func (a *Agent) waitFor(n int, timeout time.Duration, what string, count func() int64) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		a.mu.Lock()
		got, ch := count(), a.changed
		a.mu.Unlock()
		if got >= int64(n) {
			return nil
		}
		select {
		case <-ch:
		case <-timer.C:
			a.mu.Lock()
			got = count()
			a.mu.Unlock()
			if got >= int64(n) {
				return nil
			}
			return fmt.Errorf("mockagent: waited %v for %d %s, %d arrived", timeout, n, what, got)
		}
	}
}

// ---- Export streams (traces and metrics) ----

// exportRec is one Export stream as recorded.
type exportRec[Req any] struct {
	gen     uint64
	headers metadata.MD
	msgs    []Req
}

// exportLog is what the agent recorded of one Export service; a.mu guards it.
type exportLog[Req proto.Message, Item any] struct {
	streams []*exportRec[Req]
	items   []Item
	count   int64 // items, also counted in discard mode
	msgs    int64
	bytes   int64 // sum of proto.Size
	opened  int64 // streams recorded since the last Reset
	wire    int64 // grpc stats.InPayload.WireLength
}

// recvStream is the server side of an Export stream of either service.
type recvStream[Req any] interface {
	Recv() (Req, error)
	Context() context.Context
}

// serveExport records one Export stream into l until it ends. items gives the
// items of a request; seen, if not nil, is called with them under a.mu.
func serveExport[Req proto.Message, Item any](a *Agent, l *exportLog[Req, Item], stream recvStream[Req],
	items func(Req) []Item, seen func([]Item)) error {
	md, _ := metadata.FromIncomingContext(stream.Context())
	a.mu.Lock()
	rec := &exportRec[Req]{gen: a.gen, headers: md.Copy()}
	l.streams = append(l.streams, rec)
	l.opened++
	a.notifyLocked()
	a.mu.Unlock()
	if a.cfg.noRead {
		return blackHole(stream.Context())
	}
	for {
		if a.cfg.readDelay > 0 {
			select {
			case <-time.After(a.cfg.readDelay):
			case <-stream.Context().Done():
				return stream.Context().Err()
			}
		}
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if a.cfg.endAfterFirst {
			return nil
		}
		if a.cfg.exportErr != nil {
			return a.cfg.exportErr
		}
		size := int64(proto.Size(req))
		its := items(req)
		a.mu.Lock()
		if rec.gen != a.gen { // Reset happened: list this stream afresh
			rec = &exportRec[Req]{gen: a.gen, headers: rec.headers}
			l.streams = append(l.streams, rec)
			l.opened++
		}
		l.msgs++
		l.bytes += size
		l.count += int64(len(its))
		if seen != nil {
			seen(its)
		}
		if !a.cfg.discard {
			rec.msgs = append(rec.msgs, req)
			l.items = append(l.items, its...)
		}
		a.notifyLocked()
		a.mu.Unlock()
	}
}

// stat reads one counter of l under a.mu.
func (a *Agent) stat(v *int64) int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return *v
}

// ---- traces ----

// TraceStream is one trace Export stream as received.
type TraceStream struct {
	Headers  metadata.MD                               // incoming metadata of the stream
	Messages []*agenttracepb.ExportTraceServiceRequest // every message in order (none in discard mode)
}

type traceService struct {
	agenttracepb.UnimplementedTraceServiceServer
	a *Agent
}

func (s *traceService) Export(stream agenttracepb.TraceService_ExportServer) error {
	a := s.a
	var seen func([]*tracepb.Span)
	if a.cfg.spanIDs {
		seen = func(spans []*tracepb.Span) {
			if a.idCounts == nil {
				a.idCounts = make(map[[8]byte]uint32)
			}
			for _, sp := range spans {
				var id [8]byte
				copy(id[:], sp.SpanId)
				a.idCounts[id]++
			}
		}
	}
	return serveExport(a, &a.traces, stream, (*agenttracepb.ExportTraceServiceRequest).GetSpans, seen)
}

// SpanIDs reports, with WithSpanIDCounts, how many distinct span ids arrived
// and how many arrivals were repeats of an id already seen.
func (a *Agent) SpanIDs() (unique, duplicates int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, n := range a.idCounts {
		unique++
		duplicates += int64(n - 1)
	}
	return unique, duplicates
}

// TraceStreams returns every trace Export stream received, in order of arrival.
func (a *Agent) TraceStreams() []TraceStream {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]TraceStream, len(a.traces.streams))
	for i, r := range a.traces.streams {
		out[i] = TraceStream{Headers: r.headers.Copy(), Messages: slices.Clone(r.msgs)}
	}
	return out
}

// Spans returns all spans from all trace streams in arrival order (none in
// discard mode).
func (a *Agent) Spans() []*tracepb.Span {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.traces.items)
}

// SpanCount is the number of spans received (also counted in discard mode).
func (a *Agent) SpanCount() int64 { return a.stat(&a.traces.count) }

// TraceMessageCount is the number of trace Export messages received,
// including those that carry only a Node.
func (a *Agent) TraceMessageCount() int64 { return a.stat(&a.traces.msgs) }

// TraceBytes is the sum of proto.Size of every trace Export message received:
// the uncompressed protobuf size, without gRPC framing. See TraceWireBytes for
// what crossed the wire.
func (a *Agent) TraceBytes() int64 { return a.stat(&a.traces.bytes) }

// TraceWireBytes is what trace Export messages cost on the wire: the payload
// as sent (so after gzip, if used) plus the 5-byte gRPC message header, but
// without HTTP/2 or TLS framing (grpc stats.InPayload.WireLength). Benchmarks
// use it to measure compression.
func (a *Agent) TraceWireBytes() int64 { return a.stat(&a.traces.wire) }

// WaitSpans waits until SpanCount() >= n.
func (a *Agent) WaitSpans(n int, timeout time.Duration) error {
	return a.waitFor(n, timeout, "spans", func() int64 { return a.traces.count })
}

// WaitTraceMessages waits until TraceMessageCount() >= n; useful when a
// message carries no spans (such as the first, Node-only one).
func (a *Agent) WaitTraceMessages(n int, timeout time.Duration) error {
	return a.waitFor(n, timeout, "trace messages", func() int64 { return a.traces.msgs })
}

// WaitTraceStreams waits until at least n trace Export streams have been
// received (counted when the stream opens, so this works with WithNoRead).
func (a *Agent) WaitTraceStreams(n int, timeout time.Duration) error {
	return a.waitFor(n, timeout, "trace streams", func() int64 { return a.traces.opened })
}

// ---- metrics ----

// MetricsStream is one metrics Export stream as received.
type MetricsStream struct {
	Headers  metadata.MD                                   // incoming metadata of the stream
	Messages []*agentmetricspb.ExportMetricsServiceRequest // every message in order (none in discard mode)
}

type metricsService struct {
	agentmetricspb.UnimplementedMetricsServiceServer
	a *Agent
}

func (s *metricsService) Export(stream agentmetricspb.MetricsService_ExportServer) error {
	return serveExport(s.a, &s.a.metrics, stream, (*agentmetricspb.ExportMetricsServiceRequest).GetMetrics, nil)
}

// MetricsStreams returns every metrics Export stream received, in order of
// arrival.
func (a *Agent) MetricsStreams() []MetricsStream {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]MetricsStream, len(a.metrics.streams))
	for i, r := range a.metrics.streams {
		out[i] = MetricsStream{Headers: r.headers.Copy(), Messages: slices.Clone(r.msgs)}
	}
	return out
}

// Metrics returns all metrics from all metrics streams in arrival order (none
// in discard mode).
func (a *Agent) Metrics() []*metricspb.Metric {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.metrics.items)
}

// MetricCount is the number of metrics received (also counted in discard mode).
func (a *Agent) MetricCount() int64 { return a.stat(&a.metrics.count) }

// MetricsMessageCount is the number of metrics Export messages received.
func (a *Agent) MetricsMessageCount() int64 { return a.stat(&a.metrics.msgs) }

// MetricsBytes is the sum of proto.Size of every metrics Export message
// received (uncompressed, without framing), like TraceBytes.
func (a *Agent) MetricsBytes() int64 { return a.stat(&a.metrics.bytes) }

// MetricsWireBytes is the wire size of metrics Export messages, defined as
// for TraceWireBytes.
func (a *Agent) MetricsWireBytes() int64 { return a.stat(&a.metrics.wire) }

// WaitMetrics waits until MetricCount() >= n.
func (a *Agent) WaitMetrics(n int, timeout time.Duration) error {
	return a.waitFor(n, timeout, "metrics", func() int64 { return a.metrics.count })
}

// WaitMetricsStreams waits until at least n metrics Export streams have been
// received (counted when the stream opens).
func (a *Agent) WaitMetricsStreams(n int, timeout time.Duration) error {
	return a.waitFor(n, timeout, "metrics streams", func() int64 { return a.metrics.opened })
}

// ---- config ----

// ConfigStream is one trace Config stream as received.
type ConfigStream struct {
	Headers  metadata.MD                          // incoming metadata of the stream
	Received []*agenttracepb.CurrentLibraryConfig // every message in order, the first (Node) one included
}

type configRec struct {
	gen      uint64
	headers  metadata.MD
	received []*agenttracepb.CurrentLibraryConfig
}

// configConn is a live Config stream. mu serialises Send (gRPC allows one
// sender at a time) and closed stops PushConfig from sending after the
// handler has returned.
type configConn struct {
	mu     sync.Mutex
	closed bool
	stream agenttracepb.TraceService_ConfigServer
}

func (c *configConn) send(m *agenttracepb.UpdatedLibraryConfig) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("mockagent: Config stream closed")
	}
	return c.stream.Send(m)
}

func (s *traceService) Config(stream agenttracepb.TraceService_ConfigServer) error {
	a := s.a
	a.mu.Lock()
	a.configCalls++
	a.notifyLocked()
	a.mu.Unlock()
	if a.cfg.configUnimplemented {
		return status.Error(codes.Unimplemented, "mockagent: Config is not implemented")
	}

	md, _ := metadata.FromIncomingContext(stream.Context())
	conn := &configConn{stream: stream}
	a.mu.Lock()
	rec := &configRec{gen: a.gen, headers: md.Copy()}
	a.configStreams = append(a.configStreams, rec)
	a.openConfig = append(a.openConfig, conn)
	a.notifyLocked()
	a.mu.Unlock()
	defer func() {
		conn.mu.Lock() // waits for a PushConfig send in flight
		conn.closed = true
		conn.mu.Unlock()
		a.mu.Lock()
		for i, c := range a.openConfig {
			if c == conn {
				a.openConfig = append(a.openConfig[:i], a.openConfig[i+1:]...)
				break
			}
		}
		a.mu.Unlock()
	}()

	if a.cfg.noRead {
		return blackHole(stream.Context())
	}
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		a.mu.Lock()
		if rec.gen != a.gen {
			rec = &configRec{gen: a.gen, headers: rec.headers}
			a.configStreams = append(a.configStreams, rec)
		}
		rec.received = append(rec.received, msg)
		a.configRecv++
		a.notifyLocked()
		a.mu.Unlock()
	}
}

// ConfigStreams returns every Config stream received, in order of arrival.
func (a *Agent) ConfigStreams() []ConfigStream {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]ConfigStream, len(a.configStreams))
	for i, r := range a.configStreams {
		out[i] = ConfigStream{Headers: r.headers.Copy(), Received: append([]*agenttracepb.CurrentLibraryConfig(nil), r.received...)}
	}
	return out
}

// ConfigCalls is the number of Config RPCs started, including those refused
// by WithConfigUnimplemented; tests use it to check a client's retry policy.
func (a *Agent) ConfigCalls() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.configCalls
}

// OpenConfigStreams is the number of Config streams currently open, i.e.
// that PushConfig would send to.
func (a *Agent) OpenConfigStreams() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.openConfig)
}

// PushConfig sends UpdatedLibraryConfig{Config: cfg} on every open Config
// stream. It fails if none is open or if any send fails.
func (a *Agent) PushConfig(cfg *tracepb.TraceConfig) error {
	a.mu.Lock()
	conns := append([]*configConn(nil), a.openConfig...)
	a.mu.Unlock()
	if len(conns) == 0 {
		return errors.New("mockagent: PushConfig: no open Config stream")
	}
	msg := &agenttracepb.UpdatedLibraryConfig{Config: cfg}
	var errs []error
	for _, c := range conns {
		if err := c.send(msg); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("mockagent: PushConfig: %w", err)
	}
	return nil
}

// WaitConfigStreams waits until at least n Config streams have been received
// (counted when the stream opens; refused ones do not count).
func (a *Agent) WaitConfigStreams(n int, timeout time.Duration) error {
	return a.waitFor(n, timeout, "config streams", func() int64 { return int64(len(a.configStreams)) })
}

// WaitConfigReplies waits until the Config streams together have received at
// least n messages, the first (Node) message of each stream included.
func (a *Agent) WaitConfigReplies(n int, timeout time.Duration) error {
	return a.waitFor(n, timeout, "config messages", func() int64 { return a.configRecv })
}

// ---- shared ----

// blackHole holds a stream open without reading it until the client or Stop
// ends it.
func blackHole(ctx context.Context) error {
	<-ctx.Done()
	return status.FromContextError(ctx.Err()).Err()
}

// wireCounter is a stats.Handler that adds up the wire size of each received
// Export message, which the handlers cannot see after decompression.
type wireCounter struct{ a *Agent }

type methodKey struct{}

func (w wireCounter) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	return context.WithValue(ctx, methodKey{}, info.FullMethodName)
}

func (w wireCounter) HandleRPC(ctx context.Context, s stats.RPCStats) {
	in, ok := s.(*stats.InPayload)
	if !ok {
		return
	}
	method, _ := ctx.Value(methodKey{}).(string)
	a := w.a
	a.mu.Lock()
	switch method {
	case traceExportMethod:
		a.traces.wire += int64(in.WireLength)
	case metricsExportMethod:
		a.metrics.wire += int64(in.WireLength)
	}
	a.mu.Unlock()
}

func (wireCounter) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }

func (wireCounter) HandleConn(context.Context, stats.ConnStats) {}

// SpanIDSet returns how many times each span id arrived (a copy).
func (a *Agent) SpanIDSet() map[[8]byte]uint32 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.idCounts)
}
