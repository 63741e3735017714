// Package otlpagent is the OTLP test agent: a gRPC server on 127.0.0.1 that
// answers the OTLP trace and metrics Export calls, keeps every request's
// bytes (or, in discard mode, only counts), counts span ids to find losses
// and duplicates, and can delay, refuse or partly accept calls, and be
// killed and restarted on the same address.
//
// It reads requests with protowire only, so that it depends on no generated
// type: tests decode the kept bytes with whichever types they check.
package otlpagent

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	_ "google.golang.org/grpc/encoding/gzip" // the exporter may compress
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/zerocensus/ocagent/internal/countagent"
	"github.com/zerocensus/ocagent/internal/rawcodec"
)

// The methods it answers.
const (
	TraceMethod   = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
	MetricsMethod = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
)

// Answer decides the response to one call: an error status, or the number
// of items (spans, or data points) to reject as a partial success.
type Answer func(method string, n int) (rejected int, err error)

// Option configures Start.
type Option func(*Agent)

// WithDelay makes every call wait d before it is answered.
func WithDelay(d time.Duration) Option { return func(a *Agent) { a.delay = d } }

// WithDiscard keeps no request bytes, only the counts and span ids.
func WithDiscard() Option { return func(a *Agent) { a.discard = true } }

// WithAnswer scripts the answers (default: accept everything).
func WithAnswer(f Answer) Option { return func(a *Agent) { a.answer = f } }

// WithHold makes each call for which hold returns true (n: the call's
// number on its method, from 1) be taken and never answered: its spans are
// counted as received (the worst case: the agent may have processed them),
// and the call ends only when the client gives up or the agent is stopped.
func WithHold(hold func(method string, n int) bool) Option { return func(a *Agent) { a.hold = hold } }

// Request is one call as received.
type Request struct {
	Method  string
	Headers metadata.MD
	Body    []byte
}

// Agent is a running (or stopped) OTLP agent.
type Agent struct {
	addr    string
	delay   time.Duration
	discard bool
	answer  Answer
	hold    func(method string, n int) bool

	srvMu sync.Mutex
	srv   *grpc.Server

	mu       sync.Mutex
	changed  chan struct{}
	reqs     []Request
	calls    map[string]int
	spans    int64 // spans received, duplicates included
	metrics  int64
	points   int64
	ids      map[[8]byte]uint32
	active   int
	maxInFly int
}

// Start listens on 127.0.0.1:0 and serves until Stop.
func Start(opts ...Option) (*Agent, error) {
	a := &Agent{changed: make(chan struct{}), calls: map[string]int{}, ids: map[[8]byte]uint32{}}
	for _, o := range opts {
		o(a)
	}
	if err := a.listen("127.0.0.1:0", 1); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *Agent) listen(addr string, tries int) error {
	var lis net.Listener
	var err error
	for i := 0; i < tries; i++ {
		if i > 0 {
			time.Sleep(20 * time.Millisecond)
		}
		if lis, err = net.Listen("tcp", addr); err == nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("otlpagent: listen: %w", err)
	}
	a.addr = lis.Addr().String()
	srv := grpc.NewServer(grpc.ForceServerCodecV2(rawcodec.Codec{}), grpc.UnknownServiceHandler(a.handle))
	a.srvMu.Lock()
	a.srv = srv
	a.srvMu.Unlock()
	go func() { _ = srv.Serve(lis) }()
	return nil
}

// Addr is the "127.0.0.1:port" it listens on (the same after Restart).
func (a *Agent) Addr() string { return a.addr }

// Stop kills the agent abruptly: listener and connections closed, calls
// cut; dials are refused until Restart.
func (a *Agent) Stop() {
	a.srvMu.Lock()
	defer a.srvMu.Unlock()
	if a.srv != nil {
		a.srv.Stop()
		a.srv = nil
	}
}

// Restart stops the agent (if running) and serves again on the same address.
func (a *Agent) Restart() error {
	a.Stop()
	return a.listen(a.addr, 100)
}

var errUnknown = status.Error(codes.Unimplemented, "otlpagent: unknown method")

func (a *Agent) handle(_ any, st grpc.ServerStream) error {
	method, _ := grpc.MethodFromServerStream(st)
	if method != TraceMethod && method != MetricsMethod {
		return errUnknown
	}
	var body []byte
	if err := st.RecvMsg(&body); err != nil {
		return err
	}
	a.mu.Lock()
	a.active++
	a.maxInFly = max(a.maxInFly, a.active)
	a.calls[method]++
	n := a.calls[method]
	a.mu.Unlock()
	defer func() { a.mu.Lock(); a.active--; a.mu.Unlock() }()
	if a.hold != nil && a.hold(method, n) {
		a.record(method, st, body)
		<-st.Context().Done()
		return st.Context().Err()
	}
	if a.delay > 0 {
		select {
		case <-time.After(a.delay):
		case <-st.Context().Done():
			return st.Context().Err()
		}
	}
	rejected := 0
	if a.answer != nil {
		var err error
		if rejected, err = a.answer(method, n); err != nil {
			return err
		}
	}
	a.record(method, st, body)
	resp := partial(rejected)
	return st.SendMsg(&resp)
}

func (a *Agent) record(method string, st grpc.ServerStream, body []byte) {
	md, _ := metadata.FromIncomingContext(st.Context())
	a.mu.Lock()
	defer a.mu.Unlock()
	if method == TraceMethod {
		scopes(body, func(ss []byte) {
			countagent.ForEach(ss, 2, func(span []byte) {
				a.spans++
				countagent.ForEach(span, 2, func(id []byte) {
					var k [8]byte
					copy(k[:], id)
					a.ids[k]++
				})
			})
		})
	} else {
		scopes(body, func(ss []byte) {
			countagent.ForEach(ss, 2, func(m []byte) {
				a.metrics++
				a.points += int64(countPoints(m))
			})
		})
	}
	if !a.discard {
		a.reqs = append(a.reqs, Request{Method: method, Headers: md.Copy(), Body: body})
	}
	close(a.changed)
	a.changed = make(chan struct{})
}

// partial encodes a response whose partial_success rejects n items (empty
// when n is 0).
func partial(n int) []byte {
	if n == 0 {
		return nil
	}
	ps := protowire.AppendTag(nil, 1, protowire.VarintType)
	ps = protowire.AppendVarint(ps, uint64(n))
	ps = protowire.AppendTag(ps, 2, protowire.BytesType)
	ps = protowire.AppendString(ps, fmt.Sprintf("otlpagent rejected %d", n))
	b := protowire.AppendTag(nil, 1, protowire.BytesType)
	return protowire.AppendBytes(b, ps)
}

// scopes calls fn with each ScopeSpans (ScopeMetrics) of a request.
func scopes(req []byte, fn func([]byte)) {
	countagent.ForEach(req, 1, func(rs []byte) { countagent.ForEach(rs, 2, fn) })
}

// countPoints counts the data points of a Metric: field 2 of its data field
// (gauge 5, sum 7, histogram 9, exponential histogram 10, summary 11).
func countPoints(m []byte) int {
	n := 0
	for _, f := range []protowire.Number{5, 7, 9, 10, 11} {
		countagent.ForEach(m, f, func(data []byte) {
			countagent.ForEach(data, 1, func([]byte) { n++ })
		})
	}
	return n
}

// Requests returns a copy of every request kept, in order of arrival.
func (a *Agent) Requests() []Request {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Request(nil), a.reqs...)
}

// SpanIDs reports how many distinct span ids arrived and how many arrivals
// repeated an id already seen.
func (a *Agent) SpanIDs() (unique, duplicates int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, n := range a.ids {
		unique++
		duplicates += int64(n - 1)
	}
	return unique, duplicates
}

// Counts are what arrived: spans (duplicates included), metrics and data
// points, and the most calls that were in flight at once.
type Counts struct{ Spans, Metrics, Points, MaxInFlight int64 }

// Counts reads the counters.
func (a *Agent) Counts() Counts {
	a.mu.Lock()
	defer a.mu.Unlock()
	return Counts{a.spans, a.metrics, a.points, int64(a.maxInFly)}
}

// WaitSpans waits until n distinct span ids arrived, or timeout.
func (a *Agent) WaitSpans(n int64, timeout time.Duration) error {
	return a.wait(timeout, func() bool { u, _ := a.spanIDsLocked(); return u >= n })
}

// WaitMetrics waits until n metrics arrived, or timeout.
func (a *Agent) WaitMetrics(n int64, timeout time.Duration) error {
	return a.wait(timeout, func() bool { return a.metrics >= n })
}

func (a *Agent) spanIDsLocked() (int64, int64) {
	var u, d int64
	for _, n := range a.ids {
		u++
		d += int64(n - 1)
	}
	return u, d
}

var errTimeout = errors.New("otlpagent: timed out")

func (a *Agent) wait(timeout time.Duration, done func() bool) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		a.mu.Lock()
		ok, ch := done(), a.changed
		a.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-t.C:
			return errTimeout
		}
	}
}

// SpanIDSet returns how many times each span id arrived (a copy).
func (a *Agent) SpanIDSet() map[[8]byte]uint32 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.ids)
}
