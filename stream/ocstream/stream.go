// Package ocstream is the OpenCensus transport: one bidirectional Export
// stream per signal, whose first message carries the Node, with no
// acknowledgements; and the trace Config stream.
//
// Delivery: gRPC's SendMsg returns once a message is queued, and the agent
// never answers, so a batch handed to a stream whose agent then dies may
// never have been read. Each stream therefore keeps its most recently sent
// batches (the replay, up to a byte budget) and sends them again, after the
// Node, on the next stream: at-least-once, with the duplicates counted. The
// agent can hold at most its flow-control window unread (64 KiB at first, up
// to 16 MiB once gRPC's BDP estimation has grown it), so a budget at least
// that large loses nothing across an agent restart.
package ocstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"

	"github.com/zerocensus/ocagent/pool"
	"github.com/zerocensus/ocagent/stream"
)

var exportDesc = &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}

var _ stream.Transport = (*Stream)(nil)

// Config describes one Export stream.
type Config struct {
	Method string // full gRPC method, e.g. /opencensus.proto.agent.trace.v1.TraceService/Export
	Header []byte // the first message of every stream (Node and Resource), encoded
	// ReplayBytes is how many bytes of recently sent batches are kept to be
	// resent after a break (0: none, at-most-once for batches sent), and
	// also how many bytes of batches are encoded and kept while the agent is
	// unreachable, so that the ring is free for new spans.
	ReplayBytes int
	// MaxAge is how long a stream carries batches before it is rotated:
	// ended cleanly (half-closed, and the agent's end awaited) and the next
	// one opened, which the channel's round_robin places on the next
	// address of a fleet. Each stream's age is drawn from [MaxAge*0.8,
	// MaxAge] so that many exporters do not rotate together. 0: never.
	MaxAge time.Duration
	// ConfirmOnFlush makes Confirm (Flush) end the stream cleanly, as a
	// rotation does, so that Flush returns once the agent has read what
	// was sent. It costs a round trip and a new stream per Flush (about
	// 90 allocations); without it Confirm does nothing and Flush returns
	// once everything was handed to the stream, as upstream's.
	ConfirmOnFlush bool
	// ConfirmBytes rotates a stream, as MaxAge does, once the batches it
	// has sent since its last confirmation would exceed this many bytes
	// with the next one: the rotation confirms them (the agent ended the
	// stream after reading them), so that a break resends at most this
	// much, and with ConfirmBytes <= ReplayBytes a batch leaves the replay
	// confirmed, whatever the agent's flow-control window (unless a
	// rotation failed: the replay is then bounded by twice ReplayBytes). Each
	// rotation costs a round trip and a new stream (about 90
	// allocations). 0: never (the replay then evicts its oldest batches,
	// read or not).
	ConfirmBytes int
	// EndTimeout bounds a rotation's wait for the agent to end the stream
	// (0: DefaultEndTimeout). The agent ends it once it has read
	// everything sent, which can be megabytes behind on a busy agent;
	// an end not seen in time breaks the stream instead (its frames are
	// resent: duplicates, never a loss).
	EndTimeout time.Duration
}

// DefaultEndTimeout is Config.EndTimeout's default: long enough for a busy
// agent to read a replay's worth (up to its flow-control window), where
// the connection's AttemptTimeout is sized for opening a stream.
const DefaultEndTimeout = 10 * time.Second

// Stream is the OpenCensus transport of one signal. Only the pipeline's
// scheduler goroutine calls its methods, except Pending and Events.
//
// Ownership: every frame in frames holds one reference to its buffer, the
// Stream's; gRPC takes references of its own for each send. A frame's
// reference is freed when it leaves the replay (evicted, confirmed by the
// agent reading the stream to its end, or counted at Abort).
type Stream struct {
	conn     *stream.Conn
	cfg      Config
	c        *stream.Counters
	events   chan struct{}
	kick     atomic.Bool // the channel became READY: try now, whatever the backoff
	header   mem.Buffer
	callOpts []grpc.CallOption

	// Owned by the scheduler goroutine.
	stream      grpc.ClientStream
	cancel      context.CancelFunc
	recv        *receiver
	opened      bool
	bo          stream.Backoff
	nextAttempt time.Time
	retry       *time.Timer
	frame       stream.Frame
	frames      []frame   // oldest first: sent ones (the replay), then the ones never sent
	sentBytes   int       // bytes of the sent frames retained
	unsentBytes int       // bytes of the frames never sent
	resend      bool      // the stream broke: every frame goes out again on the next one
	expires     time.Time // when the open stream is due for rotation (zero: never)
	carried     bool      // the open stream was handed a frame: a clean end would confirm something
	closed      bool      // Close was called: no stream is opened again
	pending     atomic.Int64
	pendingPts  atomic.Int64
}

type frame struct {
	buf   mem.Buffer
	n     stream.Count
	sent  bool      // a stream accepted it once (sending it again may duplicate it)
	start time.Time // Send: the export's duration runs until a stream takes it
}

// New returns the stream transport of one signal over conn. It opens nothing
// until the scheduler asks (Ready).
func New(conn *stream.Conn, cfg Config, bufs *pool.Buffers, c *stream.Counters) *Stream {
	s := &Stream{conn: conn, cfg: cfg, c: c, events: make(chan struct{}, 1),
		callOpts: conn.CallOptions(grpc.ForceCodecV2(stream.Codec{}))}
	hb := bufs.Get(len(cfg.Header))
	copy(*hb, cfg.Header)
	s.header = mem.NewBuffer(hb, bufs)
	s.retry = time.AfterFunc(time.Hour, s.signal)
	s.retry.Stop()
	conn.OnReady(func() { s.kick.Store(true); s.signal() })
	return s
}

func (s *Stream) signal() {
	select {
	case s.events <- struct{}{}:
	default:
	}
}

// Events implements stream.Transport.
func (s *Stream) Events() <-chan struct{} { return s.events }

// Pending implements stream.Transport: what is in frames no stream accepted.
func (s *Stream) Pending() stream.Count {
	return stream.Count{Items: int(s.pending.Load()), Points: int(s.pendingPts.Load())}
}

// Settled implements stream.Transport: the protocol has no answers to wait for.
func (s *Stream) Settled() bool { return true }

var (
	errDown   = errors.New("not connected")
	errClosed = errors.New("closed")
)

// Ready implements stream.Transport. While the agent is unreachable it
// still takes batches, up to ReplayBytes of them: they wait encoded (a few
// hundred bytes a span, where the ring keeps each span's whole SpanData
// alive) and go out first when a stream opens, and the ring stays free for
// the spans that keep coming during a short outage.
func (s *Stream) Ready() error {
	if s.stream != nil {
		return nil
	}
	if s.closed {
		return errClosed
	}
	err := errDown
	if s.kick.Swap(false) || s.nextAttempt.IsZero() || !time.Now().Before(s.nextAttempt) {
		if err = s.connect(); err == nil {
			return nil
		}
	} else if last := s.c.Snapshot().LastError; last != nil {
		err = last
	}
	if s.unsentBytes < s.cfg.ReplayBytes {
		return nil
	}
	return err
}

// Service implements stream.Transport: it sees the end of the stream and
// makes the attempt that is due (even with nothing queued, so that the Node
// is sent as soon as the agent is back).
func (s *Stream) Service() {
	if s.recv != nil {
		select {
		case <-s.recv.done:
			s.broken(s.recv.err)
		default:
		}
	}
	if s.stream == nil && !s.closed {
		_ = s.Ready()
	}
}

// connect opens the stream, sends the Node, then every frame kept from the
// last stream, oldest first.
func (s *Stream) connect() error {
	st, cancel, err := s.conn.Open(s.cfg.Method, exportDesc, s.callOpts)
	if err != nil {
		s.broken(err)
		return err
	}
	s.stream, s.cancel = st, cancel
	s.recv = receive(st, s.signal)
	if err, _ := s.sendMsg(s.header); err != nil {
		return err
	}
	if s.resend || s.hasUnsent() {
		for i := range s.frames {
			f := &s.frames[i]
			if err, _ := s.sendMsg(f.buf); err != nil {
				return err // kept: the next stream tries again
			}
			if f.sent {
				s.c.Resent(f.n.Items)
			} else {
				f.sent = true
				s.c.Exported(f.n, f.buf.Len())
				s.c.Durations.Observe(time.Since(f.start), int(codes.OK))
				s.sentBytes += f.buf.Len()
				s.unsentBytes -= f.buf.Len()
			}
		}
		s.resend = false
		s.carried = len(s.frames) > 0
		s.updatePending()
		s.evict()
	}
	if s.opened {
		s.c.Reconnected()
	}
	s.opened = true
	if s.cfg.MaxAge > 0 {
		s.expires = time.Now().Add(s.cfg.MaxAge - time.Duration(rand.Int64N(int64(s.cfg.MaxAge)/5+1)))
	}
	s.kick.Store(false)
	s.bo.Reset()
	s.nextAttempt = time.Time{}
	s.c.SetErr(nil)
	return nil
}

// full reports whether sending n more bytes on the open stream would take
// what it carried unconfirmed past ConfirmBytes.
func (s *Stream) full(n int) bool {
	return s.cfg.ConfirmBytes > 0 && s.carried && s.sentBytes+n > s.cfg.ConfirmBytes
}

func (s *Stream) hasUnsent() bool {
	return len(s.frames) > 0 && !s.frames[len(s.frames)-1].sent
}

// Send implements stream.Transport. An export's duration
// (stream.Counters.Durations) runs from here until a stream takes the
// frame, across the reconnections it waits for: the protocol has no answer.
func (s *Stream) Send(buf mem.Buffer, items stream.Count) {
	start := time.Now()
	if s.stream != nil && (s.full(buf.Len()) || !s.expires.IsZero() && !time.Now().Before(s.expires)) {
		s.rotate(s.conn.Ctx)
		if s.stream == nil {
			_ = s.connect()
		}
	}
	if s.stream == nil { // the agent is unreachable: kept for the next stream
		s.keep(buf, items, false, start)
		return
	}
	n := buf.Len()
	err, local := s.sendMsg(buf)
	switch {
	case err == nil:
		s.c.Exported(items, n)
		s.c.Durations.Observe(time.Since(start), int(codes.OK))
		s.carried = true
		s.keep(buf, items, true, start)
	case local && tooLarge(err):
		// gRPC refused it before it left (a MaxCallSendMsgSize below our
		// batch budget): sending it again would fail the same way forever.
		buf.Free()
		s.c.Oversize(items)
		s.c.Durations.Observe(time.Since(start), int(codes.ResourceExhausted))
	default:
		s.c.SendFailed()
		s.keep(buf, items, false, start) // first out on the next stream
	}
}

// SendRaw implements stream.Transport. A caller-built request is sent now
// or refused: it is never queued behind a reconnection, since the caller
// has been told it failed.
func (s *Stream) SendRaw(buf mem.Buffer, items int) error {
	if err := s.Ready(); err != nil || s.stream == nil {
		if err == nil {
			err = s.c.Snapshot().LastError
		}
		buf.Free()
		return fmt.Errorf("no active connection, last connection error: %w", err)
	}
	if err, _ := s.sendMsg(buf); err != nil {
		buf.Free()
		return err
	}
	s.carried = true
	s.keep(buf, stream.Count{Items: items}, true, time.Time{})
	return nil
}

// keep retains a frame: a sent one in the replay (if it fits the budget), an
// unsent one until the next stream.
func (s *Stream) keep(buf mem.Buffer, n stream.Count, sent bool, start time.Time) {
	if sent && (s.cfg.ReplayBytes <= 0 || buf.Len() > s.cfg.ReplayBytes) {
		buf.Free()
		return
	}
	s.frames = append(s.frames, frame{buf: buf, n: n, sent: sent, start: start})
	if sent {
		s.sentBytes += buf.Len()
		s.evict()
	} else {
		s.unsentBytes += buf.Len()
		s.updatePending()
	}
}

// evict drops the oldest sent frames beyond the replay budget. Only frames a
// stream accepted are evicted, and only after the newest was accepted: a
// failed send never shrinks what is kept. With ConfirmBytes the stream is
// rotated before its frames pass the budget, and only what a reconnection
// resends on top of the frames that waited for it (at most a budget each,
// Ready refusing beyond) can exceed it: twice the budget is then the bound,
// so that nothing is evicted unconfirmed.
func (s *Stream) evict() {
	limit := s.cfg.ReplayBytes
	if s.cfg.ConfirmBytes > 0 {
		limit *= 2
	}
	drop := 0
	for drop < len(s.frames) && s.frames[drop].sent && s.sentBytes > limit {
		s.sentBytes -= s.frames[drop].buf.Len()
		s.frames[drop].buf.Free()
		s.frames[drop] = frame{}
		drop++
	}
	if drop > 0 {
		s.frames = append(s.frames[:0], s.frames[drop:]...)
	}
}

func (s *Stream) updatePending() {
	var n stream.Count
	for _, f := range s.frames {
		if !f.sent {
			n.Items += f.n.Items
			n.Points += f.n.Points
		}
	}
	s.pendingPts.Store(int64(n.Points))
	s.pending.Store(int64(n.Items))
}

// sendMsg hands one reference of buf to gRPC (the codec takes it). On
// failure the stream is marked broken; local reports an error of the client's
// own making (SendMsg fails with something other than io.EOF only for those:
// the agent's verdicts arrive as io.EOF and the stream's status).
func (s *Stream) sendMsg(buf mem.Buffer) (err error, local bool) {
	s.frame.Buf = buf
	err = s.stream.SendMsg(&s.frame)
	s.frame.Buf = nil
	if err != nil {
		local = err != io.EOF
		if err == io.EOF {
			// The stream ended; its status says why.
			<-s.recv.done
			if s.recv.err != nil && s.recv.err != io.EOF {
				err = s.recv.err
			}
		}
		s.broken(err)
	}
	return err, local
}

// tooLarge reports gRPC's refusal of a message over the call's send limit.
func tooLarge(err error) bool {
	st, ok := status.FromError(err)
	return ok && st.Code() == codes.ResourceExhausted
}

// broken forgets the stream and schedules the next attempt. What was sent on
// it may not have been read: the frames go out again on the next stream.
func (s *Stream) broken(err error) {
	if s.stream != nil && len(s.frames) > 0 {
		s.resend = true
	}
	s.closeStream()
	s.c.SetErr(err)
	d := s.bo.Next(s.conn.MaxBackoff)
	s.nextAttempt = time.Now().Add(d)
	s.retry.Reset(d)
}

// Close implements stream.Transport: it half-closes the stream and waits
// for the agent to end it. Only an end that answers our half-close, on a
// stream that had not ended before it, confirms that the agent read
// everything: then the replay is released. An agent that ended the stream
// early (it returned before reading to the end) confirms nothing, and what
// was sent stays in doubt.
func (s *Stream) Close(ctx context.Context) {
	s.closed = true
	s.retry.Stop()
	if s.stream == nil {
		return
	}
	endedBefore := false
	select {
	case <-s.recv.done:
		endedBefore = true
	default:
	}
	if err := s.stream.CloseSend(); err == nil && !endedBefore {
		select {
		case <-s.recv.done:
			if s.recv.err == io.EOF && !s.hasUnsent() {
				s.release()
			}
		case <-ctx.Done():
		case <-s.conn.Ctx.Done():
		}
	}
	s.closeStream()
}

// end half-closes the open stream and waits for the agent to end it: true
// when the agent ended it in answer (io.EOF, on a stream that had not ended
// before), which confirms it read every frame sent. The stream is closed in
// any case; a stream that did not end cleanly is broken (its frames go out
// again on the next).
func (s *Stream) end(ctx context.Context) bool {
	endedBefore := false
	select {
	case <-s.recv.done:
		endedBefore = true
	default:
	}
	clean := false
	if err := s.stream.CloseSend(); err == nil && !endedBefore {
		d := s.cfg.EndTimeout
		if d <= 0 {
			d = DefaultEndTimeout
		}
		wait, cancel := context.WithTimeout(ctx, d)
		select {
		case <-s.recv.done:
			clean = s.recv.err == io.EOF
		case <-wait.Done():
		case <-s.conn.Ctx.Done():
		}
		cancel()
	}
	return clean
}

// rotate ends the open stream cleanly and, when the agent confirmed it,
// releases the replay: nothing of it is sent again. A stream that did not
// end cleanly breaks as any other (the replay goes out on the next stream).
// The next stream opens at the next Send or Ready.
func (s *Stream) rotate(ctx context.Context) {
	if s.end(ctx) {
		if !s.hasUnsent() {
			s.release()
		}
		s.c.Rotated()
		s.closeStream()
		return
	}
	s.broken(fmt.Errorf("ocstream: the agent did not end the stream cleanly at rotation"))
	s.nextAttempt = time.Time{} // try the next stream at once
}

// Confirm implements stream.Confirmer: with ConfirmOnFlush, Flush ends the open stream cleanly,
// so that what was sent on it is confirmed read and leaves the replay (it
// is not sent again at the next break); the next stream opens at once.
func (s *Stream) Confirm(ctx context.Context) {
	if !s.cfg.ConfirmOnFlush || s.stream == nil || s.closed || !s.carried {
		return // not asked, or nothing to confirm
	}
	s.rotate(ctx)
	if s.stream == nil && !s.closed {
		_ = s.connect()
	}
}

// release frees the replay after the agent confirmed reading everything.
func (s *Stream) release() {
	for i := range s.frames {
		s.frames[i].buf.Free()
		s.frames[i] = frame{}
	}
	s.frames = s.frames[:0]
	s.sentBytes, s.unsentBytes = 0, 0
	s.resend = false
	s.updatePending()
}

// Abort implements stream.Transport.
func (s *Stream) Abort() {
	s.closeStream()
	s.retry.Stop()
	for i, f := range s.frames {
		if f.sent {
			s.c.InDoubt(f.n.Items)
		} else {
			s.c.DroppedAtStop(f.n.Items)
			s.c.Durations.Observe(time.Since(f.start), stream.CodeStopped)
		}
		f.buf.Free()
		s.frames[i] = frame{}
	}
	s.frames = s.frames[:0]
	s.sentBytes, s.unsentBytes = 0, 0
	s.pending.Store(0)
	s.pendingPts.Store(0)
	if s.header != nil {
		s.header.Free()
		s.header = nil
	}
}

func (s *Stream) closeStream() {
	if s.cancel != nil {
		s.cancel()
	}
	s.stream, s.cancel, s.recv = nil, nil, nil
	s.expires, s.carried = time.Time{}, false
}

// receiver is the goroutine that reads an Export stream. The agent sends
// nothing on it in practice, but reading is how the end of the stream is seen
// at once, so that the transport reconnects (and sends the Node) before the
// next batch instead of losing that batch to a dead stream.
type receiver struct {
	done chan struct{}
	err  error // the stream's final status; read after done is closed
}

func receive(st grpc.ClientStream, ended func()) *receiver {
	r := &receiver{done: make(chan struct{})}
	go func() {
		var m ignored
		for {
			if err := st.RecvMsg(&m); err != nil {
				r.err = err
				close(r.done)
				ended()
				return
			}
		}
	}()
	return r
}

// ignored receives the agent's replies, which the codec drops.
type ignored struct{}
