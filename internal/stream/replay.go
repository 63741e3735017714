package stream

import "github.com/zerocensus/ocagent/internal/pool"

// replay keeps copies of the batches most recently sent on the current
// stream, up to a byte budget, so that they can be sent again when the stream
// breaks.
//
// Why: gRPC's SendMsg returns once a message is queued, and the OpenCensus
// protocol has no acknowledgements, so a batch handed to a stream whose agent
// then dies may never have been read. gRPC flow control bounds how much the
// agent can hold unread: at most its stream window (64 KiB initially, grown by
// BDP estimation up to 16 MiB on fast links). Every batch older than that was
// read by the agent. Resending the last budget's worth of batches after a
// break therefore loses nothing when the budget covers the agent's window, at
// the price of duplicates (counted in Counters.Resent).
//
// Ownership: the copies belong to the replay until evicted or cleared, when
// they go back to the pool. Sending one again sends a fresh copy, because
// gRPC takes ownership of what it is given.
type replay struct {
	budget  int
	bufs    *pool.Buffers
	frames  []retainedFrame // oldest first
	bytes   int
	pending bool // the stream broke: frames must be resent on the next one
}

type retainedFrame struct {
	buf   *[]byte
	items int
	sent  bool // SendMsg accepted it once (a resend may then duplicate it)
}

// keep retains a copy of a batch about to be handed to gRPC, and reports
// whether it did (not when the replay is off or the batch exceeds the budget).
func (r *replay) keep(b []byte, items int) bool {
	if r.budget <= 0 || len(b) > r.budget {
		return false
	}
	c := r.bufs.Get(len(b))
	copy(*c, b)
	r.frames = append(r.frames, retainedFrame{buf: c, items: items})
	r.bytes += len(b)
	for r.bytes > r.budget {
		r.bytes -= len(*r.frames[0].buf)
		r.bufs.Put(r.frames[0].buf)
		r.frames[0] = retainedFrame{}
		r.frames = r.frames[1:]
	}
	// Reuse the front of the slice once it has drifted far enough.
	if len(r.frames) < cap(r.frames)/2 && cap(r.frames) > 64 {
		r.frames = append(r.frames[:0:0], r.frames...)
	}
	return true
}

// sent marks the newest frame as accepted by SendMsg.
func (r *replay) sentLast() {
	if n := len(r.frames); n > 0 {
		r.frames[n-1].sent = true
	}
}

// clear forgets every frame (the agent confirmed it read the stream to the end).
func (r *replay) clear() {
	for i, f := range r.frames {
		r.bufs.Put(f.buf)
		r.frames[i] = retainedFrame{}
	}
	r.frames = r.frames[:0]
	r.bytes = 0
	r.pending = false
}
