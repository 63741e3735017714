package stream

// transport.go holds what the protocol transports share: the gRPC
// connection with its reconnection policy, the pass-through codec that hands
// pre-encoded bytes to gRPC, and the counters a transport keeps.
//
// The transports themselves are one package per protocol: ocstream (the
// OpenCensus bidirectional stream, without acknowledgements), otlpgrpc
// (OTLP unary calls, acknowledged) and otlphttp (OTLP/HTTP POSTs of the same
// bytes, acknowledged; no Conn). The pipeline's scheduler drives either
// through the Transport interface.

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"
)

// Conn is the gRPC channel the exporter's streams and calls share, with the
// context that carries the user's headers to each of them and ends them all
// on Stop.
//
// Reconnection follows the exporter's own backoff (see Backoff), not
// gRPC's. gRPC's channel, once a dial failed, waits out its own backoff in
// TRANSIENT_FAILURE, and nothing public makes it dial sooner without a race
// (ClientConn.ResetConnectBackoff reads the channel's subchannel map without
// its lock in grpc-go v1.85, and a concurrent subchannel change is a fatal
// "concurrent map iteration and map write"). So when an attempt of ours
// finds the channel in TRANSIENT_FAILURE it replaces the channel with a new
// one, which dials at once; the old one is closed. An attempt then waits
// while the new channel connects (gRPC queues a call on a CONNECTING
// channel), at most AttemptTimeout, and fails as soon as the dial does: the
// next attempt comes after the exporter's own delay.
type Conn struct {
	Ctx      context.Context // cancelled by the exporter's Stop; carries outgoing headers
	CallOpts []grpc.CallOption
	// MaxBackoff caps the delay between reconnection attempts
	// (WithReconnectionPeriod).
	MaxBackoff time.Duration
	// AttemptTimeout bounds one attempt to open a stream (or one wait for the
	// channel in a call), so that an agent that accepts TCP but never answers
	// cannot hold a writer.
	AttemptTimeout time.Duration

	target string
	opts   []grpc.DialOption
	cc     atomic.Pointer[grpc.ClientConn]

	mu      sync.Mutex
	closed  bool
	ready   []func() // called when the channel becomes READY
	redials atomic.Uint64
}

// Dial makes the channel (gRPC's NewClient: nothing is dialled until first
// use) with the options the exporter's reconnection needs, followed by the
// caller's.
func Dial(ctx context.Context, target string, maxBackoff, attemptTimeout time.Duration, callOpts []grpc.CallOption, opts ...grpc.DialOption) (*Conn, error) {
	opts = append([]grpc.DialOption{
		// Every address the target resolves to (a DNS name of a Collector
		// fleet, a headless service) takes calls and streams, as the
		// Collector's own gRPC clients do; gRPC's default, pick_first,
		// would send everything to the first that answers. A service
		// config of the user's (a later dial option, or the resolver's)
		// wins.
		grpc.WithDefaultServiceConfig(RoundRobin),
		grpc.WithConnectParams(grpc.ConnectParams{
			// Within one channel, gRPC's own retries are paced like ours.
			Backoff: backoff.Config{
				BaseDelay:  FirstBackoff,
				Multiplier: 2,
				Jitter:     0.2,
				MaxDelay:   max(maxBackoff, FirstBackoff),
			},
			MinConnectTimeout: 20 * time.Second,
		}),
		// The transports retry themselves (the OpenCensus replay, OTLP's
		// retry on the specification's codes); gRPC's transparent retry
		// would only buffer every message a second time.
		grpc.WithDisableRetry(),
	}, opts...)
	cc, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, err
	}
	c := &Conn{Ctx: ctx, CallOpts: callOpts, MaxBackoff: maxBackoff, AttemptTimeout: attemptTimeout, target: target, opts: opts}
	c.cc.Store(cc)
	return c, nil
}

// RoundRobin is the default service config of every channel Dial makes.
const RoundRobin = `{"loadBalancingConfig":[{"round_robin":{}}]}`

// Client is the channel to use now.
func (c *Conn) Client() *grpc.ClientConn { return c.cc.Load() }

// Redials counts the channels replaced to dial at once.
func (c *Conn) Redials() uint64 { return c.redials.Load() }

// fresh returns the channel for an attempt: the current one, or a new one
// if the current one waits out a backoff after a failed dial.
func (c *Conn) fresh() *grpc.ClientConn {
	cc := c.cc.Load()
	if cc.GetState() != connectivity.TransientFailure {
		return cc
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.cc.Load() != cc {
		return c.cc.Load()
	}
	nc, err := grpc.NewClient(c.target, c.opts...)
	if err != nil {
		return cc // the same target and options made a channel before
	}
	c.cc.Store(nc)
	c.redials.Add(1)
	_ = cc.Close() // ends calls still waiting on it: they retry on the new one
	return nc
}

// Close closes the channel; no channel is made after it.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return c.cc.Load().Close()
}

// OnReady registers f to be called (from the watcher goroutine) each time
// the channel becomes READY, so that a transport waiting out its backoff
// reconnects at once when the agent is back.
func (c *Conn) OnReady(f func()) {
	c.mu.Lock()
	c.ready = append(c.ready, f)
	c.mu.Unlock()
}

// Watch follows the channel's state (across replacements) until the
// context ends, calling the OnReady functions on each transition to READY.
// Run it in its own goroutine.
func (c *Conn) Watch() {
	for {
		cc := c.cc.Load()
		s := cc.GetState()
		if s == connectivity.Ready {
			c.mu.Lock()
			fs := c.ready
			c.mu.Unlock()
			for _, f := range fs {
				f()
			}
		}
		// A replaced channel is closed: its state changes to SHUTDOWN and
		// the loop moves on to the new one.
		if !cc.WaitForStateChange(c.Ctx, s) {
			return
		}
	}
}

// Open starts a stream on method with call options made by CallOptions. The
// stream lives until cancel is called or the connection's context ends. It
// waits for a connecting channel at most AttemptTimeout.
func (c *Conn) Open(method string, desc *grpc.StreamDesc, opts []grpc.CallOption) (grpc.ClientStream, context.CancelFunc, error) {
	ctx, cancel := context.WithCancel(c.Ctx)
	// The timeout cancels only a stream that is still being opened.
	t := time.AfterFunc(c.AttemptTimeout, cancel)
	s, err := c.fresh().NewStream(ctx, desc, method, opts...)
	if !t.Stop() && err == nil {
		err = context.DeadlineExceeded
	}
	if err != nil {
		cancel()
		return nil, nil, err
	}
	return s, cancel, nil
}

// Invoke makes one unary call on the channel for an attempt (see fresh),
// with call options made by CallOptions.
func (c *Conn) Invoke(ctx context.Context, method string, req, reply any, opts []grpc.CallOption) error {
	return c.fresh().Invoke(ctx, method, req, reply, opts...)
}

// CallOptions returns the options of every stream or call: the exporter's
// (compressor), then extra. Transports make them once.
func (c *Conn) CallOptions(extra ...grpc.CallOption) []grpc.CallOption {
	all := make([]grpc.CallOption, 0, len(c.CallOpts)+len(extra))
	return append(append(all, c.CallOpts...), extra...)
}

// Count is what a request carries, in the two units the exporter counts:
// items (spans, views, metrics: what Stats counts) and the data points in
// them (a view's rows, a metric's points: what OpenTelemetry's
// metric_data_point self-metrics count; 0 for spans).
type Count struct{ Items, Points int }

// Counters are a transport's monotonic statistics, written by the transport
// (and the scheduler that drives it) and read by Stats from any goroutine.
type Counters struct {
	exported     atomic.Uint64
	exportedPts  atomic.Uint64
	batches      atomic.Uint64
	bytes        atomic.Uint64
	sendFailures atomic.Uint64
	resent       atomic.Uint64
	inDoubt      atomic.Uint64
	reconnects   atomic.Uint64
	atStop       atomic.Uint64
	rejected     atomic.Uint64
	refused      atomic.Uint64
	refusedPts   atomic.Uint64
	oversize     atomic.Uint64
	oversizePts  atomic.Uint64
	points       atomic.Uint64
	rotations    atomic.Uint64
	lastErr      atomic.Pointer[errBox]

	// Durations are the export operations' durations (OTLP calls and
	// POSTs, all their attempts; OpenCensus frames, until a stream took
	// them), by final status code.
	Durations Durations
	// Refusals are the requests refused as a whole, by status code.
	Refusals Refusals
}

type errBox struct{ err error }

// Exported counts a batch accepted by the agent's side: handed to a stream
// (OpenCensus) or acknowledged (OTLP), with the data points accepted.
func (c *Counters) Exported(n Count, bytes int) {
	c.exportedPts.Add(uint64(n.Points))
	c.exported.Add(uint64(n.Items))
	c.batches.Add(1)
	c.bytes.Add(uint64(bytes))
}

// SendFailed counts a failed send or call attempt.
func (c *Counters) SendFailed() { c.sendFailures.Add(1) }

// Resent counts items sent again after a break (possible duplicates).
func (c *Counters) Resent(items int) { c.resent.Add(uint64(items)) }

// InDoubt counts exported items not confirmed read when the transport ended.
func (c *Counters) InDoubt(items int) { c.inDoubt.Add(uint64(items)) }

// Rotated counts a stream ended cleanly by the client and confirmed by the
// agent (a rotation at its maximum age, or a Flush).
func (c *Counters) Rotated() { c.rotations.Add(1) }

// Reconnected counts a stream opened after the first.
func (c *Counters) Reconnected() { c.reconnects.Add(1) }

// DroppedAtStop counts items still held when Stop's deadline passed.
func (c *Counters) DroppedAtStop(items int) { c.atStop.Add(uint64(items)) }

// Rejected counts items the agent refused in a partial success of a span
// request (their count is the answer's).
func (c *Counters) Rejected(items int) { c.rejected.Add(uint64(items)) }

// Refused counts a request the agent refused as a whole with code (a
// non-retryable gRPC code, a final HTTP status): its items count as
// rejected, by code.
func (c *Counters) Refused(n Count, code int) {
	c.Refusals.add(n, code)
	c.refusedPts.Add(uint64(n.Points))
	c.refused.Add(uint64(n.Items))
}

// PointsRejected counts data points the agent refused (OTLP partial
// success of a metrics request, which counts points, not metrics).
func (c *Counters) PointsRejected(n int) { c.points.Add(uint64(n)) }

// Oversize counts a request refused for its size (by gRPC before it left,
// or by an HTTP 413).
func (c *Counters) Oversize(n Count) {
	c.oversizePts.Add(uint64(n.Points))
	c.oversize.Add(uint64(n.Items))
}

// SetErr records the latest error; nil once connected again.
func (c *Counters) SetErr(err error) {
	if err == nil {
		if c.lastErr.Load() != nil {
			c.lastErr.Store(nil)
		}
		return
	}
	c.lastErr.Store(&errBox{err})
}

// Snapshot is a copy of the counters. Rejected covers both partial
// successes and refused requests (Refused, of it, the latter; Refusals has
// them by code).
type Snapshot struct {
	Exported, Batches, Bytes, SendFailures, Resent, InDoubt, Reconnects uint64
	DroppedAtStop, Rejected, Refused, Oversize, PointsRejected          uint64
	Rotations                                                           uint64
	// Data points: exported (accepted, less what a partial success
	// refused), in requests refused as a whole, in requests refused for
	// their size.
	PointsExported, PointsRefused, PointsOversize uint64
	LastError                                     error
}

// Snapshot reads every counter.
func (c *Counters) Snapshot() Snapshot {
	s := Snapshot{
		Exported: c.exported.Load(), Batches: c.batches.Load(), Bytes: c.bytes.Load(),
		SendFailures: c.sendFailures.Load(), Resent: c.resent.Load(), InDoubt: c.inDoubt.Load(),
		Reconnects: c.reconnects.Load(), DroppedAtStop: c.atStop.Load(),
		Oversize: c.oversize.Load(), PointsRejected: c.points.Load(), Rotations: c.rotations.Load(),
		PointsExported: c.exportedPts.Load(), PointsRefused: c.refusedPts.Load(), PointsOversize: c.oversizePts.Load(),
	}
	s.Refused = c.refused.Load()
	s.Rejected = c.rejected.Load() + s.Refused
	if b := c.lastErr.Load(); b != nil {
		s.LastError = b.err
	}
	return s
}
