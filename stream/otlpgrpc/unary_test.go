package otlpgrpc

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/zerocensus/ocagent/internal/rawcodec"
	"github.com/zerocensus/ocagent/internal/testwait"
	"github.com/zerocensus/ocagent/pool"
	"github.com/zerocensus/ocagent/stream"
)

// fakeAgent answers each Export call with what answer says for the n-th
// call (from 1), and records the largest number of calls in flight at once.
type fakeAgent struct {
	addr    string
	srv     *grpc.Server
	calls   atomic.Int64
	active  atomic.Int64
	maxSeen atomic.Int64
	answer  func(n int64, req []byte) ([]byte, error)
	delay   time.Duration
}

func startFake(t *testing.T, delay time.Duration, answer func(n int64, req []byte) ([]byte, error)) *fakeAgent {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeAgent{addr: lis.Addr().String(), answer: answer, delay: delay}
	f.srv = grpc.NewServer(grpc.ForceServerCodecV2(rawcodec.Codec{}), grpc.UnknownServiceHandler(func(_ any, st grpc.ServerStream) error {
		var req []byte
		if err := st.RecvMsg(&req); err != nil {
			return err
		}
		n := f.calls.Add(1)
		a := f.active.Add(1)
		defer f.active.Add(-1)
		for m := f.maxSeen.Load(); a > m && !f.maxSeen.CompareAndSwap(m, a); m = f.maxSeen.Load() {
		}
		if f.delay > 0 {
			time.Sleep(f.delay)
		}
		resp, err := f.answer(n, req)
		if err != nil {
			return err
		}
		return st.SendMsg(&resp)
	}))
	go f.srv.Serve(lis)
	t.Cleanup(f.srv.Stop)
	return f
}

func ok(int64, []byte) ([]byte, error) { return nil, nil }

// partial returns an Export response whose partial_success rejects n items.
func partial(n int, msg string) []byte {
	var ps []byte
	ps = protowire.AppendTag(ps, 1, protowire.VarintType)
	ps = protowire.AppendVarint(ps, uint64(n))
	ps = protowire.AppendTag(ps, 2, protowire.BytesType)
	ps = protowire.AppendString(ps, msg)
	b := protowire.AppendTag(nil, 1, protowire.BytesType)
	return protowire.AppendBytes(b, ps)
}

type rig struct {
	u      *Unary
	c      *stream.Counters
	bufs   *pool.Buffers
	cancel context.CancelFunc
}

func newRig(t *testing.T, addr string, cfg Config) *rig {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	// Generous attempt and call timeouts: a busy machine must not turn a
	// slow call into a counted failure (the tests count failures).
	conn, err := stream.Dial(ctx, addr, 50*time.Millisecond, testwait.StopTimeout, nil, grpc.WithTransportCredentials(insecure.NewCredentials()), DialOption())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Method == "" {
		cfg.Method = TraceMethod
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = testwait.StopTimeout
	}
	r := &rig{c: new(stream.Counters), bufs: pool.NewBuffers(), cancel: cancel}
	r.u = New(conn, cfg, r.c)
	t.Cleanup(func() { cancel(); r.u.Abort(); conn.Close() })
	return r
}

// send hands one request of items items (of 2 data points each) to the
// transport, as the scheduler does: when it is ready.
func (r *rig) send(t *testing.T, items int) {
	t.Helper()
	for r.u.Ready() != nil {
		<-r.u.Events()
	}
	b := r.bufs.Get(100)
	r.u.Send(mem.NewBuffer(b, r.bufs), stream.Count{Items: items, Points: 2 * items})
}

func (r *rig) settle(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testwait.StopTimeout)
	defer cancel()
	r.u.Close(ctx)
	if !r.u.Settled() {
		t.Fatal("calls still in flight")
	}
}

// TestAcknowledgedWithinInFlightLimit: with MaxInFlight 3 the transport
// has 3 calls in flight at once and never more, and every item is
// acknowledged. The agent holds the first three calls until all three are
// there, so that no delay decides whether they overlap.
func TestAcknowledgedWithinInFlightLimit(t *testing.T) {
	var held atomic.Int64
	f := startFake(t, 5*time.Millisecond, func(n int64, _ []byte) ([]byte, error) {
		if n <= 3 {
			held.Add(1)
			if !testwait.Until(func() bool { return held.Load() >= 3 }) {
				return nil, status.Error(codes.Internal, "fewer than 3 calls in flight at once")
			}
		}
		return nil, nil
	})
	r := newRig(t, f.addr, Config{MaxInFlight: 3})
	for range 30 {
		r.send(t, 10)
	}
	r.settle(t)
	s := r.c.Snapshot()
	if s.Exported != 300 || s.Batches != 30 || s.SendFailures != 0 || r.u.Pending() != (stream.Count{}) {
		t.Fatalf("%+v", s)
	}
	if m := f.maxSeen.Load(); m != 3 {
		t.Errorf("at most %d calls in flight, want 3", m)
	}
}

func TestPartialSuccessCounted(t *testing.T) {
	f := startFake(t, 0, func(int64, []byte) ([]byte, error) { return partial(3, "three bad spans"), nil })
	r := newRig(t, f.addr, Config{MaxInFlight: 2})
	r.send(t, 10)
	r.settle(t)
	s := r.c.Snapshot()
	if s.Exported != 7 || s.Rejected != 3 || s.LastError == nil {
		t.Fatalf("%+v", s)
	}
	// Metrics count rejected data points apart from the metrics.
	r = newRig(t, f.addr, Config{MaxInFlight: 2, Points: true, Method: MetricsMethod})
	r.send(t, 10)
	r.settle(t)
	if s := r.c.Snapshot(); s.Exported != 10 || s.PointsExported != 17 || s.PointsRejected != 3 || s.Rejected != 0 {
		t.Fatalf("%+v", s)
	}
}

func TestRetryableCodesRetried(t *testing.T) {
	for _, code := range []codes.Code{codes.Unavailable, codes.DeadlineExceeded, codes.Aborted, codes.Canceled, codes.OutOfRange, codes.DataLoss} {
		t.Run(code.String(), func(t *testing.T) {
			f := startFake(t, 0, func(n int64, _ []byte) ([]byte, error) {
				if n <= 2 {
					return nil, status.Error(code, "not now")
				}
				return nil, nil
			})
			r := newRig(t, f.addr, Config{MaxInFlight: 1})
			r.send(t, 5)
			r.settle(t)
			if s := r.c.Snapshot(); s.Exported != 5 || s.SendFailures != 2 || s.Resent != 10 || s.Rejected != 0 {
				t.Fatalf("%+v", s)
			}
		})
	}
}

func TestFinalCodesNotRetried(t *testing.T) {
	for _, code := range []codes.Code{codes.InvalidArgument, codes.Unauthenticated, codes.PermissionDenied, codes.Unimplemented, codes.Internal, codes.ResourceExhausted} {
		t.Run(code.String(), func(t *testing.T) {
			f := startFake(t, 0, func(int64, []byte) ([]byte, error) { return nil, status.Error(code, "no") })
			r := newRig(t, f.addr, Config{MaxInFlight: 1})
			r.send(t, 5)
			r.settle(t)
			if s := r.c.Snapshot(); s.Rejected != 5 || s.Refused != 5 || s.PointsRefused != 10 || s.Exported != 0 || f.calls.Load() != 1 {
				t.Fatalf("%+v after %d calls", s, f.calls.Load())
			}
			// By code: the refusal and the export's one duration.
			if got := r.c.Refusals.Snapshot(nil); !slices.Equal(got, []stream.Refusal{{Code: int(code), Items: 5, Points: 10}}) {
				t.Errorf("refusals %+v", got)
			}
			if d := r.c.Durations.Snapshot(nil); len(d) != 1 || d[0].Code != int(code) || d[0].Count != 1 {
				t.Errorf("durations %+v", d)
			}
		})
	}
}

func TestResourceExhaustedWithRetryInfo(t *testing.T) {
	f := startFake(t, 0, func(n int64, _ []byte) ([]byte, error) {
		if n == 1 {
			st, _ := status.New(codes.ResourceExhausted, "slow down").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(30 * time.Millisecond)})
			return nil, st.Err()
		}
		return nil, nil
	})
	r := newRig(t, f.addr, Config{MaxInFlight: 1})
	r.send(t, 4)
	r.settle(t)
	if s := r.c.Snapshot(); s.Exported != 4 || s.SendFailures != 1 || f.calls.Load() != 2 {
		t.Fatalf("%+v after %d calls", s, f.calls.Load())
	}
}

// TestStopCountsCallsInDoubt: a call in flight when the connection's
// context ends is counted exported and in doubt.
func TestStopCountsCallsInDoubt(t *testing.T) {
	var wg sync.WaitGroup
	wg.Add(1)
	block := make(chan struct{})
	f := startFake(t, 0, func(int64, []byte) ([]byte, error) { wg.Done(); <-block; return nil, nil })
	defer close(block)
	r := newRig(t, f.addr, Config{MaxInFlight: 1})
	r.send(t, 7)
	wg.Wait()
	r.cancel()
	r.u.Abort()
	if s := r.c.Snapshot(); s.Exported != 7 || s.InDoubt != 7 || r.u.Pending() != (stream.Count{}) {
		t.Fatalf("%+v", s)
	}
}

func TestReplyParsing(t *testing.T) {
	var r reply
	b := append(protowire.AppendTag(nil, 9, protowire.VarintType), 1)
	b = append(b, partial(12, "why")...)
	if err := r.UnmarshalReply(mem.BufferSlice{mem.SliceBuffer(b)}); err != nil || r.rejected != 12 || r.message != "why" {
		t.Fatalf("%+v %v", r, err)
	}
	if err := r.UnmarshalReply(mem.BufferSlice{mem.SliceBuffer([]byte{0x0a, 0x05})}); err == nil {
		t.Fatal("truncated reply accepted")
	}
}

// TestUnaryModel sends seeded random sequences of requests through the OTLP
// transport, with up to 8 calls in flight, to an agent that answers each
// request by a plan drawn per request: 0-2 retryable failures (any of the
// specification's retryable codes, or ResourceExhausted with RetryInfo),
// then success, a partial success, or a final refusal. Against the
// reference: the agent saw every request id exactly 1 + its failures times
// (nothing lost, no attempt beyond the plan), and the counters (exported,
// rejected, send failures, resent) add up to what the plans say.
func TestUnaryModel(t *testing.T) {
	type plan struct {
		fails   []codes.Code
		final   codes.Code // codes.OK: accepted
		partial int        // with codes.OK: rejected items
	}
	retryableCodes := []codes.Code{codes.Unavailable, codes.DeadlineExceeded, codes.Aborted, codes.Canceled, codes.OutOfRange, codes.DataLoss, codes.ResourceExhausted}
	finalCodes := []codes.Code{codes.InvalidArgument, codes.PermissionDenied, codes.Internal, codes.ResourceExhausted}
	var (
		mu    sync.Mutex
		plans map[uint32]plan
		calls map[uint32]int
	)
	f := startFake(t, 0, func(_ int64, req []byte) ([]byte, error) {
		id := binary.BigEndian.Uint32(req)
		mu.Lock()
		p := plans[id]
		n := calls[id]
		calls[id]++
		mu.Unlock()
		if n < len(p.fails) {
			st := status.New(p.fails[n], "not now")
			if p.fails[n] == codes.ResourceExhausted {
				st, _ = st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Millisecond)})
			}
			return nil, st.Err()
		}
		if p.final != codes.OK {
			return nil, status.Error(p.final, "refused")
		}
		if p.partial > 0 {
			return partial(p.partial, "some bad"), nil
		}
		return nil, nil
	})
	for seed := range 30 {
		r := rand.New(rand.NewPCG(uint64(seed), 11))
		mu.Lock()
		plans, calls = map[uint32]plan{}, map[uint32]int{}
		mu.Unlock()
		f.maxSeen.Store(0)
		ctx, cancel := context.WithCancel(context.Background())
		// A 2 ms backoff cap: the delays are not under test here.
		conn, err := stream.Dial(ctx, f.addr, 2*time.Millisecond, testwait.StopTimeout, nil, grpc.WithTransportCredentials(insecure.NewCredentials()), DialOption())
		if err != nil {
			t.Fatal(err)
		}
		c, bufs := new(stream.Counters), pool.NewBuffers()
		u := New(conn, Config{Method: TraceMethod, MaxInFlight: 1 + r.IntN(8), Timeout: testwait.StopTimeout}, c)
		var wantExported, wantRejected, wantFailures, wantResent int
		const requests = 40
		for id := uint32(1); id <= requests; id++ {
			items := 1 + r.IntN(20)
			var p plan
			for range r.IntN(3) {
				p.fails = append(p.fails, retryableCodes[r.IntN(len(retryableCodes))])
			}
			switch k := r.IntN(10); {
			case k < 6:
			case k < 8:
				p.partial = 1 + r.IntN(items)
			default:
				p.final = finalCodes[r.IntN(len(finalCodes))]
			}
			mu.Lock()
			plans[id] = p
			mu.Unlock()
			wantFailures += len(p.fails)
			wantResent += len(p.fails) * items
			switch {
			case p.final != codes.OK:
				wantRejected += items
			default:
				wantExported += items - p.partial
				wantRejected += p.partial
			}
			for u.Ready() != nil {
				<-u.Events()
			}
			b := bufs.Get(8)
			*b = (*b)[:8]
			binary.BigEndian.PutUint32(*b, id)
			binary.BigEndian.PutUint32((*b)[4:], uint32(items))
			u.Send(mem.NewBuffer(b, bufs), stream.Count{Items: items})
		}
		closeCtx, closeCancel := context.WithTimeout(context.Background(), testwait.StopTimeout)
		u.Close(closeCtx)
		closeCancel()
		if !u.Settled() || u.Pending() != (stream.Count{}) {
			t.Fatalf("seed %d: not settled, %d pending", seed, u.Pending())
		}
		mu.Lock()
		for id := uint32(1); id <= requests; id++ {
			if got, want := calls[id], 1+len(plans[id].fails); got != want {
				t.Errorf("seed %d: request %d reached the agent %d times, its plan says %d", seed, id, got, want)
			}
		}
		mu.Unlock()
		s := c.Snapshot()
		if int(s.Exported) != wantExported || int(s.Rejected) != wantRejected || int(s.SendFailures) != wantFailures || int(s.Resent) != wantResent {
			t.Fatalf("seed %d: exported %d rejected %d failures %d resent %d; model %d %d %d %d",
				seed, s.Exported, s.Rejected, s.SendFailures, s.Resent, wantExported, wantRejected, wantFailures, wantResent)
		}
		if m := f.maxSeen.Load(); m > int64(u.cfg.MaxInFlight) {
			t.Errorf("seed %d: %d calls in flight, limit %d", seed, m, u.cfg.MaxInFlight)
		}
		cancel()
		u.Abort()
		conn.Close()
	}
}
