package otlpgrpc

import (
	"net"
	"testing"
	"time"

	"github.com/zerocensus/ocagent/stream"
)

// TestNeverWrittenIsDroppedAtStop: calls to an address that refuses
// connections never leave the client: they are not exported, not in doubt
// and not resent, but dropped at stop; LastError says why; the transport is
// settled while they wait to retry (Flush and Close do not wait for them).
func TestNeverWrittenIsDroppedAtStop(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	r := newRig(t, addr, Config{MaxInFlight: 2})
	r.send(t, 5)
	r.send(t, 7)
	for deadline := time.Now().Add(10 * time.Second); r.c.Snapshot().SendFailures < 4 || !r.u.Settled(); {
		if time.Now().After(deadline) {
			t.Fatalf("no failed attempts: %+v", r.c.Snapshot())
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.cancel()
	r.u.Abort()
	s := r.c.Snapshot()
	if s.DroppedAtStop != 12 || s.Exported != 0 || s.InDoubt != 0 || s.Resent != 0 || s.LastError == nil || r.u.Pending() != (stream.Count{}) {
		t.Fatalf("%+v", s)
	}
}
