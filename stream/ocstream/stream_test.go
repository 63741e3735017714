package ocstream

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"

	"github.com/zerocensus/ocagent/internal/rawcodec"
	"github.com/zerocensus/ocagent/internal/testwait"
	"github.com/zerocensus/ocagent/pool"
	"github.com/zerocensus/ocagent/stream"
)

// seen is one message the agent took off a stream; dropped when the agent
// had stopped processing (it then never reaches the backend).
type seen struct {
	data    []byte
	dropped bool
}

// scriptAgent is an OpenCensus-style Export agent on 127.0.0.1 driven step by
// step: every message it takes off a stream is reported on seen, so that the
// test knows exactly which messages it processed; stall makes it drop what
// comes next on the current stream (as an agent that dies before processing
// what is in flight), and kill ends the current stream with an error.
type scriptAgent struct {
	addr string
	seen chan seen

	mu      sync.Mutex
	stalled bool
	kill    chan struct{}
}

func startScriptAgent(t *testing.T) *scriptAgent {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &scriptAgent{addr: lis.Addr().String(), seen: make(chan seen, 1<<12)}
	srv := grpc.NewServer(grpc.ForceServerCodecV2(rawcodec.Codec{}), grpc.UnknownServiceHandler(func(_ any, st grpc.ServerStream) error {
		kill := make(chan struct{})
		a.mu.Lock()
		a.stalled, a.kill = false, kill
		a.mu.Unlock()
		read := make(chan error, 1)
		go func() {
			for {
				var b []byte
				if err := st.RecvMsg(&b); err != nil {
					read <- err
					return
				}
				a.mu.Lock()
				dropped := a.stalled
				a.mu.Unlock()
				a.seen <- seen{data: b, dropped: dropped}
			}
		}()
		select {
		case err := <-read:
			if err == io.EOF {
				a.mu.Lock()
				dying := a.stalled
				a.mu.Unlock()
				if dying { // an agent that stopped processing cannot end cleanly
					return status.Error(codes.Unavailable, "agent dying")
				}
				return nil // the client half-closed: read to the end
			}
			return err
		case <-kill:
			return status.Error(codes.Unavailable, "agent killed")
		}
	}))
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return a
}

func (a *scriptAgent) stall() {
	a.mu.Lock()
	a.stalled = true
	a.mu.Unlock()
}

func (a *scriptAgent) killStream() {
	a.mu.Lock()
	close(a.kill)
	a.mu.Unlock()
}

// next waits for the agent's next message; none means the transport did not
// send what the model expects (seed names the sequence).
func (a *scriptAgent) next(t *testing.T, seed int) seen {
	t.Helper()
	return testwait.Receive(t, a.seen, fmt.Sprintf("seed %d: the message the model expects at the agent", seed))
}

// streamModel is the trivial reference of the replay: frames in the order
// they were kept, sent ones evicted oldest first beyond the budget; a
// stream whose sent frames would pass confirm with the next is rotated
// before it (a clean end, which releases them, unless the agent is dying).
type streamModel struct {
	budget          int
	confirm         int
	carried         bool
	rotations       int
	evicted         int // sent frames evicted unconfirmed
	failedRotations int
	maxUnsent       int // the most bytes that waited for a stream
	frames          []modelFrame
	sentBytes       int
	up              bool
	stalled         bool
	resend          bool
	exported        int
	resent          int
	delivered       []uint32 // the ids the agent processed, in order
}

type modelFrame struct {
	id   uint32
	size int
	sent bool
}

func (m *streamModel) limit() int {
	if m.confirm > 0 {
		return 2 * m.budget
	}
	return m.budget
}

func (m *streamModel) evict() {
	for len(m.frames) > 0 && m.frames[0].sent && m.sentBytes > m.limit() {
		m.sentBytes -= m.frames[0].size
		m.frames = m.frames[1:]
		m.evicted++
	}
}

func (m *streamModel) pending() int {
	n := 0
	for _, f := range m.frames {
		if !f.sent {
			n++
		}
	}
	return n
}

// onStream records that frame f went out on the current stream.
func (m *streamModel) onStream(id uint32) {
	if !m.stalled {
		m.delivered = append(m.delivered, id)
	}
}

// send returns how many messages the agent reads (none while down).
func (m *streamModel) send(id uint32, size int) (messages int) {
	if !m.up {
		m.frames = append(m.frames, modelFrame{id: id, size: size})
		unsent := 0
		for _, f := range m.frames {
			if !f.sent {
				unsent += f.size
			}
		}
		m.maxUnsent = max(m.maxUnsent, unsent)
		return 0
	}
	if m.confirm > 0 && m.carried && m.sentBytes+size > m.confirm {
		if m.stalled { // the dying agent cannot end it cleanly: a break
			m.failedRotations++
			m.broken()
		} else {
			m.rotations++
			m.frames, m.sentBytes, m.resend = m.frames[:0], 0, false
		}
		messages = m.connect()
	}
	m.carried = true
	m.onStream(id)
	m.exported++
	if m.budget <= 0 || size > m.budget {
		return messages + 1
	}
	m.frames = append(m.frames, modelFrame{id: id, size: size, sent: true})
	m.sentBytes += size
	m.evict()
	return messages + 1
}

func (m *streamModel) connect() (messages int) {
	m.up, m.stalled = true, false
	if m.resend || (len(m.frames) > 0 && !m.frames[len(m.frames)-1].sent) {
		for i := range m.frames {
			f := &m.frames[i]
			m.onStream(f.id)
			if f.sent {
				m.resent++
			} else {
				f.sent = true
				m.exported++
				m.sentBytes += f.size
			}
		}
		messages = len(m.frames)
		m.resend = false
		m.carried = len(m.frames) > 0
		m.evict()
	}
	return messages + 1 // and the header
}

func (m *streamModel) broken() {
	m.up, m.carried = false, false
	m.resend = len(m.frames) > 0
}

// TestStreamModel drives the OpenCensus transport (its replay, its frames
// kept while down, its resend after a break) with seeded random sequences
// of sends, agent stalls (what is in flight is lost), stream kills, outages
// and reconnections, against a real gRPC agent on 127.0.0.1, and compares
// with the reference model: the ids the agent processed, in order, exactly;
// Exported, Resent and Pending; and the replay never over its budget. A
// final Close to a healthy agent must deliver everything still held. Frames
// are identified by the bytes the agent reads, so a buffer reused too early
// (poison builds overwrite returned buffers) shows as a wrong id.
func TestStreamModel(t *testing.T) {
	a := startScriptAgent(t)
	var frames, kills, stalls, reconnects, resent, rotations, lostTotal, guarded int
	seeds := 500
	if testing.Short() {
		seeds = 100
	}
	for seed := range seeds {
		r := rand.New(rand.NewPCG(uint64(seed), 7))
		ctx, cancel := context.WithCancel(context.Background())
		conn, err := stream.Dial(ctx, a.addr, time.Hour, testwait.StopTimeout, nil, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		bufs := pool.NewBuffers()
		c := new(stream.Counters)
		budget := []int{0, 300, 1000, 4000, 1 << 20}[r.IntN(5)]
		confirm := 0
		if r.IntN(2) == 0 {
			confirm = min(budget, []int{700, 2000, 5000}[r.IntN(3)])
		}
		header := []byte{0xff, 0xff, 0xff, 0xff, 'N', 'o', 'd', 'e'}
		s := New(conn, Config{Method: "/test.Agent/Export", Header: header, ReplayBytes: budget, ConfirmBytes: confirm}, bufs, c)
		m := &streamModel{budget: budget, confirm: confirm}

		// got reads n messages the agent took off the stream and records
		// the ids it processed.
		var got []uint32
		take := func(n int) {
			for range n {
				msg := a.next(t, seed)
				if len(msg.data) >= 4 && binary.BigEndian.Uint32(msg.data) == 0xffffffff {
					if string(msg.data) != string(header) {
						t.Fatalf("seed %d: corrupt header %x", seed, msg.data)
					}
					continue
				}
				id := binary.BigEndian.Uint32(msg.data)
				for i, b := range msg.data[4:] {
					if b != byte(id+uint32(i)) {
						t.Fatalf("seed %d: frame %d corrupt at byte %d", seed, id, i+4)
					}
				}
				if !msg.dropped {
					got = append(got, id)
				}
			}
		}
		connect := func() {
			s.nextAttempt = time.Time{} // the backoff is not under test here
			if err := s.Ready(); err != nil {
				t.Fatalf("seed %d: connect: %v", seed, err)
			}
			take(m.connect())
		}
		connect()
		var id uint32
		for op := 0; op < 60; op++ {
			switch k := r.IntN(10); {
			case k < 6: // send a frame of 50-700 bytes
				id++
				size := 50 + r.IntN(650)
				b := bufs.Get(size)
				*b = (*b)[:size]
				binary.BigEndian.PutUint32(*b, id)
				for i := 4; i < size; i++ {
					(*b)[i] = byte(id + uint32(i-4))
				}
				s.Send(mem.NewBuffer(b, bufs), stream.Count{Items: 1, Points: 3})
				take(m.send(id, size))
			case k == 6 && m.up && !m.stalled: // the agent stops processing
				stalls++
				a.stall()
				m.stalled = true
			case k < 9 && m.up: // the agent ends the stream (a crash)
				kills++
				a.stall()
				a.killStream()
				<-s.recv.done
				s.Service()
				if s.stream != nil {
					t.Fatalf("seed %d: stream still up after its end", seed)
				}
				m.broken()
			case !m.up: // the agent is back
				reconnects++
				connect()
			}
			if s.sentBytes > m.limit() {
				t.Fatalf("seed %d op %d: replay holds %d bytes over its limit %d", seed, op, s.sentBytes, m.limit())
			}
			if p := s.Pending(); p != (stream.Count{Items: m.pending(), Points: 3 * m.pending()}) {
				t.Fatalf("seed %d op %d: pending %+v, model %d items of 3 points", seed, op, p, m.pending())
			}
		}
		// The end: a healthy agent, Close reads the stream to its end.
		if !m.up {
			connect()
		}
		if m.stalled { // a stalled agent would never confirm: start afresh
			a.stall()
			a.killStream()
			<-s.recv.done
			s.Service()
			m.broken()
			connect()
		}
		closeCtx, closeCancel := context.WithTimeout(context.Background(), testwait.StopTimeout)
		s.Close(closeCtx)
		closeCancel()
		snap := c.Snapshot()
		if !slices.Equal(got, m.delivered) {
			t.Fatalf("seed %d (budget %d): the agent processed\n%v\nthe model says\n%v", seed, budget, got, m.delivered)
		}
		if int(snap.Exported) != m.exported || int(snap.Resent) != m.resent || int(snap.Rotations) != m.rotations {
			t.Fatalf("seed %d: exported %d resent %d rotations %d, model %d, %d and %d", seed, snap.Exported, snap.Resent, snap.Rotations, m.exported, m.resent, m.rotations)
		}
		// Count by id: what the agent never processed is exactly what the
		// budget could not keep.
		delivered := map[uint32]bool{}
		for _, v := range got {
			delivered[v] = true
		}
		lost := 0
		for v := uint32(1); v <= id; v++ {
			if !delivered[v] {
				lost++
			}
		}
		frames += int(id)
		resent += m.resent
		rotations += m.rotations
		lostTotal += lost
		// Confirmed by size, no frame is evicted unread unless more waited
		// for a stream than the budget (the pipeline's Ready refuses that)
		// or a rotation failed (each failure resends everything kept, and
		// one frame more: agents that never end cleanly are bounded by the
		// limit alone).
		if confirm > 0 && budget >= 700 && m.maxUnsent <= budget && m.failedRotations == 0 {
			guarded++
			if m.evicted != 0 {
				t.Fatalf("seed %d: %d frames evicted unconfirmed with confirmation every %d bytes (budget %d)", seed, m.evicted, confirm, budget)
			}
		}
		if budget >= 1<<20 && lost != 0 {
			t.Fatalf("seed %d: %d frames lost with a replay larger than everything sent", seed, lost)
		}
		if len(s.frames) != 0 || s.Pending() != (stream.Count{}) {
			t.Fatalf("seed %d: %d frames held after a confirmed Close", seed, len(s.frames))
		}
		s.Abort()
		cancel()
		conn.Close()
	}
	t.Logf("%d sequences: %d frames, %d stalls, %d stream kills, %d reconnections, %d rotations by size, %d frames resent, %d lost (all beyond a replay budget); %d sequences confirmed by size with nothing evicted unconfirmed",
		seeds, frames, stalls, kills, reconnects, rotations, resent, lostTotal, guarded)
}
