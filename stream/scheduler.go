package stream

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/mem"

	"github.com/zerocensus/ocagent/pool"
)

// ErrStopped is returned for work submitted after Stop.
var ErrStopped = errors.New("stopped")

// Scheduler is the only goroutine that converts, encodes and sends for its
// pipeline. Every Config.WakeEvery pushes, every delay, on Flush and on Close
// it sends what is queued, the last batch partial if need be (if every call
// is in flight, it owes that send and pays it on the transport's next
// events). Every Config.ConvertEvery pushes, and on the transport's events
// otherwise, it converts what is queued and sends only full batches.
type Scheduler struct {
	src  Source
	cfg  Config
	bufs *pool.Buffers
	c    *Counters
	t    Transport                 // set by Start before run; used by the scheduler goroutine
	tp   atomic.Pointer[Transport] // the same, for other goroutines (nil before Start)

	// handing counts the items between Take and the transport's Send: set
	// before Take stops counting them as held, cleared after Send counts
	// them, so that Stats, reading in the items' direction of travel, sees
	// every item at least once.
	handing atomic.Int64

	wake  chan struct{}
	conv  chan struct{}
	owed  bool // a wake or the delay asked to send what is queued, and the transport was busy
	flush chan request
	close chan request
	raw   chan rawMsg
	done  chan struct{}
}

type request struct {
	ctx  context.Context
	done chan struct{}
}

type rawMsg struct {
	buf   *[]byte
	items int
	err   chan error
}

func newScheduler(src Source, cfg Config, bufs *pool.Buffers, c *Counters) *Scheduler {
	return &Scheduler{
		src: src, cfg: cfg, bufs: bufs, c: c,
		wake:  make(chan struct{}, 1),
		conv:  make(chan struct{}, 1),
		flush: make(chan request),
		close: make(chan request),
		raw:   make(chan rawMsg),
		done:  make(chan struct{}),
	}
}

func (s *Scheduler) transport() Transport {
	if p := s.tp.Load(); p != nil {
		return *p
	}
	return nil
}

// Notify wakes the scheduler, without blocking, to send what is queued.
func (s *Scheduler) Notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// NotifyConvert wakes the scheduler, without blocking, to convert what is
// queued and send only full batches.
func (s *Scheduler) NotifyConvert() {
	select {
	case s.conv <- struct{}{}:
	default:
	}
}

// Request is a Flush or Close handed to a scheduler.
type Request struct {
	s    *Scheduler
	done chan struct{}
	err  error // set when the request could not be handed over
}

func (s *Scheduler) start(ctx context.Context, ch chan request) Request {
	r := Request{s: s, done: make(chan struct{})}
	if s.transport() == nil {
		r.err = ErrStopped // never started
		return r
	}
	select {
	case ch <- request{ctx: ctx, done: r.done}:
	case <-s.done:
		r.err = ErrStopped
	case <-ctx.Done():
		r.err = ctx.Err()
	}
	return r
}

// Wait waits until the scheduler has carried out the request or ctx ends.
func (r Request) Wait(ctx context.Context) error {
	if r.err != nil {
		return r.err
	}
	select {
	case <-r.done:
		return nil
	case <-r.s.done:
		return ErrStopped
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Scheduler) sendRaw(ctx context.Context, buf *[]byte, items int) error {
	m := rawMsg{buf: buf, items: items, err: make(chan error, 1)}
	if s.transport() == nil {
		s.bufs.Put(buf)
		return ErrStopped
	}
	select {
	case s.raw <- m:
	case <-s.done:
		s.bufs.Put(buf)
		return ErrStopped
	case <-ctx.Done():
		s.bufs.Put(buf)
		return ctx.Err()
	}
	return <-m.err
}

func (s *Scheduler) run(ctx context.Context) {
	defer close(s.done)
	t := s.t
	tick := time.NewTicker(s.cfg.Delay)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			t.Abort()
			s.c.DroppedAtStop(s.src.Discard())
			return
		case r := <-s.flush:
			s.drainAll(ctx, r.ctx)
			s.settle(ctx, r.ctx)
			if c, ok := t.(Confirmer); ok {
				c.Confirm(r.ctx)
			}
			close(r.done)
			continue
		case r := <-s.close:
			s.drainAll(ctx, r.ctx)
			t.Close(r.ctx)
			close(r.done)
			continue
		case m := <-s.raw:
			m.err <- t.SendRaw(mem.NewBuffer(m.buf, s.bufs), m.items)
			continue
		case <-t.Events():
			t.Service()
		case <-s.conv:
		case <-s.wake:
			s.owed = true
		case <-tick.C:
			s.owed = true
		}
		if busy, _ := s.drain(s.owed); !busy {
			s.owed = false
		}
	}
}

// drain converts what is queued and sends full batches until what was
// queued when it began has been sent or the transport cannot take more now;
// with partial it also sends a last partial batch (a batch's worth of
// pushes, the delay, Flush, Close).
// It converts even while every call is in flight (busy): the items leave
// the ring (and the caller's memory is released) meanwhile. While the agent
// is unreachable it leaves them in the ring. The bound
// keeps Flush from chasing producers that never stop, and keeps the
// scheduler answering its other requests. It reports whether it stopped
// because the transport was busy.
func (s *Scheduler) drain(partial bool) (busy bool, left int) {
	budget := s.src.Held() + s.src.Queued()
	for budget > 0 {
		err := s.t.Ready()
		size := 0
		if err == nil || err == ErrBusy {
			// Busy: convert anyway. Unreachable: leave the items in the
			// ring, where the drop policy applies to new ones.
			_, size = s.src.Fill()
		}
		if err != nil {
			return err == ErrBusy, budget
		}
		if size == 0 || !partial && !s.src.Full() {
			return false, 0
		}
		s.handing.Store(int64(s.src.Held()))
		buf, at, n := s.src.Take()
		start, end := s.cfg.Envelope.Wrap(*buf, at, size)
		*buf = (*buf)[:end]
		req := mem.NewBuffer(buf, s.bufs)
		if start > 0 {
			// The head took less than the room kept for it: the request
			// is the rest of the buffer, which goes back to the pool when
			// the transport frees the request.
			var gap mem.Buffer
			gap, req = mem.SplitUnsafe(req, start)
			gap.Free()
		}
		s.t.Send(req, n)
		s.handing.Store(0)
		budget -= n.Items
	}
	return false, 0
}

// drainAll is drain for Flush and Close: while the transport is only busy
// (calls in flight), it waits for it and goes on, until what was queued has
// been handed over, the agent is unreachable, or ctx ends.
func (s *Scheduler) drainAll(runCtx, ctx context.Context) {
	for {
		busy, left := s.drain(true)
		if !busy || left == 0 {
			return
		}
		if !s.await(runCtx, ctx) {
			return
		}
	}
}

// settle waits until the transport has an outcome for everything sent, or
// ctx ends.
func (s *Scheduler) settle(runCtx, ctx context.Context) {
	for !s.t.Settled() {
		if !s.await(runCtx, ctx) {
			return
		}
	}
}

// await services the transport's next event; false when a context ended.
func (s *Scheduler) await(runCtx, ctx context.Context) bool {
	select {
	case <-s.t.Events():
		s.t.Service()
		return true
	case <-ctx.Done():
	case <-runCtx.Done():
	}
	return false
}
