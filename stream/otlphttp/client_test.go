package otlphttp

import (
	"compress/gzip"
	"context"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/zerocensus/ocagent/pool"
	"github.com/zerocensus/ocagent/stream"
)

// script is a scripted OTLP/HTTP agent on 127.0.0.1: answer decides what
// the n-th request (from 1), whose first 8 bytes are head, gets, and may
// take the connection over (reset, no answer). It records the requests in
// flight at once and the connections opened.
type script struct {
	srv     *httptest.Server
	calls   atomic.Int64
	active  atomic.Int64
	maxSeen atomic.Int64
	conns   atomic.Int64
	answer  func(n int64, head []byte, w http.ResponseWriter, r *http.Request)
}

func startScript(t *testing.T, answer func(n int64, head []byte, w http.ResponseWriter, r *http.Request)) *script {
	t.Helper()
	s := &script{answer: answer}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.srv.Start()
	t.Cleanup(s.srv.Close)
	return s
}

func (s *script) serve(w http.ResponseWriter, r *http.Request) {
	a := s.active.Add(1)
	// A handler that drops the connection leaves first: the client may
	// retry before the handler has returned.
	leave := sync.OnceFunc(func() { s.active.Add(-1) })
	defer leave()
	r = r.WithContext(context.WithValue(r.Context(), leaveKey{}, leave))
	for m := s.maxSeen.Load(); a > m && !s.maxSeen.CompareAndSwap(m, a); m = s.maxSeen.Load() {
	}
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "bad request line", http.StatusBadRequest)
		return
	}
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(zr)
	}
	// The first 8 bytes (the id and the item count); an answer may reset
	// the connection before the rest is read.
	head := make([]byte, 8)
	if _, err := io.ReadFull(r.Body, head); err != nil {
		return
	}
	n := s.calls.Add(1)
	s.answer(n, head, w, r)
}

type leaveKey struct{}

// hijack takes the connection over, leaving the count of requests in
// flight first.
func hijack(w http.ResponseWriter, r *http.Request) (net.Conn, error) {
	r.Context().Value(leaveKey{}).(func())()
	c, _, err := http.NewResponseController(w).Hijack()
	return c, err
}

func ok(_ int64, _ []byte, w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/x-protobuf")
}

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

// rpcStatus is a google.rpc.Status{code, message}.
func rpcStatus(code int, msg string) []byte {
	b := protowire.AppendTag(nil, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(code))
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	return protowire.AppendString(b, msg)
}

func fail(w http.ResponseWriter, r *http.Request, code int, msg string) {
	io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(code)
	w.Write(rpcStatus(3, msg))
}

// noAnswer reads the whole request, then closes the connection without a
// response.
func noAnswer(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	c, err := hijack(w, r)
	if err == nil {
		c.Close()
	}
}

// reset resets the connection (RST) with the request body partly read.
func reset(w http.ResponseWriter, r *http.Request) {
	c, err := hijack(w, r)
	if err != nil {
		return
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

type rig struct {
	u      *Client
	c      *stream.Counters
	bufs   *pool.Buffers
	cancel context.CancelFunc
	mu     sync.Mutex
	delays []time.Duration
}

func newRig(t *testing.T, url string, cfg Config) *rig {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cfg.URL = url
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = time.Minute
	}
	r := &rig{c: new(stream.Counters), bufs: pool.NewBuffers(), cancel: cancel}
	r.u = New(ctx, cfg, r.c)
	// Retries are not waited for: the delays are recorded.
	r.u.retryDelay = func(d time.Duration) time.Duration {
		r.mu.Lock()
		r.delays = append(r.delays, d)
		r.mu.Unlock()
		return 0
	}
	t.Cleanup(func() { cancel(); r.u.Abort() })
	return r
}

// send hands one request of items items (of 2 data points each), with id,
// to the transport, as the scheduler does: when it is ready.
func (r *rig) send(id uint32, items, size int) {
	for r.u.Ready() != nil {
		<-r.u.Events()
	}
	size = max(size, 8)
	b := r.bufs.Get(size)
	*b = (*b)[:size]
	for i := range *b {
		(*b)[i] = byte(i)
	}
	binary.BigEndian.PutUint32(*b, id)
	binary.BigEndian.PutUint32((*b)[4:], uint32(items))
	r.u.Send(mem.NewBuffer(b, r.bufs), stream.Count{Items: items, Points: 2 * items})
}

func (r *rig) settle(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r.u.Close(ctx)
	if !r.u.Settled() {
		t.Fatal("requests still in flight")
	}
}

func TestAcknowledgedWithinInFlightLimitOnKeptConnections(t *testing.T) {
	s := startScript(t, func(n int64, head []byte, w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Millisecond) // slow answers: the limit is reached
		ok(n, head, w, r)
	})
	r := newRig(t, s.srv.URL+TracesPath, Config{MaxInFlight: 3})
	for i := range 30 {
		r.send(uint32(i), 10, 100)
	}
	r.settle(t)
	st := r.c.Snapshot()
	if st.Exported != 300 || st.Batches != 30 || st.SendFailures != 0 || r.u.Pending() != (stream.Count{}) || st.LastError != nil {
		t.Fatalf("%+v", st)
	}
	if m := s.maxSeen.Load(); m > 3 {
		t.Errorf("%d requests in flight, limit 3", m)
	}
	if c := s.conns.Load(); c > 3 {
		t.Errorf("%d connections for 30 requests, 3 at once: keep-alive not reused", c)
	}
}

func TestGzipAndHeaders(t *testing.T) {
	var got atomic.Value
	s := startScript(t, func(n int64, head []byte, w http.ResponseWriter, r *http.Request) {
		got.Store(r.Header.Get("Content-Encoding") + " " + r.Header.Get("X-Tenant"))
		ok(n, head, w, r)
	})
	r := newRig(t, s.srv.URL+TracesPath, Config{MaxInFlight: 1, Gzip: true, Headers: map[string]string{"x-tenant": "t1"}})
	for i := range 5 {
		r.send(uint32(i), 2, 10000)
	}
	r.settle(t)
	if st := r.c.Snapshot(); st.Exported != 10 || st.Bytes != 50000 || s.calls.Load() != 5 {
		t.Fatalf("%+v", st)
	}
	if g := got.Load(); g != "gzip t1" {
		t.Fatalf("encoding and header %q", g)
	}
}

func TestPartialSuccessCounted(t *testing.T) {
	s := startScript(t, func(_ int64, _ []byte, w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write(partial(3, "three bad spans"))
	})
	r := newRig(t, s.srv.URL+TracesPath, Config{MaxInFlight: 2})
	r.send(1, 10, 100)
	r.settle(t)
	st := r.c.Snapshot()
	if st.Exported != 7 || st.Rejected != 3 || st.LastError == nil || !strings.Contains(st.LastError.Error(), "three bad spans") {
		t.Fatalf("%+v", st)
	}
	r = newRig(t, s.srv.URL+MetricsPath, Config{MaxInFlight: 2, Points: true})
	r.send(1, 10, 100)
	r.settle(t)
	if st := r.c.Snapshot(); st.Exported != 10 || st.PointsExported != 17 || st.PointsRejected != 3 || st.Rejected != 0 {
		t.Fatalf("%+v", st)
	}
}

func TestRetryableAnswersRetried(t *testing.T) {
	for _, code := range []int{429, 502, 503, 504, 0} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			s := startScript(t, func(n int64, head []byte, w http.ResponseWriter, r *http.Request) {
				switch {
				case n > 2:
					ok(n, head, w, r)
				case code == 0:
					noAnswer(w, r)
				default:
					fail(w, r, code, "not now")
				}
			})
			r := newRig(t, s.srv.URL+TracesPath, Config{MaxInFlight: 1})
			r.send(1, 5, 100)
			r.settle(t)
			if st := r.c.Snapshot(); st.Exported != 5 || st.SendFailures != 2 || st.Resent != 10 || st.Rejected != 0 || st.LastError != nil {
				t.Fatalf("%+v", st)
			}
			if n := s.calls.Load(); n != 3 {
				t.Fatalf("%d calls, want 3", n)
			}
		})
	}
}

func TestFinalAnswersNotRetried(t *testing.T) {
	for _, code := range []int{400, 401, 403, 404, 413, 500, 501, 302, 307} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			s := startScript(t, func(_ int64, _ []byte, w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != TracesPath {
					ok(0, nil, w, r) // a followed redirect would be acknowledged here
					return
				}
				w.Header().Set("Location", "/elsewhere")
				fail(w, r, code, "refused: bad data")
			})
			r := newRig(t, s.srv.URL+TracesPath, Config{MaxInFlight: 1})
			r.send(1, 5, 100)
			r.settle(t)
			st := r.c.Snapshot()
			want := st.Rejected
			if code == 413 {
				want = st.Oversize
			}
			if want != 5 || st.Rejected+st.Oversize != 5 || st.Exported != 0 || s.calls.Load() != 1 {
				t.Fatalf("%+v after %d calls", st, s.calls.Load())
			}
			// By status: the refusal (413 is oversize), the export's one
			// duration.
			wantRefusals := []stream.Refusal{{Code: code, Items: 5, Points: 10}}
			if code == 413 {
				wantRefusals = nil
			}
			if got := r.c.Refusals.Snapshot(nil); !slices.Equal(got, wantRefusals) {
				t.Errorf("refusals %+v", got)
			}
			if d := r.c.Durations.Snapshot(nil); len(d) != 1 || d[0].Code != code || d[0].Count != 1 {
				t.Errorf("durations %+v", d)
			}
			var es *errStatus
			if !errors.As(st.LastError, &es) || es.code != code || es.message != "refused: bad data" {
				t.Fatalf("LastError %v, want the decoded google.rpc.Status", st.LastError)
			}
		})
	}
}

// TestRetryAfterHonouredAndCapped: Retry-After in seconds and as an HTTP
// date sets the delay before the retry, capped by the backoff limit.
func TestRetryAfterHonouredAndCapped(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		code        int
		limit       time.Duration
		min, max    time.Duration
	}{
		{"seconds", "7", 429, time.Minute, 7 * time.Second, 7 * time.Second},
		{"date", time.Now().Add(30 * time.Second).UTC().Format(http.TimeFormat), 503, time.Minute, 20 * time.Second, 31 * time.Second},
		{"capped", "3600", 503, 5 * time.Second, 5 * time.Second, 5 * time.Second},
		{"not on 502", "7", 502, time.Minute, 0, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startScript(t, func(n int64, head []byte, w http.ResponseWriter, r *http.Request) {
				if n == 1 {
					w.Header().Set("Retry-After", tc.value)
					fail(w, r, tc.code, "slow down")
					return
				}
				ok(n, head, w, r)
			})
			r := newRig(t, s.srv.URL+TracesPath, Config{MaxInFlight: 1, MaxBackoff: tc.limit})
			r.send(1, 4, 100)
			r.settle(t)
			if st := r.c.Snapshot(); st.Exported != 4 || st.SendFailures != 1 {
				t.Fatalf("%+v", st)
			}
			r.mu.Lock()
			defer r.mu.Unlock()
			if len(r.delays) != 1 || r.delays[0] < tc.min || r.delays[0] > tc.max {
				t.Fatalf("delays %v, want one in [%v, %v]", r.delays, tc.min, tc.max)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 7, 2, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":                               0,
		"0":                              0,
		"120":                            120 * time.Second,
		"-1":                             0,
		"soon":                           0,
		"Mon, 07 Dec 2026 02:00:42 GMT":  42 * time.Second,
		"Mon, 07 Dec 2026 01:59:00 GMT":  0,
		"Monday, 07-Dec-26 02:01:00 GMT": time.Minute,
	} {
		if got := parseRetryAfter(v, now); got != want {
			t.Errorf("%q: %v, want %v", v, got, want)
		}
	}
}

// TestStopCountsWrittenUnansweredInDoubt: a request written and unanswered
// when the context ends is exported and in doubt.
func TestStopCountsWrittenUnansweredInDoubt(t *testing.T) {
	arrived := make(chan struct{}, 1)
	block := make(chan struct{})
	s := startScript(t, func(_ int64, _ []byte, _ http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		arrived <- struct{}{}
		select {
		case <-block:
		case <-r.Context().Done():
		}
	})
	defer close(block)
	r := newRig(t, s.srv.URL+TracesPath, Config{MaxInFlight: 1})
	r.send(1, 7, 100)
	<-arrived
	// The server has the whole body; the client's write loop reports it
	// as written just after: wait for that mark rather than race it.
	k := r.u.all[0]
	for !k.written.Load() {
		time.Sleep(time.Millisecond)
	}
	r.cancel()
	r.u.Abort()
	if st := r.c.Snapshot(); st.Exported != 7 || st.InDoubt != 7 || r.u.Pending() != (stream.Count{}) {
		t.Fatalf("%+v", st)
	}
}

// TestNeverSentIsDroppedAtStop: an agent that refuses connections never had
// the request: Close does not wait for it, Stop drops it.
func TestNeverSentIsDroppedAtStop(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	r := newRig(t, "http://"+addr+TracesPath, Config{MaxInFlight: 1})
	r.u.retryDelay = func(time.Duration) time.Duration { return time.Millisecond }
	r.send(1, 6, 100)
	r.settle(t) // settled: only waiting to retry an agent it never reached
	for r.c.Snapshot().LastError == nil {
		<-r.u.Events()
	}
	r.cancel()
	r.u.Abort()
	if st := r.c.Snapshot(); st.DroppedAtStop != 6 || st.Exported != 0 || st.InDoubt != 0 || st.Resent != 0 || st.LastError == nil {
		t.Fatalf("%+v", st)
	}
}

// TestHTTP2OverTLS: HTTP/2 when TLS negotiates it, with the caller's roots.
func TestHTTP2OverTLS(t *testing.T) {
	var proto atomic.Int64
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto.Store(int64(r.ProtoMajor))
		io.Copy(io.Discard, r.Body)
	}))
	s.EnableHTTP2 = true
	s.StartTLS()
	defer s.Close()
	roots := x509.NewCertPool()
	roots.AddCert(s.Certificate())
	tc := s.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	tc.RootCAs = roots
	r := newRig(t, s.URL+TracesPath, Config{MaxInFlight: 2, TLS: tc})
	r.send(1, 3, 100)
	r.settle(t)
	if st := r.c.Snapshot(); st.Exported != 3 || proto.Load() != 2 {
		t.Fatalf("%+v over HTTP/%d", st, proto.Load())
	}
}

// TestModel sends seeded random sequences of requests, up to 8 in flight,
// to an agent that answers each request by a plan drawn per request: 0-2
// retryable failures (429 with Retry-After in seconds, 503 with an HTTP
// date, 502, 504, no answer after the whole body, a reset with the body
// partly read), possibly slow, then success, a partial success, or a final
// refusal (400, 401, 413, 500). Against the reference: the agent saw every
// request id exactly 1 + its failures times (nothing lost, no attempt
// beyond the plan), and the counters add up to the plans.
func TestModel(t *testing.T) {
	type plan struct {
		fails   []int // HTTP codes; 0: no answer; 1: reset mid-body
		final   int   // 0: accepted
		partial int
		slow    bool
	}
	retryCodes := []int{429, 502, 503, 504, 0, 1}
	finalCodes := []int{400, 401, 413, 500}
	var (
		mu    sync.Mutex
		plans map[uint32]plan
		calls map[uint32]int
	)
	s := startScript(t, func(_ int64, head []byte, w http.ResponseWriter, r *http.Request) {
		id := binary.BigEndian.Uint32(head)
		mu.Lock()
		p := plans[id]
		n := calls[id]
		calls[id]++
		mu.Unlock()
		if p.slow {
			time.Sleep(3 * time.Millisecond)
		}
		if n < len(p.fails) {
			switch c := p.fails[n]; c {
			case 0:
				noAnswer(w, r)
			case 1:
				reset(w, r)
			case 429:
				w.Header().Set("Retry-After", "1")
				fail(w, r, c, "not now")
			case 503:
				w.Header().Set("Retry-After", time.Now().Add(2*time.Second).UTC().Format(http.TimeFormat))
				fail(w, r, c, "not now")
			default:
				fail(w, r, c, "not now")
			}
			return
		}
		if p.final != 0 {
			fail(w, r, p.final, "refused")
			return
		}
		io.Copy(io.Discard, r.Body)
		if p.partial > 0 {
			w.Write(partial(p.partial, "some bad"))
		}
	})
	for seed := range 12 {
		rnd := rand.New(rand.NewPCG(uint64(seed), 22))
		mu.Lock()
		plans, calls = map[uint32]plan{}, map[uint32]int{}
		mu.Unlock()
		s.maxSeen.Store(0)
		inFlight := 1 + rnd.IntN(8)
		r := newRig(t, s.srv.URL+TracesPath, Config{MaxInFlight: inFlight, Gzip: seed%2 == 1, MaxBackoff: 2 * time.Millisecond})
		var wantExported, wantRejected, wantOversize, wantFailures, resentMin, resentMax int
		const requests = 40
		for id := uint32(1); id <= requests; id++ {
			items := 1 + rnd.IntN(20)
			var p plan
			for range rnd.IntN(3) {
				p.fails = append(p.fails, retryCodes[rnd.IntN(len(retryCodes))])
			}
			p.slow = rnd.IntN(4) == 0
			switch k := rnd.IntN(10); {
			case k < 6:
			case k < 8:
				p.partial = 1 + rnd.IntN(items)
			default:
				p.final = finalCodes[rnd.IntN(len(finalCodes))]
			}
			mu.Lock()
			plans[id] = p
			mu.Unlock()
			wantFailures += len(p.fails)
			for _, f := range p.fails {
				resentMax += items
				if f != 1 { // a reset may come before the body was all written
					resentMin += items
				}
			}
			switch {
			case p.final == 413:
				wantOversize += items
			case p.final != 0:
				wantRejected += items
			default:
				wantExported += items - p.partial
				wantRejected += p.partial
			}
			// Some large bodies: a reset finds them partly read.
			r.send(id, items, 8+rnd.IntN(3)*(128<<10))
		}
		// Settled comes early for a request whose last attempt was reset
		// before it was written (it waits to retry): wait for all.
		deadline := time.After(time.Minute)
		for r.u.Pending() != (stream.Count{}) {
			select {
			case <-r.u.Events():
			case <-deadline:
				t.Fatalf("seed %d: %d pending", seed, r.u.Pending())
			}
		}
		mu.Lock()
		for id := uint32(1); id <= requests; id++ {
			if got, want := calls[id], 1+len(plans[id].fails); got != want {
				t.Errorf("seed %d: request %d reached the agent %d times, its plan says %d", seed, id, got, want)
			}
		}
		mu.Unlock()
		st := r.c.Snapshot()
		if int(st.Exported) != wantExported || int(st.Rejected) != wantRejected || int(st.Oversize) != wantOversize ||
			int(st.SendFailures) != wantFailures || int(st.Resent) < resentMin || int(st.Resent) > resentMax {
			t.Fatalf("seed %d: exported %d rejected %d oversize %d failures %d resent %d; model %d %d %d %d %d..%d",
				seed, st.Exported, st.Rejected, st.Oversize, st.SendFailures, st.Resent,
				wantExported, wantRejected, wantOversize, wantFailures, resentMin, resentMax)
		}
		if m := s.maxSeen.Load(); m > int64(inFlight) {
			t.Errorf("seed %d: %d requests in flight, limit %d", seed, m, inFlight)
		}
		r.cancel()
		r.u.Abort()
	}
}

// TestConnectionsAgeOut: with MaxConnAge, a connection that has carried
// requests that long is closed after its next request, and the request
// after that dials anew (a fleet behind the name gets its share). The test
// waits for the age to pass (the epoch), not for a clock.
func TestConnectionsAgeOut(t *testing.T) {
	s := startScript(t, ok)
	r := newRig(t, s.srv.URL+TracesPath, Config{MaxInFlight: 1, MaxConnAge: time.Millisecond})
	for i := range 5 {
		e := r.u.epoch.Load()
		for r.u.epoch.Load() == e {
			time.Sleep(time.Millisecond) // until the age has passed: a condition, any machine
		}
		r.send(uint32(i), 1, 100)
		r.settle(t)
	}
	if c := s.conns.Load(); c < 3 {
		t.Fatalf("%d connections for 5 requests each after an age had passed, want a new one after each close", c)
	}
	if st := r.c.Snapshot(); st.Exported != 5 || st.SendFailures != 0 {
		t.Fatalf("%+v", st)
	}
}
