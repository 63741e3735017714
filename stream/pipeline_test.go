package stream

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/zerocensus/ocagent/internal/testwait"
	"github.com/zerocensus/ocagent/pool"
)

// idEncoder encodes an item as its id, 4 bytes little-endian, padded to
// size, in a buffer it reuses.
func idEncoder(size int) Encoder[uint32] {
	buf := make([]byte, size)
	return EncoderFunc[uint32](func(id uint32, max int) ([]byte, int, error) {
		if size > max {
			return nil, size, nil
		}
		binary.LittleEndian.PutUint32(buf, id)
		clear(buf[4:])
		return buf, size, nil
	})
}

// fakeTransport stands in for gRPC: it records the ids of every request
// handed to it (decoding the bytes), and can be down, busy (calls in
// flight that complete when told), or fine. Like gRPC, it takes a reference
// to each buffer for the send and frees it after.
type fakeTransport struct {
	c      *Counters
	events chan struct{}

	mu       sync.Mutex
	down     bool
	maxCalls int // 0: no limit
	inFlight []call
	ids      []uint32
	suffix   int // bytes the envelope adds after the body
}

type call struct {
	buf   mem.Buffer
	items int
}

var errDown = errors.New("down")

func newFake(c *Counters, suffix int) *fakeTransport {
	return &fakeTransport{c: c, events: make(chan struct{}, 1), suffix: suffix}
}

func (f *fakeTransport) signal() {
	select {
	case f.events <- struct{}{}:
	default:
	}
}

func (f *fakeTransport) Ready() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.down:
		return errDown
	case f.maxCalls > 0 && len(f.inFlight) >= f.maxCalls:
		return ErrBusy
	}
	return nil
}

func (f *fakeTransport) record(b []byte) {
	body := b[:len(b)-f.suffix]
	for len(body) > 0 {
		_, _, n := protowire.ConsumeTag(body)
		v, m := protowire.ConsumeBytes(body[n:])
		f.ids = append(f.ids, binary.LittleEndian.Uint32(v))
		body = body[n+m:]
	}
}

func (f *fakeTransport) Send(buf mem.Buffer, n Count) {
	items := n.Items
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.maxCalls > 0 {
		f.inFlight = append(f.inFlight, call{buf, items})
		return
	}
	f.record(buf.ReadOnlyData())
	f.c.Exported(Count{Items: items}, buf.Len())
	buf.Free()
}

func (f *fakeTransport) SendRaw(buf mem.Buffer, items int) error {
	buf.Free()
	return nil
}

// complete finishes every call in flight.
func (f *fakeTransport) complete() {
	f.mu.Lock()
	f.completeLocked()
	f.mu.Unlock()
	f.signal()
}

func (f *fakeTransport) completeLocked() {
	for _, c := range f.inFlight {
		f.record(c.buf.ReadOnlyData())
		f.c.Exported(Count{Items: c.items}, c.buf.Len())
		c.buf.Free()
	}
	f.inFlight = f.inFlight[:0]
}

// setMaxCalls finishes every call in flight and sets the limit on calls in
// flight, under one lock: a send between the two, with the limit lifted,
// would record its ids before those of the calls still in flight (the
// scheduler does send in between on a busy machine).
func (f *fakeTransport) setMaxCalls(n int) {
	f.mu.Lock()
	f.completeLocked()
	f.maxCalls = n
	f.mu.Unlock()
	f.signal()
}

func (f *fakeTransport) Events() <-chan struct{} { return f.events }
func (f *fakeTransport) Service()                {}
func (f *fakeTransport) Pending() Count {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.inFlight {
		n += c.items
	}
	return Count{Items: n}
}
func (f *fakeTransport) Settled() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.inFlight) == 0
}
func (f *fakeTransport) Close(context.Context) {}
func (f *fakeTransport) Abort() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.inFlight {
		f.c.InDoubt(c.items)
		f.c.Exported(Count{Items: c.items}, 0)
		c.buf.Free()
	}
	f.inFlight = nil
}

func (f *fakeTransport) delivered() []uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]uint32(nil), f.ids...)
}

type testPipe struct {
	*Pipeline[uint32]
	fake   *fakeTransport
	cancel context.CancelFunc
}

// newTestPipe makes a pipeline of items of size bytes each, batches of
// maxItems and maxBytes, and a fake transport.
func newTestPipe(t testing.TB, size, ringCap, maxItems, maxBytes int) *testPipe {
	return newTestPipeConverting(t, size, ringCap, maxItems, maxBytes, 0)
}

// newTestPipeConverting is newTestPipe with producers also waking the
// scheduler to convert every convertEvery pushes.
func newTestPipeConverting(t testing.TB, size, ringCap, maxItems, maxBytes, convertEvery int) *testPipe {
	r := NewRing[uint32](ringCap)
	suffix := []byte{0x1a, 0x00} // an empty field 3, as an OpenCensus Resource
	env, bufs := NewOpenCensusEnvelope(suffix), pool.NewBuffers()
	head, tail := env.Room(maxBytes)
	b := NewBatch(r, idEncoder(size), maxItems, maxBytes, 0, Room{Bufs: bufs, Head: head, Tail: tail})
	p := New(r, b, bufs, Config{Delay: time.Hour, WakeEvery: maxItems, ConvertEvery: convertEvery, Envelope: env})
	fake := newFake(p.Counters(), len(suffix))
	ctx, cancel := context.WithCancel(context.Background())
	p.Start(ctx, fake, nil)
	tp := &testPipe{Pipeline: p, fake: fake, cancel: cancel}
	t.Cleanup(tp.stop)
	return tp
}

func (tp *testPipe) stop() {
	tp.Stopped()
	tp.cancel()
	tp.Wait()
}

// flush flushes and waits for the outcome (testwait.Cap: a hang guard).
func (tp *testPipe) flush(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testwait.Cap)
	defer cancel()
	if err := tp.Flush(ctx).Wait(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestDeliveryExactlyOnce: concurrent producers, batches cut by count and by
// bytes (every third batch carries an item), Flush: every id arrives once, in
// each producer's order.
func TestDeliveryExactlyOnce(t *testing.T) {
	const producers, each = 4, 5000
	tp := newTestPipe(t, 10, 1<<15, 7, 50)
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				tp.Export(uint32(p*each + i))
			}
		}()
	}
	wg.Wait()
	tp.flush(t)
	ids := tp.fake.delivered()
	seen := make([]int, producers*each)
	last := make([]int, producers)
	for p := range last {
		last[p] = -1
	}
	for _, id := range ids {
		seen[id]++
		p, i := int(id)/each, int(id)%each
		if i <= last[p] {
			t.Fatalf("producer %d: item %d after %d", p, i, last[p])
		}
		last[p] = i
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("id %d delivered %d times", id, n)
		}
	}
	st := tp.Stats()
	if st.Exported != producers*each || st.Queued != 0 || st.DroppedFull != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestFlushWaitsForCallsInFlight: with a transport whose calls are in
// flight (OTLP), Flush hands everything over, waiting for room, and returns
// only when every call has an outcome.
func TestFlushWaitsForCallsInFlight(t *testing.T) {
	tp := newTestPipe(t, 10, 1024, 10, 1<<20)
	tp.fake.mu.Lock()
	tp.fake.maxCalls = 2
	tp.fake.mu.Unlock()
	for i := range 95 {
		tp.Export(uint32(i))
	}
	done := make(chan struct{})
	go func() { tp.flush(t); close(done) }()
	for {
		select {
		case <-done:
			if got := len(tp.fake.delivered()); got != 95 {
				t.Fatalf("Flush returned with %d of 95 delivered", got)
			}
			return
		default:
		}
		tp.fake.complete()
		time.Sleep(time.Millisecond)
	}
}

// TestDownTransportKeepsItemsAndCountsThemAtStop: while the transport is
// down nothing is lost from the ring; Stop counts what is left as dropped
// at stop, and the counts add up.
func TestDownTransportKeepsItemsAndCountsThemAtStop(t *testing.T) {
	tp := newTestPipe(t, 10, 64, 8, 1<<20)
	tp.fake.mu.Lock()
	tp.fake.down = true
	tp.fake.mu.Unlock()
	for i := range 100 {
		tp.Export(uint32(i))
	}
	tp.flush(t)
	st := tp.Stats()
	if st.Exported != 0 || st.Queued != 64 || st.DroppedFull != 36 {
		t.Fatalf("while down: %+v", st)
	}
	tp.stop()
	st = tp.Stats()
	if st.DroppedAtStop != 64 || st.Queued != 0 {
		t.Fatalf("after stop: %+v", st)
	}
}

// until polls cond (no timing is asserted: testwait's cap only turns a hang
// into a failure, which shows the pipeline's stats).
func until(t *testing.T, tp *testPipe, what string, cond func() bool) {
	t.Helper()
	testwait.For(t, what, cond, func() any { return tp.Stats() })
}

// TestConvertWakesSendOnlyFullBatches: producers wake the scheduler to
// convert more often than once a batch, so that items leave the ring (and
// their memory is released) early; such a wake converts what is queued, even
// while every call is in flight, but sends only full batches. A batch's
// worth of pushes sends what is queued.
func TestConvertWakesSendOnlyFullBatches(t *testing.T) {
	tp := newTestPipeConverting(t, 10, 1024, 8, 1<<20, 2)
	held := func() int { return tp.src.Held() }
	for i := range 6 {
		tp.Export(uint32(i))
	}
	until(t, tp, "6 items converted", func() bool { return held() == 6 })
	if got := tp.fake.delivered(); len(got) != 0 {
		t.Fatalf("a partial batch was sent on a convert wake: %v", got)
	}
	for i := 6; i < 8; i++ {
		tp.Export(uint32(i))
	}
	until(t, tp, "the full batch sent", func() bool { return len(tp.fake.delivered()) == 8 })
	if st := tp.Stats(); st.Batches != 1 {
		t.Fatalf("8 items in %d batches, want 1", st.Batches)
	}

	// Every call in flight: convert wakes still convert, up to a batch, and
	// the send the batch's worth of pushes asked for is paid once a call ends.
	tp.fake.mu.Lock()
	tp.fake.maxCalls = 1
	tp.fake.mu.Unlock()
	for i := 8; i < 16; i++ {
		tp.Export(uint32(i))
	}
	until(t, tp, "a call in flight", func() bool { return tp.fake.Pending().Items == 8 })
	for i := 16; i < 24; i++ {
		tp.Export(uint32(i))
	}
	until(t, tp, "the next batch converted while busy", func() bool { return held() == 8 && tp.ring.Len() == 0 })
	tp.fake.complete()
	until(t, tp, "the converted batch sent", func() bool { return tp.fake.Pending().Items == 8 })
	tp.fake.setMaxCalls(0)
	for i := 24; i < 27; i++ {
		tp.Export(uint32(i))
	}
	tp.flush(t)
	got := tp.fake.delivered()
	if len(got) != 27 {
		t.Fatalf("delivered %d of 27", len(got))
	}
	for i, id := range got {
		if id != uint32(i) {
			t.Fatalf("delivered out of order: %v", got)
		}
	}
}

// TestBatchWorthSendsPartialRemainder: when the byte budget cuts a batch's
// worth of items into smaller batches, the wake sends the partial remainder
// too, without waiting for the delay (an ExportView benchmark waiting for
// its views hung on that once).
func TestBatchWorthSendsPartialRemainder(t *testing.T) {
	// Items of 10 bytes (12 encoded): 3 fit in 40 bytes.
	tp := newTestPipeConverting(t, 10, 1024, 8, 40, 2)
	for i := range 8 {
		tp.Export(uint32(i))
	}
	until(t, tp, "all 8 sent without a flush", func() bool { return len(tp.fake.delivered()) == 8 })
	if st := tp.Stats(); st.Batches != 3 {
		t.Fatalf("8 items in %d batches, want 3 (3+3+2)", st.Batches)
	}
}

// TestPipelineModel drives a pipeline with seeded random sequences of
// exports, flushes, transport outages and calls in flight, and checks
// against the reference (every id exported once, in order): after the final
// flush every id accepted by the ring arrived exactly once, and at every
// step exported + queued + dropped equals what was exported.
func TestPipelineModel(t *testing.T) {
	seqs := 300
	if testing.Short() {
		seqs = 30
	}
	for seed := range uint64(seqs) {
		rnd := rand.New(rand.NewPCG(seed, 7))
		ringCap, maxItems := 1<<(1+rnd.IntN(7)), 1+rnd.IntN(20)
		convertEvery := rnd.IntN(maxItems + 1) // 0: no convert wakes
		tp := newTestPipeConverting(t, 4+rnd.IntN(40), ringCap, maxItems, FieldSize(44)+rnd.IntN(200), convertEvery)
		next := uint32(0)
		for range 50 {
			switch rnd.IntN(6) {
			case 0, 1:
				for range rnd.IntN(40) {
					tp.Export(next)
					next++
				}
			case 2:
				tp.fake.mu.Lock()
				tp.fake.down = !tp.fake.down
				tp.fake.mu.Unlock()
				tp.sched.Notify()
			case 3:
				tp.fake.setMaxCalls(rnd.IntN(3))
			case 4:
				tp.fake.complete()
			case 5:
				tp.fake.mu.Lock()
				down := tp.fake.down
				tp.fake.mu.Unlock()
				if !down && tp.fake.maxCalls == 0 {
					tp.flush(t)
				}
			}
			st := tp.Stats()
			if got := st.Exported + uint64(st.Queued) + st.DroppedFull; got != uint64(next) {
				// Queued is read while the scheduler works: allow it to be
				// momentarily off, but never for long.
				waitCounts(t, tp, next)
			}
		}
		tp.fake.mu.Lock()
		tp.fake.down = false
		tp.fake.mu.Unlock()
		tp.fake.setMaxCalls(0)
		tp.flush(t)
		// The push at each multiple of a batch's worth sends everything
		// queued, without a flush or the delay (an hour here), however the
		// byte budget cuts it: push until the next multiple. (Pushes after
		// that one wait for the next, as they always did.) The ring is empty
		// after the flush, so none of these is dropped and every successful
		// push so far is one ring position.
		if ringCap >= maxItems {
			pushed := next - uint32(tp.Stats().DroppedFull)
			for range maxItems - int(pushed)%maxItems {
				tp.Export(next)
				next++
			}
			until(t, tp, fmt.Sprintf("seed %d: a batch's worth of pushes sent", seed), func() bool {
				st := tp.Stats()
				return st.Exported+st.DroppedFull == uint64(next)
			})
		}
		ids := tp.fake.delivered()
		dropped := tp.Stats().DroppedFull
		if uint64(len(ids))+dropped != uint64(next) {
			t.Fatalf("seed %d: %d delivered + %d dropped != %d exported", seed, len(ids), dropped, next)
		}
		seen := map[uint32]bool{}
		prev := -1
		for _, id := range ids {
			if seen[id] || int(id) <= prev {
				t.Fatalf("seed %d: id %d out of order or twice", seed, id)
			}
			seen[id] = true
			prev = int(id)
		}
		tp.stop()
	}
}

func waitCounts(t *testing.T, tp *testPipe, want uint32) {
	t.Helper()
	until(t, tp, fmt.Sprintf("exported + queued + dropped = %d", want), func() bool {
		st := tp.Stats()
		return st.Exported+uint64(st.Queued)+st.DroppedFull == uint64(want)
	})
}

// TestSmallBatchAllocs: a low-traffic exporter sends one small batch at a
// time; on our side (ring, batch, envelope, encode, the buffer through
// gRPC's mem.Buffer and back to the pool) that costs no allocation. The
// 1 KiB buffer class gRPC never returned used to cost one per frame.
func TestSmallBatchAllocs(t *testing.T) {
	tp := newTestPipe(t, 10, 64, 1, 1<<20)
	id := uint32(0)
	one := func() {
		tp.Export(id)
		id++
		for tp.Stats().Exported < uint64(id) {
			time.Sleep(10 * time.Microsecond)
		}
	}
	one()
	if n := testing.AllocsPerRun(200, one); n != 0 {
		t.Errorf("%v allocs per small batch", n)
	}
}

// BenchmarkSmallBatch is TestSmallBatchAllocs as a benchmark: one item per
// batch, ours alone (the transport is a fake that frees like gRPC).
func BenchmarkSmallBatch(b *testing.B) {
	tp := newTestPipe(b, 200, 64, 1, 1<<20)
	var id atomic.Uint32
	b.ReportAllocs()
	for b.Loop() {
		n := id.Add(1)
		tp.Export(n)
		for tp.Stats().Exported < uint64(n) {
			time.Sleep(time.Microsecond)
		}
	}
}

// TestStatsNeverMissAnItem: Stats read while items travel (a producer, the
// scheduler converting, carrying and handing batches over, calls completing)
// counts every pushed item somewhere, at every read: exported + queued +
// dropped is never below what was pushed before the read began.
func TestStatsNeverMissAnItem(t *testing.T) {
	for _, calls := range []int{0, 2} {
		t.Run(fmt.Sprintf("maxCalls=%d", calls), func(t *testing.T) {
			n := 50_000
			if raceEnabled {
				n = 5_000
			}
			tp := newTestPipeConverting(t, 10, 1<<12, 7, 50, 3)
			tp.fake.setMaxCalls(calls)
			var pushed atomic.Int64
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(2)
			go func() { // the agent answering
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if calls > 0 {
						tp.fake.complete()
					}
					runtime.Gosched()
				}
			}()
			go func() {
				defer wg.Done()
				for i := range n {
					for tp.ring.Len() > 1<<11 { // let them travel rather than drop
						select {
						case <-stop:
							return
						default:
						}
						runtime.Gosched()
					}
					tp.Export(uint32(i))
					pushed.Add(1)
				}
			}()
			reads, done := 0, false
			for !done {
				p := pushed.Load()
				done = p == int64(n)
				st := tp.Stats()
				if got := int64(st.Exported) + int64(st.Queued) + int64(st.DroppedFull); got < p {
					close(stop)
					wg.Wait()
					t.Fatalf("read %d: %d pushed, Stats count %d (exported %d, queued %d, in flight %d, dropped %d)",
						reads, p, got, st.Exported, st.Queued, st.InFlight, st.DroppedFull)
				}
				reads++
			}
			close(stop)
			wg.Wait()
			// End to end by id: every item delivered once, and Stats at rest
			// exact.
			tp.fake.setMaxCalls(0)
			tp.flush(t)
			seen := make([]int, n)
			for _, id := range tp.fake.delivered() {
				seen[id]++
			}
			for id, c := range seen {
				if c != 1 {
					t.Fatalf("id %d delivered %d times", id, c)
				}
			}
			if st := tp.Stats(); st.DroppedFull != 0 || st.Exported != uint64(n) || st.Queued != 0 {
				t.Fatalf("at rest after %d items: %+v", n, st)
			}
			t.Logf("%d reads while %d items travelled", reads, n)
		})
	}
}
