package ocagent

import (
	"context"
	"fmt"
	"testing"

	"github.com/zerocensus/ocagent/internal/testwait"
)

// How the tests of this package wait (issue 21): a verdict on what arrived
// or was counted never depends on a deadline being met, since a busy
// machine misses any deadline. A test waits for the condition itself (the
// agent's counts, Stats) with waitFor, and stops an exporter whose delivery
// it then counts with stopAll, never with a bare Stop, whose default 5 s
// deadline would decide the verdict. Only the tests of Stop's deadline
// itself give StopContext a short one, and they assert the accounting
// (exported + dropped at stop = offered), not the delivery.

// wait bounds the test agents' Wait* helpers: testwait.Cap, a hang guard.
const wait = testwait.Cap

// waitFor polls cond until it holds (testwait.Cap is only a hang guard).
// On failure it names what was awaited and, when e is not nil, e's Stats.
func waitFor(t testing.TB, e *Exporter, what string, cond func() bool) {
	t.Helper()
	var state func() any
	if e != nil {
		state = func() any { return e.Stats() }
	}
	testwait.For(t, what, cond, state)
}

// stopAll stops e with testwait.StopTimeout (a minute) to send what is
// queued, and fails the test if Stop does.
func stopAll(t testing.TB, e *Exporter) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testwait.StopTimeout)
	defer cancel()
	if err := e.StopContext(ctx); err != nil {
		t.Fatal(err)
	}
}

// exported waits until e has exported n spans (handed to a stream, or
// acknowledged over OTLP): Flush gives up after its own deadline, and a
// test that counts after it must not depend on that deadline being met.
// The allocation gates call it inside their measured window: it costs a
// few allocations per call, nothing per span.
func exported(t testing.TB, e *Exporter, n int) {
	t.Helper()
	waitFor(t, e, fmt.Sprintf("%d spans exported", n), func() bool { return e.Stats().SpansExported >= uint64(n) })
}
