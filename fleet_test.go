package ocagent

import (
	"fmt"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"go.opencensus.io/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	"github.com/zerocensus/ocagent/internal/mockagent"
	"github.com/zerocensus/ocagent/internal/otlpagent"
)

// A fleet of agents on 127.0.0.1 behind one name that a manual resolver
// controls, as a DNS name or a headless service would be.

var fleetScheme atomic.Int64

// fleetResolver returns a resolver of addrs and the target that names it.
func fleetResolver(addrs ...string) (*manual.Resolver, string) {
	r := manual.NewBuilderWithScheme(fmt.Sprintf("fleet%d", fleetScheme.Add(1)))
	r.InitialState(fleetState(addrs...))
	return r, r.Scheme() + ":///collectors"
}

func fleetState(addrs ...string) resolver.State {
	var s resolver.State
	for _, a := range addrs {
		s.Addresses = append(s.Addresses, resolver.Address{Addr: a})
	}
	return s
}

// fleetSpan is span i with an id that is unique over a test's 2^24 spans.
func fleetSpan(i int) *trace.SpanData {
	sd := span(i)
	sd.SpanID = trace.SpanID{byte(i), byte(i >> 8), byte(i >> 16), 7}
	return sd
}

func fleetKey(i int) [8]byte { return [8]byte{byte(i), byte(i >> 8), byte(i >> 16), 7} }

// spread checks that every agent's share of n is within 25% of n/len.
func spread(t *testing.T, what string, shares []int, n int) {
	t.Helper()
	fair := float64(n) / float64(len(shares))
	for i, s := range shares {
		if float64(s) < 0.75*fair || float64(s) > 1.25*fair {
			t.Fatalf("%s: agent %d has %d of %d spans, shares %v (want within 25%% of %.0f)", what, i, s, n, shares, fair)
		}
	}
	t.Logf("%s: shares %v of %d", what, shares, n)
}

// idCounter is a test agent that counts span ids (otlpagent, mockagent).
type idCounter interface {
	SpanIDs() (unique, duplicates int64)
}

// shares is each agent's distinct span ids, and their duplicates in all.
func shares[A idCounter](agents []A) (unique []int, dups int) {
	unique = make([]int, len(agents))
	for i, a := range agents {
		u, d := a.SpanIDs()
		unique[i], dups = int(u), dups+int(d)
	}
	return unique, dups
}

// TestOTLPFleetRoundRobin: calls spread over three Collectors behind one
// name (round_robin by default); one killed mid-run loses nothing (its
// calls fail over to the others); a fourth added mid-run gets calls at once.
func TestOTLPFleetRoundRobin(t *testing.T) {
	agents := []*otlpagent.Agent{startOTLPAgent(t), startOTLPAgent(t), startOTLPAgent(t)}
	r, target := fleetResolver(agents[0].Addr(), agents[1].Addr(), agents[2].Addr())
	e, err := NewExporter(WithProtocol(ProtocolOTLP), WithInsecure(), WithAddress(target), WithGRPCDialOption(grpc.WithResolvers(r)),
		WithMaxBatchSpans(100), WithReconnectionPeriod(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer stopAll(t, e)
	const n = 30_000
	next := 0
	export := func(k int) {
		for range k {
			e.ExportSpan(fleetSpan(next))
			next++
		}
		e.Flush() // acknowledged: the calls are done
	}
	// round_robin picks among the ready subchannels: on a busy machine the
	// third connection can be ready some calls after the first two, so the
	// spread is measured from the moment every Collector has taken a call.
	waitFor(t, e, "every Collector taking calls", func() bool {
		export(100)
		u, _ := shares(agents)
		return !slices.Contains(u, 0)
	})
	before, _ := shares(agents)
	from := next
	for range 10 {
		export(n / 30)
	}
	got, _ := shares(agents)
	for i := range got {
		got[i] -= before[i]
	}
	spread(t, "OTLP, three Collectors", got, next-from)

	// One Collector killed abruptly: what it had not answered is sent
	// again to the others; nothing is lost.
	agents[1].Stop()
	for range 10 {
		export(n / 30)
	}
	// A fourth joins the fleet: it takes calls at once.
	fourth := startOTLPAgent(t)
	agents = append(agents, fourth)
	r.UpdateState(fleetState(agents[0].Addr(), agents[2].Addr(), fourth.Addr()))
	for range 10 {
		export(n / 30)
	}
	// It takes calls as soon as its connection is ready (at once on a
	// quiet machine; the docs' figure is its share of these 10,000).
	waitFor(t, e, "the fourth Collector taking calls", func() bool {
		if u, _ := fourth.SpanIDs(); u > 0 {
			return true
		}
		export(100)
		return false
	})
	lost := 0
	seen := map[[8]byte]bool{}
	for _, a := range agents {
		for k := range a.SpanIDSet() {
			seen[k] = true
		}
	}
	for i := range next {
		if !seen[fleetKey(i)] {
			lost++
		}
	}
	if st := e.Stats(); lost != 0 || st.SpansExported != uint64(next) {
		t.Fatalf("%d of %d spans lost; stats %+v", lost, next, st)
	}
	u, _ := fourth.SpanIDs()
	t.Logf("OTLP: %d spans, none lost across a kill; the added fourth Collector took %d", next, u)
}

// TestOpenCensusFleetRotation: Flush (WithFlushConfirmed) ends the stream cleanly and the next
// one goes to the next agent of the fleet, so rounds of spans between
// flushes spread evenly; every span arrives exactly once (a clean end
// confirms: nothing is resent).
func TestOpenCensusFleetRotation(t *testing.T) {
	agents := []*mockagent.Agent{startAgent(t, mockagent.WithSpanIDCounts()), startAgent(t, mockagent.WithSpanIDCounts()), startAgent(t, mockagent.WithSpanIDCounts())}
	r, target := fleetResolver(agents[0].Addr(), agents[1].Addr(), agents[2].Addr())
	e, err := NewExporter(WithInsecure(), WithAddress(target), WithGRPCDialOption(grpc.WithResolvers(r)), WithMaxStreamAge(0), WithFlushConfirmed())
	if err != nil {
		t.Fatal(err)
	}
	const rounds, per = 30, 200
	next := 0
	round := func() {
		for range per {
			e.ExportSpan(fleetSpan(next))
			next++
		}
		e.Flush()
	}
	// round_robin places a stream on a ready subchannel: on a busy machine
	// a connection can be ready some rotations after the others, so the
	// spread is measured from the moment every agent has had a stream.
	waitFor(t, e, "every agent given a stream", func() bool {
		round()
		u, _ := shares(agents)
		return !slices.Contains(u, 0)
	})
	before, _ := shares(agents)
	from := next
	rot0 := e.Stats().Rotations
	for range rounds {
		round()
	}
	stopAll(t, e)
	got, dups := shares(agents)
	if dups != 0 {
		t.Fatalf("%d duplicates at the agents", dups)
	}
	if sum := got[0] + got[1] + got[2]; sum != next {
		t.Fatalf("%v: %d spans arrived of %d", got, sum, next)
	}
	for i := range got {
		got[i] -= before[i]
	}
	spread(t, "OpenCensus, a stream per Flush", got, next-from)
	if st := e.Stats(); st.Rotations-rot0 < rounds-1 || st.SpansResent != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestOpenCensusRotationUnderLoad: streams rotated every few milliseconds
// while two goroutines export lose and duplicate nothing: each rotation's
// clean end confirms its stream.
func TestOpenCensusRotationUnderLoad(t *testing.T) {
	st := rotateUnderLoad(t, WithMaxStreamAge(5*time.Millisecond))
	if st.Rotations == 0 {
		t.Fatalf("no rotation; stats %+v", st)
	}
	t.Logf("%d spans over %d rotations, none lost or duplicated", st.SpansExported, st.Rotations)
}

// TestConfirmBytesUnderLoad: streams confirmed by size (every 64 KiB, no
// age) under the same load: the rotations are about one per 64 KiB sent,
// nothing is lost or duplicated, and both agents get streams.
func TestConfirmBytesUnderLoad(t *testing.T) {
	const confirm = 64 << 10
	st := rotateUnderLoad(t, WithMaxStreamAge(0), WithConfirmBytes(confirm))
	// Each rotation comes when the next batch would pass 64 KiB: between
	// one per 64 KiB and one per 32 KiB (batches are far smaller).
	lo, hi := st.Bytes/confirm-1, 2*st.Bytes/confirm+1
	if st.Rotations < lo || st.Rotations > hi {
		t.Fatalf("%d rotations for %d bytes (want %d..%d); stats %+v", st.Rotations, st.Bytes, lo, hi, st)
	}
	t.Logf("%d spans, %d bytes over %d rotations, none lost or duplicated", st.SpansExported, st.Bytes, st.Rotations)
}

// rotateUnderLoad exports 40,000 spans from two goroutines to two agents
// behind one name, with streams rotating as opts say, and checks by id
// that every span arrived once, at both agents between them, none resent.
func rotateUnderLoad(t *testing.T, opts ...ExporterOption) Stats {
	t.Helper()
	agents := []*mockagent.Agent{startAgent(t, mockagent.WithSpanIDCounts()), startAgent(t, mockagent.WithSpanIDCounts())}
	r, target := fleetResolver(agents[0].Addr(), agents[1].Addr())
	e, err := NewExporter(append([]ExporterOption{WithInsecure(), WithAddress(target), WithGRPCDialOption(grpc.WithResolvers(r)),
		WithMaxBatchSpans(50), WithMaxBatchDelay(time.Millisecond), WithBlockWhenFull(time.Minute)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	const n = 40_000
	done := make(chan struct{})
	for g := range 2 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := g; i < n; i += 2 {
				e.ExportSpan(fleetSpan(i))
			}
		}()
	}
	<-done
	<-done
	stopAll(t, e)
	total := 0
	for i, a := range agents {
		u, d := a.SpanIDs()
		if d != 0 {
			t.Fatalf("agent %d: %d duplicates", i, d)
		}
		if u == 0 {
			t.Fatalf("agent %d got nothing", i)
		}
		total += int(u)
	}
	st := e.Stats()
	if total != n || st.SpansResent != 0 {
		t.Fatalf("%d of %d spans arrived; stats %+v", total, n, st)
	}
	return st
}

// TestFlushConfirmsAcrossRestarts is upstream's reconnect test with a
// check it lacks: 20 spans a round, Flush, the agent restarted (a span
// exported while it is down), three rounds. Upstream receives 21, 42 and 63
// spans in its rounds (every reconnect resends all its history); here, with
// WithFlushConfirmed, each Flush ends the stream cleanly, which confirms it,
// so no round's spans are ever sent again.
func TestFlushConfirmsAcrossRestarts(t *testing.T) {
	a := startAgent(t, mockagent.WithSpanIDCounts())
	e := newExporter(t, a, WithFlushConfirmed())
	next := 0
	for round := range 3 {
		for range 20 {
			e.ExportSpan(fleetSpan(next))
			next++
		}
		e.Flush()
		a.Stop()
		e.ExportSpan(fleetSpan(next)) // while the agent is down
		next++
		if err := a.Restart(); err != nil {
			t.Fatal(err)
		}
		// The next round goes on a stream the restarted agent serves:
		// waited for by the agent's count of the span sent while it was
		// down. Without the wait the round's Flush may end the dead
		// stream, which confirms nothing, and its frames are resent, as
		// the replay contract allows but this test does not.
		want := int64(next)
		waitFor(t, e, fmt.Sprintf("the agent has the %d spans after restart %d", want, round+1), func() bool { u, _ := a.SpanIDs(); return u == want })
	}
	e.Flush()
	waitFor(t, nil, "the agent has every span", func() bool { u, _ := a.SpanIDs(); return u == int64(next) })
	if u, d := a.SpanIDs(); u != int64(next) || d != 0 {
		t.Fatalf("%d distinct of %d, %d duplicates; stats %+v", u, next, d, e.Stats())
	}
}

// TestOpenCensusFleetKillAndScaleUp: streams rotating over three agents; one
// killed abruptly mid-run: nothing is lost (the replay resends what its
// stream carried), duplicates only from that replay; a fourth agent added
// mid-run gets streams as they rotate.
func TestOpenCensusFleetKillAndScaleUp(t *testing.T) {
	agents := []*mockagent.Agent{startAgent(t, mockagent.WithSpanIDCounts()), startAgent(t, mockagent.WithSpanIDCounts()), startAgent(t, mockagent.WithSpanIDCounts())}
	r, target := fleetResolver(agents[0].Addr(), agents[1].Addr(), agents[2].Addr())
	e, err := NewExporter(WithInsecure(), WithAddress(target), WithGRPCDialOption(grpc.WithResolvers(r)),
		WithMaxStreamAge(10*time.Millisecond), WithMaxBatchSpans(50), WithBlockWhenFull(time.Minute), WithReconnectionPeriod(100*time.Millisecond),
		WithFlushConfirmed())
	if err != nil {
		t.Fatal(err)
	}
	next := 0
	round := func() {
		for range 500 {
			e.ExportSpan(fleetSpan(next))
			next++
		}
		e.Flush()
	}
	for range 10 {
		round()
	}
	agents[1].Stop() // killed: its stream breaks, the replay goes to the next
	for range 10 {
		round()
	}
	fourth := startAgent(t, mockagent.WithSpanIDCounts())
	agents = append(agents, fourth)
	r.UpdateState(fleetState(agents[0].Addr(), agents[2].Addr(), fourth.Addr()))
	// Each Flush ends the stream and the next goes to the next agent: the
	// fourth's turn comes within a few.
	waitFor(t, nil, "the condition of fleet_test.go:283", func() bool { round(); u, _ := fourth.SpanIDs(); return u > 0 })
	stopAll(t, e)
	seen := map[[8]byte]uint32{}
	for _, a := range agents {
		for k, c := range a.SpanIDSet() {
			seen[k] += c
		}
	}
	lost, dups := 0, 0
	for i := range next {
		c := seen[fleetKey(i)]
		if c == 0 {
			lost++
		} else {
			dups += int(c) - 1
		}
	}
	st := e.Stats()
	if lost != 0 || uint64(dups) > st.SpansResent {
		t.Fatalf("%d of %d lost, %d duplicates (resent %d); stats %+v", lost, next, dups, st.SpansResent, st)
	}
	u, _ := fourth.SpanIDs()
	t.Logf("OpenCensus: %d spans, none lost across a kill, %d duplicates (resent %d), the added fourth agent took %d", next, dups, st.SpansResent, u)
}

// BenchmarkRotation is the cost of one stream rotation: a span exported and
// a Flush, which ends the stream cleanly (half-close, the agent's end) and
// opens the next (the Node first), against a discarding agent process.
// Compare with BenchmarkRotation/none, the same without rotation.
func BenchmarkRotation(b *testing.B) {
	for _, c := range []struct {
		name string
		age  time.Duration
	}{{"flush", 0}, {"none", -1}} {
		b.Run(c.name, func(b *testing.B) {
			e, err := NewExporter(WithInsecure(), WithAddress(discardAgent(b)), WithMaxStreamAge(0), WithMaxBatchSpans(1), WithFlushConfirmed())
			if err != nil {
				b.Fatal(err)
			}
			defer e.Stop()
			sd := fleetSpan(1)
			sent := uint64(0)
			op := func() {
				e.ExportSpan(sd)
				sent++
				if c.age == 0 {
					e.Flush()
					return
				}
				// Without a rotation: a batch of one span goes at once;
				// wait for the stream to have it.
				for e.Stats().SpansExported < sent {
					runtime.Gosched()
				}
			}
			op()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				op()
			}
			b.StopTimer()
			if c.age == 0 && e.Stats().Rotations < uint64(b.N) {
				b.Fatalf("%d rotations for %d flushes", e.Stats().Rotations, b.N)
			}
		})
	}
}
