package stream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	"github.com/zerocensus/ocagent/internal/pool"
)

// Source is the batching half of a stream: it owns the queue of items and the
// reusable messages a batch is converted into. Only the writer goroutine calls
// its methods, except Queued and Notify-side pushes done by producers.
type Source interface {
	// Fill converts queued items into the batch until it holds the maximum
	// count or bytes. It returns the items in the batch and the size of its
	// encoded body. A batch that was filled and not yet Sent is returned as is.
	Fill() (items, size int)
	// Encode writes the body of the current batch, exactly size bytes, to dst.
	Encode(dst []byte)
	// Sent forgets the current batch after gRPC accepted it.
	Sent()
	// Discard drops the queue and the current batch and reports how many
	// items were lost (on Stop).
	Discard() int
	// Queued is the number of items waiting in the queue (approximate while
	// producers push).
	Queued() int
}

// Counters are the writer's monotonic statistics.
type Counters struct {
	Items        atomic.Uint64 // items handed to gRPC in batches
	Batches      atomic.Uint64
	Bytes        atomic.Uint64 // encoded bytes handed to gRPC (before compression)
	SendFailures atomic.Uint64 // SendMsg errors (the batch is retried)
	Resent       atomic.Uint64 // items sent again on a new stream after a break (possible duplicates)
	InDoubt      atomic.Uint64 // items sent but not confirmed read when Run ended: the stream broke, or Stop's deadline cut it
	Reconnects   atomic.Uint64 // streams opened after the first
	Discarded    atomic.Uint64 // items still queued at Stop
	Pending      atomic.Int64  // items taken from the queue but not yet accepted by a stream
	lastErr      atomic.Pointer[errBox]
}

type errBox struct{ err error }

// LastError is the most recent connection or send error, nil after a
// successful reconnection.
func (c *Counters) LastError() error {
	if b := c.lastErr.Load(); b != nil {
		return b.err
	}
	return nil
}

func (c *Counters) setErr(err error) {
	if err == nil {
		c.lastErr.Store(nil)
		return
	}
	c.lastErr.Store(&errBox{err})
}

// WriterConfig describes one stream.
type WriterConfig struct {
	Method string        // full gRPC method, e.g. /opencensus.proto.agent.trace.v1.TraceService/Export
	Header []byte        // the first message of every stream (Node and Resource), encoded
	Suffix []byte        // appended to every batch body (the Resource field), encoded
	Delay  time.Duration // the longest an item waits in the queue
	// ReplayBytes is how many bytes of recently sent batches are kept to be
	// resent after a break (0: none, at-most-once for batches sent).
	ReplayBytes int
}

var exportDesc = &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}

// ErrStopped is returned for work submitted after Stop.
var ErrStopped = errors.New("stopped")

// Writer is the only goroutine that sends on its stream. It drains its Source
// when woken (a full batch is queued), every Delay, on Flush and on Stop;
// reconnects with backoff when the stream breaks; and resends the batch whose
// send failed on the new stream (at-least-once).
type Writer struct {
	conn *Conn
	cfg  WriterConfig
	src  Source
	bufs *pool.Buffers
	C    *Counters

	wake  chan struct{}
	flush chan chan struct{}
	close chan chan struct{}
	raw   chan rawMsg
	done  chan struct{}

	// Owned by the writer goroutine (or by Connect before it starts).
	stream      grpc.ClientStream
	cancel      context.CancelFunc
	recv        *receiver // reads the open stream's replies and its end
	opened      bool
	bo          backoff
	nextAttempt time.Time
	retry       *time.Timer
	items, size int
	frame       Frame
	replay      replay
}

// receiver is the goroutine that reads an Export stream. The agent sends
// nothing on it in practice, but reading is how the end of the stream is seen
// at once, so that the writer reconnects (and sends the Node) before the next
// batch instead of losing that batch to a dead stream.
type receiver struct {
	done chan struct{}
	err  error // the stream's final status; read after done is closed
}

func receive(s grpc.ClientStream) *receiver {
	r := &receiver{done: make(chan struct{})}
	go func() {
		var m emptyMsg
		for {
			if err := s.RecvMsg(&m); err != nil {
				r.err = err
				close(r.done)
				return
			}
		}
	}()
	return r
}

type rawMsg struct {
	buf *[]byte
	err chan error
}

// NewWriter returns a writer that has not connected yet.
func NewWriter(conn *Conn, cfg WriterConfig, src Source, bufs *pool.Buffers) *Writer {
	w := &Writer{
		conn: conn, cfg: cfg, src: src, bufs: bufs, C: new(Counters),
		wake:  make(chan struct{}, 1),
		flush: make(chan chan struct{}),
		close: make(chan chan struct{}),
		raw:   make(chan rawMsg),
		done:  make(chan struct{}),
		retry: time.NewTimer(time.Hour),
	}
	w.retry.Stop()
	w.frame.pool = bufs
	w.replay = replay{budget: cfg.ReplayBytes, bufs: bufs}
	return w
}

// Connect makes one attempt to open the stream and send its first message.
// It must be called before Run (Start uses it so that a reachable agent is
// connected when NewExporter returns, as upstream).
func (w *Writer) Connect() error { return w.ensureStream() }

// Notify wakes the writer without blocking; producers call it when a batch's
// worth of items is queued.
func (w *Writer) Notify() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Flush asks the writer to send everything queued and waits until it has been
// handed to gRPC, the connection is down, or ctx ends.
func (w *Writer) Flush(ctx context.Context) error { return w.StartFlush(ctx).Wait(ctx) }

// Close sends everything queued, then half-closes the stream and waits for
// the agent to end it, so that nothing already handed to gRPC is cut off by
// the cancellation that follows. It returns when that is done or ctx ends;
// the caller then cancels the connection's context, which ends Run.
func (w *Writer) Close(ctx context.Context) error { return w.StartClose(ctx).Wait(ctx) }

// StartFlush hands a Flush to the writer goroutine without waiting for it,
// so that several writers can flush at once.
func (w *Writer) StartFlush(ctx context.Context) Request { return w.start(ctx, w.flush) }

// StartClose is Close without the wait.
func (w *Writer) StartClose(ctx context.Context) Request { return w.start(ctx, w.close) }

// Request is a Flush or Close handed to a writer goroutine.
type Request struct {
	w    *Writer
	done chan struct{}
	err  error // set when the request could not be handed over
}

func (w *Writer) start(ctx context.Context, requests chan chan struct{}) Request {
	r := Request{w: w, done: make(chan struct{})}
	select {
	case requests <- r.done:
	case <-w.done:
		r.err = ErrStopped
	case <-ctx.Done():
		r.err = ctx.Err()
	}
	return r
}

// Wait waits until the writer has carried out the request or ctx ends.
func (r Request) Wait(ctx context.Context) error {
	if r.err != nil {
		return r.err
	}
	select {
	case <-r.done:
		return nil
	case <-r.w.done:
		return ErrStopped
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SendRaw sends an already encoded message (a caller-built request) on the
// stream, in order with the batches. buf's ownership passes to the writer.
func (w *Writer) SendRaw(ctx context.Context, buf *[]byte) error {
	m := rawMsg{buf: buf, err: make(chan error, 1)}
	select {
	case w.raw <- m:
	case <-w.done:
		w.bufs.Put(buf)
		return ErrStopped
	case <-ctx.Done():
		w.bufs.Put(buf)
		return ctx.Err()
	}
	return <-m.err
}

// Done is closed when Run has returned.
func (w *Writer) Done() <-chan struct{} { return w.done }

// Run is the writer goroutine. It returns when the connection's context ends,
// after counting what was left unsent.
func (w *Writer) Run() {
	defer close(w.done)
	tick := time.NewTicker(w.cfg.Delay)
	defer tick.Stop()
	ctx := w.conn.Ctx
	for {
		var ended chan struct{}
		if w.recv != nil {
			ended = w.recv.done
		}
		select {
		case <-ctx.Done():
			w.closeStream()
			w.C.Discarded.Add(uint64(w.src.Discard()))
			// A Close that the agent confirmed cleared the replay; what is
			// left was sent on a stream that broke, or that Stop's deadline
			// cut before the agent had read it all.
			for _, f := range w.replay.frames {
				if f.sent {
					w.C.InDoubt.Add(uint64(f.items))
				} else { // never accepted by a stream
					w.C.Discarded.Add(uint64(f.items))
				}
			}
			w.replay.clear()
			w.C.Pending.Store(0)
			return
		case ch := <-w.flush:
			w.drain()
			close(ch)
			continue
		case ch := <-w.close:
			w.drain()
			w.halfClose()
			close(ch)
			continue
		case m := <-w.raw:
			m.err <- w.sendRaw(m.buf)
			continue
		case <-ended:
			w.broken(w.recv.err)
			continue
		case <-w.retry.C:
			// Reconnect even with nothing queued, so that the Node is sent
			// as soon as the agent is back.
			_ = w.ensureStream()
		case <-w.wake:
		case <-tick.C:
		}
		w.drain()
	}
}

// drain sends batches until what was queued when it began has been sent or
// the stream is down. The bound keeps Flush from chasing producers that never
// stop, and keeps the writer answering its other requests.
func (w *Writer) drain() {
	budget := w.items + w.src.Queued()
	for budget > 0 {
		if w.items == 0 {
			w.items, w.size = w.src.Fill()
			w.updatePending()
			if w.items == 0 {
				return
			}
		}
		if err := w.ensureStream(); err != nil {
			return
		}
		buf := w.bufs.Get(w.size + len(w.cfg.Suffix))
		w.src.Encode((*buf)[:w.size])
		copy((*buf)[w.size:], w.cfg.Suffix)
		n := len(*buf)
		kept := w.replay.keep(*buf, w.items) // before send: the buffer is gRPC's after
		if err := w.send(buf); err != nil {
			w.C.SendFailures.Add(1)
			if kept {
				// The copy in the replay goes out after the reconnect.
				w.src.Sent()
				w.items, w.size = 0, 0
				w.updatePending()
			}
			continue // reconnect (with backoff) and send it again
		}
		if kept {
			w.replay.sentLast()
		}
		w.C.Items.Add(uint64(w.items))
		w.C.Batches.Add(1)
		w.C.Bytes.Add(uint64(n))
		budget -= w.items
		w.src.Sent()
		w.items, w.size = 0, 0
		w.updatePending()
	}
}

// updatePending publishes how many items the writer holds that no stream
// has accepted yet: the batch being sent, and replayed batches whose first
// send failed.
func (w *Writer) updatePending() {
	n := w.items
	for _, f := range w.replay.frames {
		if !f.sent {
			n += f.items
		}
	}
	w.C.Pending.Store(int64(n))
}

func (w *Writer) sendRaw(buf *[]byte) error {
	if err := w.ensureStream(); err != nil {
		w.bufs.Put(buf)
		return fmt.Errorf("no active connection, last connection error: %w", err)
	}
	return w.send(buf)
}

// send hands buf to gRPC; ownership of buf ends here either way.
func (w *Writer) send(buf *[]byte) error {
	w.frame.buf = buf
	err := w.stream.SendMsg(&w.frame)
	w.frame.release()
	if err != nil {
		if err == io.EOF {
			// The stream ended; its status says why.
			<-w.recv.done
			if w.recv.err != nil && w.recv.err != io.EOF {
				err = w.recv.err
			}
		}
		w.broken(err)
	}
	return err
}

// ensureStream opens the stream and sends its first message unless a
// previous attempt failed less than one backoff delay ago.
func (w *Writer) ensureStream() error {
	if w.stream != nil {
		return nil
	}
	if !w.nextAttempt.IsZero() && time.Now().Before(w.nextAttempt) {
		return w.C.LastError()
	}
	s, cancel, err := w.conn.open(w.cfg.Method, exportDesc, grpc.ForceCodecV2(codec{}))
	if err == nil {
		w.stream, w.cancel = s, cancel
		w.recv = receive(s)
		buf := w.bufs.Get(len(w.cfg.Header))
		copy(*buf, w.cfg.Header)
		err = w.send(buf) // on failure send has already marked the stream broken
	} else {
		w.broken(err)
	}
	if err == nil && w.replay.pending {
		err = w.resend()
	}
	if err != nil {
		return err
	}
	if w.opened {
		w.C.Reconnects.Add(1)
	}
	w.opened = true
	w.bo.reset()
	w.nextAttempt = time.Time{}
	w.C.setErr(nil)
	return nil
}

// resend sends the retained frames again on a new stream, oldest first.
func (w *Writer) resend() error {
	for i := range w.replay.frames {
		f := &w.replay.frames[i]
		buf := w.bufs.Get(len(*f.buf))
		copy(*buf, *f.buf)
		if err := w.send(buf); err != nil {
			return err // still pending: the next stream tries again
		}
		if f.sent {
			w.C.Resent.Add(uint64(f.items))
		} else {
			// Its first send failed: this is its first delivery.
			f.sent = true
			w.C.Items.Add(uint64(f.items))
			w.C.Batches.Add(1)
			w.C.Bytes.Add(uint64(len(*f.buf)))
		}
	}
	w.replay.pending = false
	w.updatePending()
	return nil
}

// broken forgets the stream and schedules the next attempt. What was sent on
// the stream may not have been read: the replay sends it again.
func (w *Writer) broken(err error) {
	if w.stream != nil && len(w.replay.frames) > 0 {
		w.replay.pending = true
	}
	w.closeStream()
	w.C.setErr(err)
	d := w.bo.next(w.conn.MaxBackoff)
	w.nextAttempt = time.Now().Add(d)
	w.retry.Reset(d)
}

// halfClose ends the sending side and waits until the agent has read
// everything and ended the stream (or the connection's context ends).
func (w *Writer) halfClose() {
	if w.stream == nil {
		return
	}
	if err := w.stream.CloseSend(); err == nil {
		select {
		case <-w.recv.done:
			if w.recv.err == io.EOF {
				// The agent read the stream to its end: nothing to resend.
				w.replay.clear()
			}
		case <-w.conn.Ctx.Done():
		}
	}
	w.closeStream()
}

func (w *Writer) closeStream() {
	if w.cancel != nil {
		w.cancel()
	}
	w.stream, w.cancel, w.recv = nil, nil, nil
}

// emptyMsg receives the agent's replies, which the codec ignores.
type emptyMsg struct{}
