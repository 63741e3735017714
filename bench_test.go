package ocagent

import (
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"go.opencensus.io/trace"

	"github.com/zerocensus/ocagent/internal/countagent"
	"github.com/zerocensus/ocagent/internal/testspans"
)

func TestMain(m *testing.M) {
	countagent.ServeIfChild()
	os.Exit(m.Run())
}

var (
	discardOnce sync.Once
	discard     *countagent.Process
	discardErr  error
)

// discardAgent is one agent process for the whole test binary: it reads
// and drops everything, and its allocations are not counted in ours.
func discardAgent(tb testing.TB) string {
	tb.Helper()
	discardOnce.Do(func() { discard, discardErr = countagent.StartProcess() })
	if discardErr != nil {
		tb.Fatal(discardErr)
	}
	return discard.Addr()
}

var shapes = []struct {
	name string
	sd   func() *trace.SpanData
}{{"small", testspans.Small}, {"typical", testspans.Typical}, {"large", testspans.Large}}

// TestExportSpanAllocs gates the hot path: ExportSpan allocates nothing.
func TestExportSpanAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are gated without the race detector")
	}
	e, err := NewExporter(WithInsecure(), WithAddress(discardAgent(t)), WithSpanRingCapacity(1<<16))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	sd := testspans.Typical()
	if got := testing.AllocsPerRun(1000, func() { e.ExportSpan(sd) }); got != 0 {
		t.Errorf("ExportSpan: %v allocs, want 0", got)
	}
	// Dropping (ring full, or stopped) allocates nothing either.
	e.Stop()
	if got := testing.AllocsPerRun(1000, func() { e.ExportSpan(sd) }); got != 0 {
		t.Errorf("ExportSpan after Stop: %v allocs, want 0", got)
	}
}

const warmSpans = 2 * DefaultMaxBatchSpans

// warm sends a few batches so that the exporter has made its reused
// messages: benchmarks measure the steady state.
func warm(e *Exporter, sd *trace.SpanData) {
	for i := 0; i < warmSpans; i++ {
		e.ExportSpan(sd)
	}
	e.Flush()
}

// exportAll sends n spans and stops the exporter, which returns once the
// agent has read everything; already is the count sent before.
func exportAll(tb testing.TB, e *Exporter, sd *trace.SpanData, n, already int) {
	for i := 0; i < n; i++ {
		e.ExportSpan(sd)
	}
	stopAll(tb, e)
	st := e.Stats()
	if st.SpansExported != uint64(n+already) {
		tb.Fatalf("exported %d of %d spans: %+v", st.SpansExported, n, st)
	}
}

func e2eExporter(tb testing.TB) *Exporter {
	// Blocking on a full ring gives backpressure instead of drops, so that
	// every span is measured all the way to the agent.
	e, err := NewExporter(WithInsecure(), WithAddress(discardAgent(tb)), WithBlockWhenFull(time.Minute),
		WithMaxBatchDelay(10*time.Millisecond))
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

// TestEndToEndAllocsPerSpan gates the whole client side, gRPC included, at
// the default batch size: below 0.05 allocations per span in steady state.
// The first batches make the reused span messages (a one-time cost per
// exporter), so they are sent first. The agent's flow-control windows are
// large (countagent.Window), as gRPC's BDP estimation makes them on a
// long-lived connection: with gRPC's small initial windows the client also
// pays 2-3 allocations per WINDOW_UPDATE or PING frame the agent sends, a
// number that depends on timing (about 0.03 more per typical span).
func TestEndToEndAllocsPerSpan(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are gated without the race detector")
	}
	const n = 100000
	sd := testspans.Typical()
	e := e2eExporter(t)
	defer e.Stop()
	const steady = 30000
	for i := 0; i < steady; i++ {
		e.ExportSpan(sd)
	}
	e.Flush()
	exported(t, e, steady)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < n; i++ {
		e.ExportSpan(sd)
	}
	e.Flush()
	exported(t, e, steady+n)
	runtime.ReadMemStats(&after)
	st := e.Stats()
	if st.SpansExported != steady+n {
		t.Fatalf("exported %d: %+v", st.SpansExported, st)
	}
	perSpan := float64(after.Mallocs-before.Mallocs) / n
	t.Logf("%.4f allocs/span over %d spans (%d batches)", perSpan, n, st.Batches)
	if perSpan >= 0.05 {
		t.Errorf("%.4f allocs per span end to end, want < 0.05", perSpan)
	}
}

// BenchmarkExportSpan is the caller's cost of ExportSpan with a pre-built
// span while the writer drains to a discarding agent process.
//
// accepted: every span goes into the ring (the benchmark empties it with the
// timer stopped). ring-full: parallel callers far faster than the
// writer, so almost every span finds the ring full and is dropped and counted
// (the default policy): the cost a service pays when telemetry overflows.
func BenchmarkExportSpan(b *testing.B) {
	sd := testspans.Typical()
	b.Run("accepted", func(b *testing.B) {
		// No agent, and no outage buffering (WithReplayBytes(0)): the
		// scheduler takes nothing from the ring while it cannot connect, so
		// the benchmark is the ring's only consumer and empties it with the
		// timer stopped. (With outage buffering the scheduler would keep
		// encoding batches, and two consumers of a single-consumer ring
		// wait on each other's claimed slots forever.)
		e, err := NewExporter(WithInsecure(), WithAddress(freeAddr(b)), WithSpanRingCapacity(1<<16), WithReplayBytes(0))
		if err != nil {
			b.Fatal(err)
		}
		defer e.Stop()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 1; i <= b.N; i++ {
			e.ExportSpan(sd)
			if i%(1<<15) == 0 {
				b.StopTimer()
				for {
					if _, ok := e.spans.Ring().Pop(); !ok {
						break
					}
				}
				b.StartTimer()
			}
		}
		b.StopTimer()
		if d := e.Stats().SpansDroppedFull; d != 0 {
			b.Fatalf("%d spans dropped", d)
		}
	})
	b.Run("ring-full", func(b *testing.B) {
		e, err := NewExporter(WithInsecure(), WithAddress(discardAgent(b)))
		if err != nil {
			b.Fatal(err)
		}
		defer e.Stop()
		warm(e, sd)
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				e.ExportSpan(sd)
			}
		})
		b.StopTimer()
		b.ReportMetric(float64(e.Stats().SpansDroppedFull)/float64(b.N), "dropped/op")
	})
}

// BenchmarkEndToEnd is the whole path per span: ExportSpan, conversion,
// encoding, gRPC, until the agent (another process) has read the spans.
func BenchmarkEndToEnd(b *testing.B) {
	for _, s := range shapes {
		b.Run(s.name, func(b *testing.B) {
			sd := s.sd()
			e := e2eExporter(b)
			warm(e, sd)
			b.ReportAllocs()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			b.ResetTimer()
			exportAll(b, e, sd, b.N, warmSpans)
			b.StopTimer()
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(b.N), "allocs/span")
			st := e.Stats()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/span")
			b.ReportMetric(float64(st.Bytes)/float64(b.N), "wireB/span")
		})
	}
}
