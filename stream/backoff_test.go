package stream

import (
	"testing"
	"time"
)

// TestBackoffCappedByPeriod: the delay between reconnection attempts never
// exceeds the cap (WithReconnectionPeriod), while an outage is young and
// after; below the cap, a young outage is retried in FirstBackoff steps and
// an old one doubles from 2*FirstBackoff, each delay drawn from [d/2, d].
// The outage's age is set, not waited for: no clock decides the verdict
// (TestShortReconnectionPeriod, end to end, only logs how soon it
// reconnects).
func TestBackoffCappedByPeriod(t *testing.T) {
	for _, limit := range []time.Duration{time.Millisecond, 20 * time.Millisecond, 150 * time.Millisecond, time.Second, 10 * time.Second} {
		var b Backoff
		for i := range 30 {
			young := i < 5
			if young {
				b.since = time.Now() // the outage just began
			} else if i == 5 {
				b.since = time.Now().Add(-2 * fastPhase) // and is old now
			}
			ceil := FirstBackoff
			if !young {
				ceil = 2 * FirstBackoff
				for k := 0; k < b.doubling && ceil < limit; k++ {
					ceil *= 2
				}
			}
			ceil = min(ceil, limit)
			if d := b.Next(limit); d > ceil || d < ceil/2 {
				t.Fatalf("cap %v, attempt %d (young %v): delay %v, want %v..%v", limit, i, young, d, ceil/2, ceil)
			}
		}
	}
}
