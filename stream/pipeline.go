package stream

// The pipeline moves one signal (spans, or views) from the exporter's
// callers to a transport: a bounded ring that callers push into without
// blocking or allocating, a batch that converts what the ring holds into
// reused messages, and one scheduler goroutine that decides when a batch is
// encoded (full, every delay, on Flush and Stop), wraps it in its protocol's
// envelope and hands it to the transport.
//
// Data flows one way:
// Export -> ring -> batch (convert, size) -> envelope + encode -> transport.

import (
	"context"
	"errors"
	"math/bits"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/mem"

	"github.com/zerocensus/ocagent/pool"
)

// Source is the batching half of a pipeline (Batch implements it).
// Only the scheduler goroutine calls Fill, Full, Take and Discard; Held and
// Queued are safe from any goroutine.
type Source interface {
	Fill() (items, size int)
	Full() bool
	// Take hands over the batch Fill made: a pool buffer holding the body
	// at offset at, with the envelope's room free before and after it, and
	// the items and data points in it.
	Take() (buf *[]byte, at int, n Count)
	Discard() int
	Held() int
	Queued() int
}

// ErrBusy is what a transport's Ready returns while it cannot take another
// request yet but will soon (every call in flight): the scheduler waits for
// the transport's next event. Any other error means the agent is not
// reachable now.
var ErrBusy = errors.New("transport busy")

// Transport sends a pipeline's encoded requests to the agent. Only the
// scheduler goroutine calls its methods, except Pending and Events.
type Transport interface {
	// Ready returns nil when Send may be called now. A transport that is not
	// ready may try to become so (open a stream once its backoff has
	// passed); it never waits longer than one attempt.
	Ready() error
	// Send takes over one encoded request carrying n, with its one
	// reference: from here on the transport sends it, retries it, counts it
	// and frees it.
	Send(buf mem.Buffer, n Count)
	// SendRaw sends a caller-built request. It reports an error when the
	// request could not be handed over (it is then dropped).
	SendRaw(buf mem.Buffer, items int) error
	// Events fires when the transport needs Service: a stream ended, a
	// retry is due, a call completed.
	Events() <-chan struct{}
	// Service handles whatever Events announced.
	Service()
	// Pending is what the transport holds that no agent has accepted yet,
	// in items and data points. Safe from any goroutine.
	Pending() Count
	// Settled reports that no request waits for an outcome (OTLP: no call in
	// flight). Flush waits for it.
	Settled() bool
	// Close ends gracefully after the last Send: the OpenCensus stream
	// half-closes and waits for the agent to read it to its end; OTLP waits
	// for the calls in flight. It returns when done or when ctx ends.
	Close(ctx context.Context)
	// Abort ends at once, counting what is left as in doubt (sent, not
	// confirmed) or dropped at stop (never sent), and frees it.
	Abort()
}

// A Confirmer is a Transport that can make the agent confirm what it was
// sent, which the protocol otherwise does not (the OpenCensus stream: the
// agent ending a stream we half-closed has read all of it). Flush calls
// Confirm after everything queued was handed over; it returns when the
// agent confirmed, when it cannot, or when ctx ends.
type Confirmer interface {
	Confirm(ctx context.Context)
}

// Config describes one pipeline.
type Config struct {
	Delay        time.Duration // the longest an item waits in the ring
	WakeEvery    int           // producers wake the scheduler to send what is queued every this many pushes (a batch's worth)
	ConvertEvery int           // and, when > 0 (rounded down to a power of two), to convert it every this many (items leave the ring early)
	BlockTimeout time.Duration // > 0: a push into a full ring waits up to this long
	Envelope     Envelope      // the protocol's request around a batch body
}

// Pipeline is one signal's path from Export to a transport.
type Pipeline[T any] struct {
	ring  *Ring[T]
	src   Source
	cfg   Config
	bufs  *pool.Buffers
	sched *Scheduler
	c     Counters

	convMask uint64 // pos&convMask == 0: wake to convert (all ones: never)

	running           atomic.Bool
	droppedFull       atomic.Uint64
	droppedNotRunning atomic.Uint64
}

// New returns a pipeline over ring r and its batch src. It sends nothing
// until Start.
func New[T any](r *Ring[T], src Source, bufs *pool.Buffers, cfg Config) *Pipeline[T] {
	p := &Pipeline[T]{ring: r, src: src, cfg: cfg, bufs: bufs, convMask: ^uint64(0)}
	if cfg.ConvertEvery > 0 {
		p.convMask = uint64(1)<<(bits.Len(uint(cfg.ConvertEvery))-1) - 1
	}
	p.sched = newScheduler(src, cfg, bufs, &p.c)
	return p
}

// Counters are the transport's counters for this pipeline: the exporter
// builds the transport at Start with them.
func (p *Pipeline[T]) Counters() *Counters { return &p.c }

// Start runs the scheduler with transport t until ctx ends. connected, when
// not nil, receives one value after the transport's first attempt to become
// ready.
func (p *Pipeline[T]) Start(ctx context.Context, t Transport, connected chan<- struct{}) {
	p.sched.t = t
	p.sched.tp.Store(&t)
	p.running.Store(true)
	go func() {
		_ = t.Ready() // a reachable agent is connected before the first Export
		if connected != nil {
			connected <- struct{}{}
		}
		p.sched.run(ctx)
	}()
}

// Ring is the pipeline's ring (tests and benchmarks empty it by hand).
func (p *Pipeline[T]) Ring() *Ring[T] { return p.ring }

// Stopped marks the pipeline as no longer taking items (Stop has begun).
func (p *Pipeline[T]) Stopped() { p.running.Store(false) }

// Export queues v without blocking on the network and without allocating.
// When the ring is full v is dropped and counted, or, with a block timeout,
// waits for room up to that long. Before Start and after Stop it is a
// counted no-op.
func (p *Pipeline[T]) Export(v T) { p.Offer(v) }

// Offer is Export, reporting whether v was queued (false: dropped and
// counted).
func (p *Pipeline[T]) Offer(v T) bool {
	if !p.running.Load() {
		p.droppedNotRunning.Add(1)
		return false
	}
	pos := p.ring.Push(v)
	if pos == 0 {
		if pos = p.pushSlow(v); pos == 0 {
			return false
		}
	}
	if pos%uint64(p.cfg.WakeEvery) == 0 {
		p.sched.Notify()
	} else if pos&p.convMask == 0 {
		p.sched.NotifyConvert()
	}
	return true
}

// pushSlow handles a full ring: drop at once, or wait for room up to the
// block timeout, polling with a growing sleep.
func (p *Pipeline[T]) pushSlow(v T) uint64 {
	p.sched.Notify()
	if p.cfg.BlockTimeout > 0 {
		deadline := time.Now().Add(p.cfg.BlockTimeout)
		sleep := 10 * time.Microsecond
		for time.Now().Before(deadline) && p.running.Load() {
			time.Sleep(sleep)
			if pos := p.ring.Push(v); pos != 0 {
				return pos
			}
			sleep = min(2*sleep, time.Millisecond)
		}
	}
	p.droppedFull.Add(1)
	return 0
}

// Flush starts a flush: the scheduler sends everything queued when it takes
// the request, and waits for the transport to settle; Wait on the result.
func (p *Pipeline[T]) Flush(ctx context.Context) Request { return p.sched.start(ctx, p.sched.flush) }

// Close starts the graceful end: everything queued is sent, then the
// transport is closed; Wait on the result, then cancel the context given to
// Start and call Wait.
func (p *Pipeline[T]) Close(ctx context.Context) Request { return p.sched.start(ctx, p.sched.close) }

// Wait returns when the scheduler has returned (after its context ended),
// and counts what raced into the ring after it as dropped at stop.
func (p *Pipeline[T]) Wait() {
	if p.sched.transport() == nil {
		return // never started
	}
	<-p.sched.done
	p.c.DroppedAtStop(p.src.Discard())
}

// SendRaw sends a caller-built, encoded request in order with the batches.
// Ownership of buf passes to the pipeline.
func (p *Pipeline[T]) SendRaw(ctx context.Context, buf *[]byte, items int) error {
	return p.sched.sendRaw(ctx, buf, items)
}

// Stats is one pipeline's counters.
type Stats struct {
	Snapshot
	Queued            int // in the ring, the batch, or held by the transport (an item moving meanwhile may count twice, never zero times)
	InFlight          int // of Queued, held by the transport: sent or being sent, no outcome yet
	InFlightPoints    int // the data points of InFlight
	DroppedFull       uint64
	DroppedNotRunning uint64
}

// Stats reads the pipeline's counters.
func (p *Pipeline[T]) Stats() Stats {
	// Read in the items' direction of travel (ring, batch, hand-over,
	// transport, outcome), each step counting an item in its next place
	// before leaving the last: an item moving meanwhile is then seen once,
	// or twice for a moment, never not at all.
	var s Stats
	s.Queued = p.ring.Len()
	s.Queued += p.src.Held()
	s.Queued += int(p.sched.handing.Load())
	if t := p.sched.transport(); t != nil {
		p := t.Pending()
		s.InFlight, s.InFlightPoints = p.Items, p.Points
		s.Queued += s.InFlight
	}
	s.Snapshot = p.c.Snapshot()
	s.DroppedFull = p.droppedFull.Load()
	s.DroppedNotRunning = p.droppedNotRunning.Load()
	return s
}
