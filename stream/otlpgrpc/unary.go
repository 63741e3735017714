// Package otlpgrpc is the OTLP/gRPC transport: each request is one unary
// Export call, acknowledged by the agent, with a bounded number of calls in
// flight. A call is done when its response arrives; it is retried with the
// exporter's backoff only on the codes the OTLP specification calls
// retryable; whatever the agent refuses is counted, never retried forever.
package otlpgrpc

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/zerocensus/ocagent/stream"
)

// The real method names of the OTLP services (our generated types live in
// a renamed proto package).
const (
	TraceMethod   = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
	MetricsMethod = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
)

// Config describes one signal's calls.
type Config struct {
	Method      string
	MaxInFlight int           // calls in flight at once
	Timeout     time.Duration // each attempt (OTEL_EXPORTER_OTLP_TIMEOUT)
	// Points makes partial success count data points (metrics: the response
	// reports rejected_data_points, not metrics); otherwise it counts items.
	Points bool
}

var _ stream.Transport = (*Unary)(nil)

// Unary is the OTLP transport of one signal. Ready, Send, SendRaw, Close and
// Abort are called by the pipeline's scheduler only; the calls run on
// MaxInFlight worker goroutines, each owning one call at a time.
//
// Ownership: Send hands the request's reference to a worker's call; each
// attempt gives gRPC a reference of its own (the codec's Marshal); the
// worker frees the call's reference when the call is done (acknowledged,
// refused, or counted at Stop).
type Unary struct {
	conn     *stream.Conn
	cfg      Config
	c        *stream.Counters
	callOpts []grpc.CallOption
	events   chan struct{}
	free     chan *call // idle calls: a call's worker waits on its own channel
	wg       sync.WaitGroup

	inFlight   atomic.Int64 // calls handed to workers and not done
	pending    atomic.Int64 // their items
	pendingPts atomic.Int64 // and data points
	// unsent counts the calls in flight that wait to retry after an attempt
	// that could not be written (the agent unreachable): Flush and Close do
	// not wait for them, as they do not wait for an unreachable OpenCensus
	// agent.
	unsent    atomic.Int64
	connected bool // the first attempt to connect was made (scheduler goroutine)
}

type call struct {
	u    *Unary
	work chan struct{}
	// The call's context, reused from attempt to attempt: a timer cancels it
	// when an attempt outlives the timeout, and only then is a new one made
	// (a context per attempt would cost allocations on every call).
	ctx    context.Context
	cancel context.CancelFunc
	timer  *time.Timer
	buf    mem.Buffer
	n      stream.Count
	raw    bool
	frame  stream.Frame
	reply  reply
	bo     stream.Backoff

	att *attemptState // carried by ctx, marked by StatsHandler
	// Over the call's attempts: one was written (a later one may duplicate
	// it); one was written and got no answer (the agent may have it).
	written, doubt bool
}

// New starts the workers of one signal over conn.
func New(conn *stream.Conn, cfg Config, c *stream.Counters) *Unary {
	cfg.MaxInFlight = max(cfg.MaxInFlight, 1)
	u := &Unary{
		conn: conn, cfg: cfg, c: c,
		callOpts: conn.CallOptions(grpc.ForceCodecV2(stream.Codec{})),
		events:   make(chan struct{}, 1),
		free:     make(chan *call, cfg.MaxInFlight),
	}
	for range cfg.MaxInFlight {
		k := &call{u: u, work: make(chan struct{}, 1)}
		u.free <- k
		u.wg.Add(1)
		go k.run()
	}
	return u
}

func (u *Unary) signal() {
	select {
	case u.events <- struct{}{}:
	default:
	}
}

// Ready implements stream.Transport: busy while every call is in flight.
func (u *Unary) Ready() error {
	if !u.connected {
		u.connected = true
		u.connect()
	}
	if len(u.free) == 0 {
		return stream.ErrBusy
	}
	return nil
}

// Send implements stream.Transport.
func (u *Unary) Send(buf mem.Buffer, n stream.Count) { u.start(buf, n, false) }

// SendRaw implements stream.Transport: a caller-built request takes the
// same road as the exporter's own, after waiting for a free call.
func (u *Unary) SendRaw(buf mem.Buffer, items int) error {
	select {
	case k := <-u.free:
		u.free <- k
	case <-u.conn.Ctx.Done():
		buf.Free()
		return stream.ErrStopped
	}
	u.start(buf, stream.Count{Items: items}, true)
	return nil
}

func (u *Unary) start(buf mem.Buffer, n stream.Count, raw bool) {
	k := <-u.free // Ready said one is free; only the scheduler takes them
	k.buf, k.n, k.raw = buf, n, raw
	u.inFlight.Add(1)
	u.pendingPts.Add(int64(n.Points))
	u.pending.Add(int64(n.Items))
	k.work <- struct{}{}
}

// Events implements stream.Transport: a call finished.
func (u *Unary) Events() <-chan struct{} { return u.events }

// Service implements stream.Transport; the workers count as they go.
func (u *Unary) Service() {}

// Pending implements stream.Transport.
func (u *Unary) Pending() stream.Count {
	return stream.Count{Items: int(u.pending.Load()), Points: int(u.pendingPts.Load())}
}

// Settled implements stream.Transport: no call in flight, or only calls
// waiting to retry an agent their requests never reached.
func (u *Unary) Settled() bool { return u.inFlight.Load() == u.unsent.Load() }

// Close implements stream.Transport: it waits for the calls in flight.
func (u *Unary) Close(ctx context.Context) {
	for !u.Settled() {
		select {
		case <-u.events:
		case <-ctx.Done():
			return
		case <-u.conn.Ctx.Done():
			return
		}
	}
}

// Abort implements stream.Transport: the connection's context has ended,
// so every worker finishes its call (counting it in doubt, or dropped at
// stop if no attempt of it reached the agent unanswered) and exits.
func (u *Unary) Abort() { u.wg.Wait() }

func (k *call) run() {
	u := k.u
	defer u.wg.Done()
	defer func() {
		if k.ctx != nil {
			k.timer.Stop()
			k.cancel()
		}
	}()
	for {
		select {
		case <-k.work:
		case <-u.conn.Ctx.Done():
			return
		}
		k.do()
		k.buf.Free()
		k.buf = nil
		u.pending.Add(-int64(k.n.Items))
		u.pendingPts.Add(-int64(k.n.Points))
		u.inFlight.Add(-1)
		u.free <- k
		u.signal()
	}
}

// do makes the call's attempts until one succeeds, the agent refuses it, or
// Stop ends the connection's context.
func (k *call) do() {
	start := time.Now()
	code := k.attempts()
	k.u.c.Durations.Observe(time.Since(start), int(code))
}

// attempts makes the call's attempts and returns the status code that
// ended them (OK: acknowledged; Canceled: cut by Stop).
func (k *call) attempts() codes.Code {
	u := k.u
	k.bo.Reset()
	k.written, k.doubt = false, false
	for attempt := 0; ; attempt++ {
		if attempt > 0 && !k.raw && k.written {
			// Only a request that left the client can arrive twice.
			u.c.Resent(k.n.Items)
		}
		if k.ctx == nil {
			k.att = new(attemptState)
			k.ctx, k.cancel = context.WithCancel(withAttempt(u.conn.Ctx, k.att))
			k.timer = time.AfterFunc(u.cfg.Timeout, k.cancel)
		} else {
			k.timer.Reset(u.cfg.Timeout)
		}
		att := k.att
		att.reset()
		k.frame.Buf = k.buf
		k.reply.reset()
		err := u.conn.Invoke(k.ctx, u.cfg.Method, &k.frame, &k.reply, u.callOpts)
		k.frame.Buf = nil
		if !k.timer.Stop() {
			// The timer fired (or is firing): this context is spent.
			k.cancel()
			k.ctx = nil
			if err != nil && u.conn.Ctx.Err() == nil {
				err = status.Error(codes.DeadlineExceeded, "otlpgrpc: the call outlived the export timeout")
			}
		}
		if err == nil {
			k.acknowledged()
			return codes.OK
		}
		written, unanswered := att.outcome()
		k.written = k.written || written
		k.doubt = k.doubt || unanswered
		if u.conn.Ctx.Err() != nil {
			k.atStop()
			return codes.Canceled
		}
		delay, retry := retryable(err)
		if !retry {
			k.refused(err, written || att.answered.Load())
			return status.Code(err)
		}
		u.c.SendFailed()
		u.c.SetErr(err)
		if delay <= 0 {
			delay = k.bo.Next(u.conn.MaxBackoff)
		}
		if !written {
			u.unsent.Add(1)
			u.signal() // Flush and Close need not wait for it
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-u.conn.Ctx.Done():
			t.Stop()
			if !written {
				u.unsent.Add(-1)
			}
			k.atStop()
			return codes.Canceled
		}
		if !written {
			u.unsent.Add(-1)
		}
	}
}

func (k *call) acknowledged() {
	u := k.u
	u.c.SetErr(nil)
	if k.raw {
		return
	}
	// A partial success counts what the agent says it refused, at most
	// what the request carried: data points of a metrics request (its
	// metrics count as exported), spans of a trace request.
	rejected := int(k.reply.rejected)
	switch {
	case u.cfg.Points:
		rejected = min(rejected, k.n.Points)
		u.c.Exported(stream.Count{Items: k.n.Items, Points: k.n.Points - rejected}, k.buf.Len())
		u.c.PointsRejected(rejected)
	default:
		rejected = min(rejected, k.n.Items)
		u.c.Exported(stream.Count{Items: k.n.Items - rejected}, k.buf.Len())
		u.c.Rejected(rejected)
	}
	if k.reply.message != "" {
		u.c.SetErr(fmt.Errorf("OTLP partial success: %s", k.reply.message))
	}
}

// refused counts a request the agent (or gRPC itself, for a request over
// the call's send limit) will never take: sending it again would fail the
// same way. gRPC's own refusal of its size comes before the request is
// written or answered (seen false): it is dropped as oversize, as on an
// OpenCensus stream.
func (k *call) refused(err error, seen bool) {
	k.u.c.SetErr(err)
	switch {
	case k.raw:
	case !seen && status.Code(err) == codes.ResourceExhausted:
		k.u.c.Oversize(k.n)
	default:
		k.u.c.Refused(k.n, int(status.Code(err)))
	}
}

// atStop counts a call cut by Stop. If one of its attempts was written and
// got no answer, the agent may have its items: exported and in doubt (an
// upper bound of what is lost). Otherwise the agent never had them (no
// attempt left the client, or the agent refused each one that did): they
// are dropped at stop.
func (k *call) atStop() {
	if k.raw {
		return
	}
	if k.doubt {
		k.u.c.Exported(k.n, k.buf.Len())
		k.u.c.InDoubt(k.n.Items)
		return
	}
	k.u.c.DroppedAtStop(k.n.Items)
}

// retryable follows the OTLP specification: Unavailable, DeadlineExceeded,
// Aborted, Canceled, OutOfRange and DataLoss are retried;
// ResourceExhausted only when the server sent RetryInfo, whose delay is
// then honoured. Anything else is final.
func retryable(err error) (time.Duration, bool) {
	st, ok := status.FromError(err)
	if !ok {
		return 0, true // not from gRPC: a local failure worth another try
	}
	switch st.Code() {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted, codes.Canceled, codes.OutOfRange, codes.DataLoss:
		return retryDelay(st), true
	case codes.ResourceExhausted:
		if d, ok := retryInfo(st); ok {
			return d, true
		}
	}
	return 0, false
}

func retryDelay(st *status.Status) time.Duration {
	d, _ := retryInfo(st)
	return d
}

// retryInfo finds the server's RetryInfo among the status details.
func retryInfo(st *status.Status) (time.Duration, bool) {
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.GetRetryDelay().AsDuration(), true
		}
	}
	return 0, false
}

// reply reads an Export response's partial_success (field 1 of both the
// trace and the metrics response: {rejected_spans or rejected_data_points
// = 1, error_message = 2}) without copying or decoding the rest.
type reply struct {
	rejected int64
	message  string // the agent's explanation of a partial success, if any
}

func (r *reply) reset() { *r = reply{} }

// UnmarshalReply implements stream.Reply.
func (r *reply) UnmarshalReply(data mem.BufferSlice) error {
	var b []byte
	switch len(data) {
	case 0:
		return nil
	case 1:
		b = data[0].ReadOnlyData()
	default:
		b = data.Materialize() // a response split across buffers: rare and small
	}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return protowire.ParseError(m)
			}
			r.partial(v)
			b = b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return protowire.ParseError(m)
		}
		b = b[m:]
	}
	return nil
}

func (r *reply) partial(b []byte) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			v, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return
			}
			r.rejected = int64(v)
			b = b[m:]
		case num == 2 && typ == protowire.BytesType:
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return
			}
			r.message = string(v)
			b = b[m:]
		default:
			m := protowire.ConsumeFieldValue(num, typ, b)
			if m < 0 {
				return
			}
			b = b[m:]
		}
	}
}
