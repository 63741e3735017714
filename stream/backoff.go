package stream

import (
	"math/rand/v2"
	"time"
)

// FirstBackoff is the reconnection delay while an outage is young, and
// fastPhase how long it stays young.
const (
	FirstBackoff = 100 * time.Millisecond
	fastPhase    = time.Second
)

// Backoff paces reconnection attempts through an outage. For its first
// second, attempts follow about every 100 ms: a redeployed agent is usually
// back within it, and while it is down spans pile up in the ring (at 20,000
// spans/s the default ring holds 400 ms), so a reconnection that lags the
// agent's return by a doubling step (up to 400 ms after 300 ms down) drops
// spans that a 100 ms step keeps. After that, the delay doubles from 200 ms
// up to the cap (WithReconnectionPeriod), so that a long outage costs few
// dials. Each delay is drawn from [d/2, d], so that many exporters
// restarted together do not reconnect in step.
type Backoff struct {
	since    time.Time // the outage's first failure
	doubling int       // failures after the fast phase
}

// Next returns the delay before the next attempt and counts a failure.
func (b *Backoff) Next(limit time.Duration) time.Duration {
	now := time.Now()
	if b.since.IsZero() {
		b.since = now
	}
	d := FirstBackoff
	if now.Sub(b.since) >= fastPhase {
		d = 2 * FirstBackoff
		for i := 0; i < b.doubling && d < limit; i++ {
			d *= 2
		}
		b.doubling++
	}
	d = min(d, limit)
	return d/2 + rand.N(d/2+1)
}

// Reset ends the outage (after a success).
func (b *Backoff) Reset() { *b = Backoff{} }
