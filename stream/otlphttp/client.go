// Package otlphttp is the OTLP/HTTP transport (http/protobuf): each request
// is one POST of the same bytes the OTLP/gRPC transport sends as its Export
// message, acknowledged by the agent's answer, with a bounded number of
// requests in flight. It follows the OTLP specification's OTLP/HTTP rules:
// only 429, 502, 503, 504 and requests that got no response are retried,
// with the exporter's backoff or the server's Retry-After (capped by the
// backoff limit); every other answer is final and counted.
//
// Accounting is otlpgrpc's: items are exported only when acknowledged (200,
// less what a partial_success rejects), in doubt only when a request was
// written and left unanswered at Stop, dropped at stop when no attempt
// reached the agent unanswered.
package otlphttp

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"github.com/klauspost/compress/gzip"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/zerocensus/ocagent/stream"
)

// The URL paths of the OTLP/HTTP signals.
const (
	TracesPath  = "/v1/traces"
	MetricsPath = "/v1/metrics"
)

// maxAnswer is how much of an answer's body is read and decoded; the rest
// is drained (up to maxDrain) so that the connection can be reused, or the
// connection is dropped.
const (
	maxAnswer = 64 << 10
	maxDrain  = 1 << 20
)

// Config describes one signal's requests.
type Config struct {
	URL         string            // the full URL, e.g. http://localhost:4318/v1/traces
	Headers     map[string]string // sent with every request
	Gzip        bool              // Content-Encoding: gzip
	MaxInFlight int               // requests in flight at once
	Timeout     time.Duration     // each attempt (OTEL_EXPORTER_OTLP_TIMEOUT)
	MaxBackoff  time.Duration     // caps the backoff and the server's Retry-After
	// Points makes partial success count data points (metrics).
	Points bool
	// MaxConnAge bounds how long a connection carries requests (0: no
	// bound): every MaxConnAge (drawn from [0.8, 1] of it), each worker
	// closes its connection after its next request, so that the next one
	// dials anew and resolves the name again, and a fleet that scaled up
	// behind it gets requests (net/http keeps a connection forever).
	MaxConnAge time.Duration
	// TLS is the client's TLS configuration for https URLs (nil: the
	// system's roots).
	TLS *tls.Config
	// Client, when set, sends the requests instead of one made from TLS
	// (tests).
	Client *http.Client
}

var _ stream.Transport = (*Client)(nil)

// Client is the OTLP/HTTP transport of one signal. Ready, Send, SendRaw,
// Close and Abort are called by the pipeline's scheduler only; the requests
// run on MaxInFlight worker goroutines, each owning one request at a time.
//
// Ownership: Send hands the request's reference to a worker, which frees it
// when the request is done (acknowledged, refused, or counted at Stop).
// net/http reads the body (the encoded bytes, or the worker's gzip buffer)
// through a reader the worker owns; net/http closes a request body when it
// is done with it, possibly after Do returned (http.Client.Do: "The
// request Body ... will be closed by the underlying Transport, even on
// errors"; the write loop may outlive an early answer), so each attempt
// waits for that Close before the bytes are reused or freed.
type Client struct {
	ctx    context.Context
	cfg    Config
	c      *stream.Counters
	client *http.Client
	own    *http.Transport // made here: idle connections closed at the end
	header http.Header     // the fixed headers, copied into each request
	events chan struct{}
	free   chan *worker
	all    []*worker
	wg     sync.WaitGroup

	inFlight   atomic.Int64
	pending    atomic.Int64
	pendingPts atomic.Int64
	unsent     atomic.Int64  // in flight, waiting to retry an attempt never written
	epoch      atomic.Uint64 // bumped every MaxConnAge: a worker seeing it change closes its connection

	// retryDelay, when set (tests), is told each delay before a retry and
	// returns the time to wait instead.
	retryDelay func(time.Duration) time.Duration
}

type worker struct {
	u    *Client
	work chan struct{}
	buf  mem.Buffer
	n    stream.Count
	raw  bool
	bo   stream.Backoff

	body  body
	gz    *gzip.Writer
	gzBuf bytes.Buffer
	ans   []byte // the answer's body, reused

	trace *httptrace.ClientTrace
	ctx   context.Context // the base context of every attempt, with trace
	// Of the current attempt: written (the request went out whole),
	// answered (a response's first byte came back).
	written, answered atomic.Bool
	// Over the request's attempts.
	wasWritten, doubt bool
	epoch             uint64 // the connection epoch this worker last closed for
}

// New starts the workers of one signal; ctx ends them (the exporter's Stop).
func New(ctx context.Context, cfg Config, c *stream.Counters) *Client {
	cfg.MaxInFlight = max(cfg.MaxInFlight, 1)
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 10 * time.Second
	}
	u := &Client{ctx: ctx, cfg: cfg, c: c, client: cfg.Client,
		events: make(chan struct{}, 1), free: make(chan *worker, cfg.MaxInFlight)}
	if u.client == nil {
		u.own = NewHTTPTransport(cfg.TLS, cfg.MaxInFlight)
		// A redirect is an answer, never followed: net/http would follow a
		// 301, 302 or 303 with a GET without the body, and count whatever
		// that got as the agent's answer to the request.
		u.client = &http.Client{Transport: u.own, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	u.header = make(http.Header, len(cfg.Headers)+3)
	for k, v := range cfg.Headers {
		u.header.Set(k, v)
	}
	u.header.Set("Content-Type", "application/x-protobuf")
	if cfg.Gzip {
		u.header.Set("Content-Encoding", "gzip")
	}
	if u.header.Get("User-Agent") == "" {
		u.header.Set("User-Agent", "zerocensus-ocagent")
	}
	if cfg.MaxConnAge > 0 {
		go u.ageConnections()
	}
	for range cfg.MaxInFlight {
		k := &worker{u: u, work: make(chan struct{}, 1), ans: make([]byte, 0, 512)}
		k.trace = &httptrace.ClientTrace{
			WroteRequest: func(i httptrace.WroteRequestInfo) {
				if i.Err == nil {
					k.written.Store(true)
				}
			},
			GotFirstResponseByte: func() { k.answered.Store(true) },
		}
		k.ctx = httptrace.WithClientTrace(ctx, k.trace)
		u.all = append(u.all, k)
		u.free <- k
		u.wg.Add(1)
		go k.run()
	}
	return u
}

// ageConnections bumps the connection epoch every MaxConnAge (jittered)
// until the exporter stops.
func (u *Client) ageConnections() {
	t := time.NewTimer(u.connAge())
	defer t.Stop()
	for {
		select {
		case <-t.C:
			u.epoch.Add(1)
			t.Reset(u.connAge())
		case <-u.ctx.Done():
			return
		}
	}
}

func (u *Client) connAge() time.Duration {
	a := u.cfg.MaxConnAge
	return a - time.Duration(rand.Int64N(int64(a)/5+1))
}

// NewHTTPTransport is the net/http transport of the exporter's requests:
// proxies from the environment (HTTPS_PROXY, HTTP_PROXY, NO_PROXY), HTTP/2
// when TLS negotiates it, keep-alive connections, up to inFlight of them
// idle per host so that each request in flight keeps its connection.
func NewHTTPTransport(tc *tls.Config, inFlight int) *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   30 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSClientConfig:       tc,
		ForceAttemptHTTP2:     true, // a custom TLS config would otherwise turn HTTP/2 off
		MaxIdleConns:          max(inFlight, 2) * 2,
		MaxIdleConnsPerHost:   max(inFlight, 2),
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

func (u *Client) signal() {
	select {
	case u.events <- struct{}{}:
	default:
	}
}

// Ready implements stream.Transport: busy while every worker has a request.
func (u *Client) Ready() error {
	if len(u.free) == 0 {
		return stream.ErrBusy
	}
	return nil
}

// Send implements stream.Transport.
func (u *Client) Send(buf mem.Buffer, n stream.Count) { u.start(buf, n, false) }

// SendRaw implements stream.Transport: a caller-built request waits for a
// free worker and takes the same road.
func (u *Client) SendRaw(buf mem.Buffer, items int) error {
	select {
	case k := <-u.free:
		u.free <- k
	case <-u.ctx.Done():
		buf.Free()
		return stream.ErrStopped
	}
	u.start(buf, stream.Count{Items: items}, true)
	return nil
}

func (u *Client) start(buf mem.Buffer, n stream.Count, raw bool) {
	k := <-u.free
	k.buf, k.n, k.raw = buf, n, raw
	u.inFlight.Add(1)
	u.pendingPts.Add(int64(n.Points))
	u.pending.Add(int64(n.Items))
	k.work <- struct{}{}
}

// Events implements stream.Transport: a request finished.
func (u *Client) Events() <-chan struct{} { return u.events }

// Service implements stream.Transport; the workers count as they go.
func (u *Client) Service() {}

// Pending implements stream.Transport.
func (u *Client) Pending() stream.Count {
	return stream.Count{Items: int(u.pending.Load()), Points: int(u.pendingPts.Load())}
}

// Settled implements stream.Transport: no request in flight, or only
// requests waiting to retry an agent they never reached.
func (u *Client) Settled() bool { return u.inFlight.Load() == u.unsent.Load() }

// Close implements stream.Transport: it waits for the requests in flight.
func (u *Client) Close(ctx context.Context) {
	for !u.Settled() {
		select {
		case <-u.events:
		case <-ctx.Done():
			return
		case <-u.ctx.Done():
			return
		}
	}
}

// Abort implements stream.Transport: the context has ended, so every worker
// finishes its request (in doubt, or dropped at stop) and exits; the idle
// connections are closed.
func (u *Client) Abort() {
	u.wg.Wait()
	if u.own != nil {
		u.own.CloseIdleConnections()
	}
}

func (k *worker) run() {
	u := k.u
	defer u.wg.Done()
	for {
		select {
		case <-k.work:
		case <-u.ctx.Done():
			return
		}
		k.do()
		k.buf.Free()
		k.buf = nil
		u.pending.Add(-int64(k.n.Items))
		u.pendingPts.Add(-int64(k.n.Points))
		u.inFlight.Add(-1)
		u.free <- k
		u.signal()
	}
}

// payload is the request body: the encoded message, or its gzip form,
// compressed once for all the request's attempts.
func (k *worker) payload() []byte {
	b := k.buf.ReadOnlyData()
	if !k.u.cfg.Gzip {
		return b
	}
	k.gzBuf.Reset()
	if k.gz == nil {
		k.gz, _ = gzip.NewWriterLevel(&k.gzBuf, gzip.DefaultCompression)
	} else {
		k.gz.Reset(&k.gzBuf)
	}
	_, _ = k.gz.Write(b) // a bytes.Buffer never fails
	_ = k.gz.Close()
	return k.gzBuf.Bytes()
}

// do makes the request's attempts until one is answered finally or Stop
// ends the context, and observes its duration under the final status
// (stream.CodeStopped: cut by Stop).
func (k *worker) do() {
	start := time.Now()
	code := k.attempts()
	k.u.c.Durations.Observe(time.Since(start), code)
}

// attempts returns the final status: the last answer's HTTP status, or
// stream.CodeStopped.
func (k *worker) attempts() int {
	u := k.u
	k.bo.Reset()
	k.wasWritten, k.doubt = false, false
	data := k.payload()
	for attempt := 0; ; attempt++ {
		if attempt > 0 && !k.raw && k.wasWritten {
			u.c.Resent(k.n.Items)
		}
		k.written.Store(false)
		k.answered.Store(false)
		code, delay, err := k.attempt(data)
		written, answered := k.written.Load(), k.answered.Load() || code != 0
		k.wasWritten = k.wasWritten || written
		k.doubt = k.doubt || (written && !answered)
		if err == nil {
			k.acknowledged()
			return code
		}
		if u.ctx.Err() != nil {
			k.atStop()
			return stream.CodeStopped
		}
		if !retryable(code) {
			k.refused(code, err)
			return code
		}
		u.c.SendFailed()
		u.c.SetErr(err)
		if delay <= 0 {
			delay = k.bo.Next(u.cfg.MaxBackoff)
		}
		delay = min(delay, u.cfg.MaxBackoff)
		if u.retryDelay != nil {
			delay = u.retryDelay(delay)
		}
		if !written {
			u.unsent.Add(1)
			u.signal() // Flush and Close need not wait for it
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-u.ctx.Done():
		}
		t.Stop()
		if !written {
			u.unsent.Add(-1)
		}
		if u.ctx.Err() != nil {
			k.atStop()
			return stream.CodeStopped
		}
	}
}

// errStatus is an answer other than 200: its code, the server's
// google.rpc.Status message if any.
type errStatus struct {
	code    int
	message string
}

func (e *errStatus) Error() string {
	if e.message == "" {
		return fmt.Sprintf("otlphttp: %d %s", e.code, http.StatusText(e.code))
	}
	return fmt.Sprintf("otlphttp: %d %s: %s", e.code, http.StatusText(e.code), e.message)
}

// StatusCode is the HTTP status the agent answered.
func (e *errStatus) StatusCode() int { return e.code }

// attempt makes one POST. It returns the response's status code (0 when
// there was none), the server's Retry-After delay, and nil for a 2xx answer
// whose partial success it has read into k.ans.
func (k *worker) attempt(data []byte) (code int, retryAfter time.Duration, err error) {
	u := k.u
	ctx, cancel := context.WithTimeout(k.ctx, u.cfg.Timeout)
	defer cancel()
	k.body.reset(data)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.cfg.URL, &k.body)
	if err != nil {
		return 0, 0, err
	}
	req.ContentLength = int64(len(data))
	// Shared by every request: net/http only reads a client request's
	// headers (it copies the request before adding any). No GetBody: net/http
	// then never replays the body on its own, so that every attempt is one
	// this worker made, counted and waited for.
	req.Header = u.header
	if e := u.epoch.Load(); e != k.epoch {
		// The connection has carried requests for MaxConnAge: closed
		// after this one, the next dials (and resolves) anew.
		k.epoch, req.Close = e, true
	}
	resp, err := u.client.Do(req)
	if err != nil {
		k.body.wait()
		if ctx.Err() != nil && u.ctx.Err() == nil {
			return 0, 0, fmt.Errorf("otlphttp: the request outlived the export timeout: %w", err)
		}
		return 0, 0, err
	}
	ans, _ := k.readAnswer(resp)
	k.body.wait()
	code = resp.StatusCode
	if code >= 200 && code < 300 {
		// The agent took the request. An answer cut short only loses its
		// partial_success, which is then read as far as it came.
		k.ans = ans
		return code, 0, nil
	}
	es := &errStatus{code: code}
	if isProtobuf(resp.Header.Get("Content-Type")) {
		es.message = statusMessage(ans)
	} else if len(ans) > 0 && len(ans) <= 512 {
		es.message = string(bytes.TrimSpace(ans))
	}
	if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
		retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return code, retryAfter, es
}

// readAnswer reads up to maxAnswer of the body into the worker's buffer,
// drains the rest (so the connection can be reused) and closes it.
func (k *worker) readAnswer(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	b := k.ans[:0]
	for len(b) < maxAnswer {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := resp.Body.Read(b[len(b):min(cap(b), maxAnswer)])
		b = b[:len(b)+n]
		if err == io.EOF {
			k.ans = b
			return b, nil
		}
		if err != nil {
			k.ans = b
			return b, err
		}
	}
	k.ans = b
	_, err := io.CopyN(io.Discard, resp.Body, maxDrain)
	if err == io.EOF {
		err = nil
	}
	return b, err
}

func isProtobuf(ct string) bool {
	return ct == "" || ct == "application/x-protobuf" || ct == "application/protobuf"
}

// retryable: the specification's retryable answers, and none at all.
func retryable(code int) bool {
	switch code {
	case 0, http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// parseRetryAfter reads a Retry-After value: delay-seconds or an HTTP date
// (RFC 9110 10.2.3). 0 when absent, malformed or in the past.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

func (k *worker) acknowledged() {
	u := k.u
	u.c.SetErr(nil)
	if k.raw {
		return
	}
	rejected, message, err := partialSuccess(k.ans)
	if err != nil {
		u.c.SetErr(fmt.Errorf("otlphttp: the agent's answer: %w", err))
	}
	// As otlpgrpc's: what the agent refused, at most what was sent.
	switch {
	case u.cfg.Points:
		r := int(min(rejected, int64(k.n.Points)))
		u.c.Exported(stream.Count{Items: k.n.Items, Points: k.n.Points - r}, k.buf.Len())
		u.c.PointsRejected(r)
	default:
		r := int(min(rejected, int64(k.n.Items)))
		u.c.Exported(stream.Count{Items: k.n.Items - r}, k.buf.Len())
		u.c.Rejected(r)
	}
	if message != "" {
		u.c.SetErr(fmt.Errorf("OTLP partial success: %s", message))
	}
}

// refused counts a request the agent will never take: 413 as oversize,
// anything else as rejected.
func (k *worker) refused(code int, err error) {
	k.u.c.SetErr(err)
	switch {
	case k.raw:
	case code == http.StatusRequestEntityTooLarge:
		k.u.c.Oversize(k.n)
	default:
		k.u.c.Refused(k.n, code)
	}
}

// atStop: as otlpgrpc's.
func (k *worker) atStop() {
	if k.raw {
		return
	}
	if k.doubt {
		k.u.c.Exported(k.n, k.buf.Len())
		k.u.c.InDoubt(k.n.Items)
		return
	}
	k.u.c.DroppedAtStop(k.n.Items)
}

// partialSuccess reads an Export response's partial_success (field 1 of
// both responses: {rejected = 1, error_message = 2}).
func partialSuccess(b []byte) (rejected int64, message string, err error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, "", protowire.ParseError(n)
		}
		b = b[n:]
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return 0, "", protowire.ParseError(m)
		}
		if num == 1 && typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(b)
			rejected, message = partialFields(v)
		}
		b = b[m:]
	}
	return rejected, message, nil
}

func partialFields(b []byte) (rejected int64, message string) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return
		}
		b = b[n:]
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return
		}
		switch {
		case num == 1 && typ == protowire.VarintType:
			v, _ := protowire.ConsumeVarint(b)
			rejected = int64(v)
		case num == 2 && typ == protowire.BytesType:
			v, _ := protowire.ConsumeBytes(b)
			message = string(v)
		}
		b = b[m:]
	}
	return
}

// statusMessage reads google.rpc.Status's message (field 2); "" if none.
func statusMessage(b []byte) string {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return ""
		}
		b = b[n:]
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return ""
		}
		if num == 2 && typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(b)
			return string(v)
		}
		b = b[m:]
	}
	return ""
}

// body is a request body over bytes the worker owns, reused from attempt to
// attempt. net/http may still read it from its write loop after Do
// returned (HTTP/2 with an early answer, a broken connection); wait blocks
// until net/http has closed it, so that the bytes are not freed under it.
type body struct {
	r      bytes.Reader
	mu     sync.Mutex
	open   bool
	closed chan struct{}
}

func (b *body) reset(data []byte) {
	b.r.Reset(data)
	b.mu.Lock()
	b.open = true
	if b.closed == nil {
		b.closed = make(chan struct{}, 1)
	}
	select { // a stale close of an earlier attempt
	case <-b.closed:
	default:
	}
	b.mu.Unlock()
}

func (b *body) Read(p []byte) (int, error) { return b.r.Read(p) }

// Close implements io.Closer; net/http calls it once it is done with the
// body.
func (b *body) Close() error {
	b.mu.Lock()
	if b.open {
		b.open = false
		b.closed <- struct{}{}
	}
	b.mu.Unlock()
	return nil
}

// wait returns once the body is closed.
func (b *body) wait() {
	b.mu.Lock()
	open := b.open
	b.mu.Unlock()
	if open {
		<-b.closed
		return
	}
	select {
	case <-b.closed:
	default:
	}
}
