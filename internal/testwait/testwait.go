// Package testwait is how tests wait: for a condition, never for a
// duration. A busy machine (a shared CI runner, the race detector, another
// build on both cores) makes everything slower, so no verdict may depend on
// a deadline being met: a test that asserts "every span arrived" waits until
// the agent has them, and a test that stops an exporter before counting
// gives Stop a deadline (StopTimeout) far beyond what any run needs. The
// deadlines here only turn a hang into a failure that says what was awaited
// and what the state was; they are never what a test measures.
package testwait

import (
	"testing"
	"time"
)

const (
	// Cap bounds every wait for a condition: a hang guard, minutes, far
	// beyond a loaded run (and below go test's 10-minute default timeout,
	// so that the failure names the condition instead of a goroutine dump).
	Cap = 2 * time.Minute
	// StopTimeout is the deadline tests give an exporter's (or a
	// transport's) Stop when what it delivers is counted afterwards: a
	// minute, never the default 5 s that a busy machine can miss.
	StopTimeout = time.Minute
	// poll is how often a condition is evaluated.
	poll = 2 * time.Millisecond
)

// For polls cond until it holds. After Cap it fails the test with what
// (the condition, in words) and, when state is not nil, state's value at
// that moment (counters, stats), so that a hang reads as a diagnosis.
func For(t testing.TB, what string, cond func() bool, state func() any) {
	t.Helper()
	if !Until(cond) {
		if state != nil {
			t.Fatalf("not reached in %v: %s; state %+v", Cap, what, state())
		}
		t.Fatalf("not reached in %v: %s", Cap, what)
	}
}

// Until polls cond until it holds and reports true, or false after Cap:
// for waits whose caller reports the failure itself (a test server's
// goroutine, a helper that returns an error).
func Until(cond func() bool) bool {
	for deadline := time.Now().Add(Cap); !cond(); time.Sleep(poll) {
		if time.Now().After(deadline) {
			return cond()
		}
	}
	return true
}

// Receive waits for a value on c, failing the test after Cap with what.
func Receive[T any](t testing.TB, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(Cap):
		t.Fatalf("not reached in %v: %s", Cap, what)
		var zero T
		return zero
	}
}
