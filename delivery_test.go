package ocagent

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opencensus.io/trace"
	"google.golang.org/grpc"

	"github.com/zerocensus/ocagent/internal/mockagent"
)

// The tests in this file count every span end to end by its id, at the
// agent, rather than trusting the exporter's own counters: the reproductions
// of the delivery-integrity issues (a batch cut by its byte budget lost one
// span and sent another twice; reconnection lagged an agent's return by
// gRPC's backoff; carried spans were invisible to Stats; an agent ending a
// stream early looked like one that read it all).

// sizedSpan is idSpan with a string attribute of pad bytes.
func sizedSpan(i, pad int) *trace.SpanData {
	sd := idSpan(i)
	sd.Attributes = map[string]any{"pad": strings.Repeat("x", pad)}
	return sd
}

// typicalPad makes sizedSpan about as large on the wire as a typical span
// (testspans.Typical: about 500 bytes).
const typicalPad = 430

// paced exports spans ids [from, to) at rate spans/s, as a service does,
// except that it holds back while the span ring is three quarters full.
// An outage then holds at most that many spans by count, whatever the
// machine's speed: a busy machine drains and reconnects later than the rate
// assumes, and "the outage fits the ring" must not be a timing (issue 21).
// It returns how long it was held back (logged; none on an idle machine).
func paced(e *Exporter, from, to int, rate float64, pad int) (held time.Duration) {
	r := e.spans.Ring()
	limit := r.Cap() * 3 / 4
	start := time.Now()
	for i := from; i < to; {
		target := from + int(rate*time.Since(start).Seconds())
		for ; i < to && i < target; i++ {
			if r.Len() >= limit {
				t0 := time.Now()
				for r.Len() >= limit {
					time.Sleep(time.Millisecond)
				}
				held += time.Since(t0)
			}
			e.ExportSpan(sizedSpan(i, pad))
		}
		time.Sleep(time.Millisecond)
	}
	return held
}

// TestEveryIDOnceAtBatchBoundaries: batches cut by the byte budget (64 KiB
// over 500-byte spans; and 20 KB spans that cut default 4 MiB batches of
// 300) deliver every span id exactly once.
func TestEveryIDOnceAtBatchBoundaries(t *testing.T) {
	for _, c := range []struct {
		name     string
		n, pad   int
		maxBytes int
	}{
		{"64KiB-budget", 200_000, 450, 64 << 10},
		{"spans-cut-default-batches", 2_000, 20_000, DefaultMaxBatchBytes},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := c.n
			if raceEnabled {
				n /= 4
			}
			a := startAgent(t, mockagent.WithDiscard(), mockagent.WithSpanIDCounts())
			e := newExporter(t, a, WithMaxBatchBytes(c.maxBytes), WithSpanRingCapacity(1<<16), WithBlockWhenFull(time.Minute))
			for i := range n {
				e.ExportSpan(sizedSpan(i, c.pad))
			}
			waitFor(t, e, fmt.Sprintf("all %d span ids at the agent", n), func() bool {
				e.Flush()
				u, _ := a.SpanIDs()
				return u >= int64(n)
			})
			stopAll(t, e)
			unique, dups := a.SpanIDs()
			st := e.Stats()
			if unique != int64(n) || dups != 0 {
				t.Fatalf("%d spans: agent has %d distinct, %d duplicates; stats %+v", n, unique, dups, st)
			}
			if st.SpansExported != uint64(n) || st.SpansResent != 0 || st.SpansInDoubt != 0 {
				t.Fatalf("stats %+v", st)
			}
			t.Logf("%d spans in %d batches, every id once", n, st.Batches)
		})
	}
}

// TestDeliveryAcrossAbruptRestarts is the redeployed-Collector scenario:
// default options, two goroutines exporting typical-sized spans at a steady
// 20,000 spans/s in all, while the agent is killed abruptly (listener and connections closed:
// dials are refused), stays down 100-300 ms and comes back on the same
// address, ten times, restarts less than 1.5 s apart. An outage holds at
// most 6,000 spans at that rate, less than the 8,192-slot ring, so nothing
// may be lost or dropped. With downtimes up to 500 ms and a 16,384-slot
// ring, the same. (On a busy machine the producers hold back at three
// quarters of the ring, see paced: the fit is a count, not a timing; how
// long they were held back is logged.)
func TestDeliveryAcrossAbruptRestarts(t *testing.T) {
	for _, c := range []struct {
		name          string
		maxDown       time.Duration
		opts          []ExporterOption
		spans, starts int
	}{
		{"down-100-300ms-defaults", 300 * time.Millisecond, nil, 300_000, 10},
		{"down-100-500ms-ring-16k", 500 * time.Millisecond, []ExporterOption{WithSpanRingCapacity(1 << 14)}, 300_000, 10},
	} {
		t.Run(c.name, func(t *testing.T) {
			n, restarts := c.spans, c.starts
			rate := 20_000.0
			if raceEnabled || testing.Short() {
				n, restarts = n/3, restarts/3
			}
			if raceEnabled {
				// The race detector slows conversion and the in-process
				// agent about tenfold: the same outages at a quarter of the
				// rate.
				n, rate = n/4, rate/4
			}
			a := startAgent(t, mockagent.WithDiscard(), mockagent.WithSpanIDCounts())
			e, err := NewExporter(append([]ExporterOption{WithInsecure(), WithAddress(a.Addr())}, c.opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			defer e.Stop()

			var lags, downs []time.Duration
			done := make(chan struct{})
			stop := make(chan struct{})
			go func() {
				defer close(done)
				downs = redeploy(t, a, restarts, c.maxDown, stop, func() {
					back := time.Now()
					before := a.SpanCount()
					for a.SpanCount() == before && time.Since(back) < 10*time.Second {
						time.Sleep(time.Millisecond)
					}
					lags = append(lags, time.Since(back))
				})
			}()
			var wg sync.WaitGroup
			var held [2]time.Duration
			for p := range 2 {
				wg.Add(1)
				go func() { defer wg.Done(); held[p] = paced(e, p*n/2, (p+1)*n/2, rate/2, typicalPad) }()
			}
			wg.Wait()
			close(stop)
			<-done
			waitFor(t, e, fmt.Sprintf("each of the %d spans at the agent or dropped", n), func() bool {
				e.Flush()
				u, _ := a.SpanIDs()
				st := e.Stats()
				return u+int64(st.SpansDroppedFull) >= int64(n)
			})
			stopAll(t, e)
			st := e.Stats()
			unique, dups := a.SpanIDs()
			var maxLag time.Duration
			for _, l := range lags {
				maxLag = max(maxLag, l)
			}
			t.Logf("%d spans at %.0f/s, %d restarts (down %v): delivered %d, lost %d, dropped %d, duplicates %d (%.1f%%; resent %d), reconnects %d; first span after each return %v (max %v); producers held back %v",
				n, rate, len(lags), downs, unique, int64(n)-unique-int64(st.SpansDroppedFull), st.SpansDroppedFull, dups,
				100*float64(dups)/float64(n), st.SpansResent, st.Reconnects, lags, maxLag, held)
			if st.SpansDroppedFull != 0 || st.SpansDroppedAtStop != 0 {
				t.Errorf("dropped %d (ring full), %d at stop: the outages fit the ring", st.SpansDroppedFull, st.SpansDroppedAtStop)
			}
			if unique != int64(n) {
				t.Errorf("lost %d of %d spans", int64(n)-unique, n)
			}
			if uint64(dups) > st.SpansResent {
				t.Errorf("%d duplicates but only %d spans resent", dups, st.SpansResent)
			}
			if st.SpansExported+st.SpansDroppedFull+st.SpansDroppedAtStop != uint64(n) {
				t.Errorf("accounting: %+v", st)
			}
		})
	}
}

// TestShortReconnectionPeriod: with WithReconnectionPeriod(20ms), an agent
// stopped for 50 ms and restarted on the same address has the exporter
// reconnect, every round, and then gets the round's spans. How soon is
// logged, not asserted (a busy machine delays any reconnection); that the
// period caps the delay between attempts is TestBackoffCappedByPeriod
// (stream/backoff.go), which reads no clock.
func TestShortReconnectionPeriod(t *testing.T) {
	a := startAgent(t, mockagent.WithDiscard(), mockagent.WithSpanIDCounts())
	e := newExporter(t, a, WithReconnectionPeriod(20*time.Millisecond))
	const rounds, per = 5, 20
	var lags []time.Duration
	for r := range rounds {
		a.Stop()
		time.Sleep(50 * time.Millisecond) // the outage
		if err := a.Restart(); err != nil {
			t.Fatal(err)
		}
		back := time.Now()
		waitFor(t, e, fmt.Sprintf("round %d: the exporter reconnected", r), func() bool { return e.Stats().Reconnects >= uint64(r+1) })
		lags = append(lags, time.Since(back))
		for i := range per {
			e.ExportSpan(idSpan(r*per + i))
		}
		waitFor(t, e, fmt.Sprintf("round %d: its %d spans at the agent", r, per), func() bool {
			e.Flush()
			u, _ := a.SpanIDs()
			return u >= int64((r+1)*per)
		})
	}
	stopAll(t, e)
	if u, dups := a.SpanIDs(); u != rounds*per {
		t.Errorf("agent has %d distinct spans (%d duplicates), want %d", u, dups, rounds*per)
	}
	t.Logf("reconnected after the agent's return in %v (reconnects %d)", lags, e.Stats().Reconnects)
}

// TestCarriedSpanCounted: a span carried over by the byte budget is queued,
// not nowhere. A producer racing Flush (the budget of a drain read before
// its push) used to leave it counted by nothing, unsent by later Flushes,
// and counted as dropped at stop although the agent was up.
func TestCarriedSpanCounted(t *testing.T) {
	a := startAgent(t, mockagent.WithDiscard(), mockagent.WithSpanIDCounts())
	// 1 KiB budget, spans of about 600 encoded bytes: every batch carries.
	e := newExporter(t, a, WithMaxBatchBytes(1024), WithMaxBatchDelay(time.Hour))
	trials := 500
	if raceEnabled {
		trials = 200
	}
	id := 0
	for range trials {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); e.ExportSpan(sizedSpan(id+1, 550)) }()
		e.ExportSpan(sizedSpan(id, 550))
		e.Flush()
		wg.Wait()
		id += 2
		// Stats reads while the batcher may still be taking the second span
		// (it can arrive after Flush): at no moment may a span be missing,
		// and once the batcher rests the sum is exact.
		sum := func() uint64 {
			st := e.Stats()
			got := st.SpansExported + uint64(st.SpansQueued) + st.SpansDroppedFull
			if got < uint64(id) {
				t.Fatalf("after %d spans: exported %d + queued %d + dropped %d = %d", id, st.SpansExported, st.SpansQueued, st.SpansDroppedFull, got)
			}
			return got
		}
		waitFor(t, e, fmt.Sprintf("exported + queued + dropped = %d", id), func() bool { return sum() == uint64(id) })
	}
	waitFor(t, e, fmt.Sprintf("all %d span ids at the agent", id), func() bool {
		e.Flush()
		u, _ := a.SpanIDs()
		return u >= int64(id)
	})
	stopAll(t, e)
	st := e.Stats()
	if unique, dups := a.SpanIDs(); unique != int64(id) || dups != 0 || st.SpansDroppedAtStop != 0 {
		t.Fatalf("%d spans: agent has %d distinct, %d duplicates; at stop %d", id, unique, dups, st.SpansDroppedAtStop)
	}
}

// TestViewBundlerCountNoLimit: WithDataBundlerOptions(d, math.MaxInt32),
// upstream's "no count limit", used to size the view ring at 2^32 slots.
func TestViewBundlerCountNoLimit(t *testing.T) {
	e, err := NewUnstartedExporter(WithInsecure(), WithDataBundlerOptions(time.Second, math.MaxInt32))
	if err != nil {
		t.Fatal(err)
	}
	if c := e.views.Ring().Cap(); c != ViewRingCapacity {
		t.Fatalf("view ring of %d slots", c)
	}
}

// TestAgentEndingEarlyIsNotConfirmation: an agent (or proxy) that reads the
// Node and ends the stream with OK before reading the rest gives the same
// io.EOF as one that read everything. Stop must not take it as the agent's
// confirmation: what it sent is counted in doubt, not exported and gone.
func TestAgentEndingEarlyIsNotConfirmation(t *testing.T) {
	a := startAgent(t, mockagent.WithEndAfterFirst(), mockagent.WithSpanIDCounts())
	e := newExporter(t, a, WithMaxBatchDelay(5*time.Millisecond))
	const n = 50
	for i := range n {
		e.ExportSpan(idSpan(i))
		time.Sleep(time.Millisecond)
	}
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	st := e.Stats()
	if unique, _ := a.SpanIDs(); unique != 0 {
		t.Fatalf("the agent read %d spans", unique)
	}
	if st.SpansExported+st.SpansDroppedAtStop != n || st.SpansInDoubt != st.SpansExported {
		t.Fatalf("no span was read, yet exported %d, in doubt %d, at stop %d", st.SpansExported, st.SpansInDoubt, st.SpansDroppedAtStop)
	}
}

// TestSendLimitBelowBatch: a batch over the call's send limit (a dial option
// of the user's) is refused by gRPC itself before it leaves; it is dropped
// and counted as oversize, and the exporter goes on, instead of resending it
// forever.
func TestSendLimitBelowBatch(t *testing.T) {
	a := startAgent(t, mockagent.WithSpanIDCounts())
	e := newExporter(t, a, WithMaxBatchDelay(time.Hour),
		WithGRPCDialOption(grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(4096))))
	for i := range 20 {
		// Each alone over the limit: every batch is, however cut.
		e.ExportSpan(sizedSpan(i, 4500))
	}
	e.Flush()
	// The refused batch's fate first, so that the next span cannot join it.
	waitFor(t, e, "the batch over the send limit dropped", func() bool { return e.Stats().SpansDroppedOversize >= 20 })
	e.ExportSpan(sizedSpan(100, 500))
	waitFor(t, e, "the span under the send limit at the agent", func() bool {
		e.Flush()
		u, _ := a.SpanIDs()
		return u >= 1
	})
	st := e.Stats()
	if st.SpansDroppedOversize != 20 || st.SpansExported != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// restarter is a test agent that can be killed abruptly (listener and
// connections closed) and brought back on the same address.
type restarter interface {
	Stop()
	Restart() error
}

// redeploy is the redeployed-Collector fault: restarts times, after 300 ms
// to 1 s up, a is killed and comes back after 100 ms to maxDown; back, when
// not nil, runs after each return. It returns the downtimes, early when stop
// is closed.
func redeploy(t *testing.T, a restarter, restarts int, maxDown time.Duration, stop <-chan struct{}, back func()) (downs []time.Duration) {
	for range restarts {
		select {
		case <-time.After(300*time.Millisecond + rand.N(700*time.Millisecond)):
		case <-stop:
			return downs
		}
		down := 100*time.Millisecond + rand.N(maxDown-100*time.Millisecond+1)
		a.Stop()
		time.Sleep(down)
		if err := a.Restart(); err != nil {
			t.Error(err)
			return downs
		}
		if back != nil {
			back()
		}
		downs = append(downs, down)
	}
	return downs
}
