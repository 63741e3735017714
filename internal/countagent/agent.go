// Package countagent is the benchmarks' peer: a gRPC server on 127.0.0.1 that
// answers every method of the OpenCensus agent and of the OTLP collector,
// reads every message, decodes nothing and counts what it received: messages,
// bytes and items (spans or metrics).
//
// Items are counted by walking only the top-level repeated field of each
// request with protowire, never by a full decode:
//
//	OpenCensus ExportTraceServiceRequest:   spans = 2
//	OpenCensus ExportMetricsServiceRequest: metrics = 2
//	OTLP ExportTraceServiceRequest:   resource_spans = 1 -> scope_spans = 2 -> spans = 2
//	OTLP ExportMetricsServiceRequest: resource_metrics = 1 -> scope_metrics = 2 -> metrics = 2
//
// The benchmarks run it in a child process (StartProcess, ServeIfChild) so
// that allocation counts are the client's alone; Start runs it in-process.
package countagent

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/gzip" // a client may compress
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/stats"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/zerocensus/ocagent/stream/compress"
)

// A client may compress with zstd or snappy too (gzip stays gRPC's own).
func init() { compress.RegisterDecompressors() }

// Kind is the stream a count belongs to.
type Kind int

// The counted streams.
const (
	OCTrace     Kind = iota // /opencensus.proto.agent.trace.v1.TraceService/Export: spans
	OCMetrics               // /opencensus.proto.agent.metrics.v1.MetricsService/Export: metrics
	OTLPTrace               // /opentelemetry.proto.collector.trace.v1.TraceService/Export: spans
	OTLPMetrics             // /opentelemetry.proto.collector.metrics.v1.MetricsService/Export: metrics
	Other                   // any other method (the OpenCensus Config stream, ...): messages and bytes only
	numKinds
)

var kindNames = [numKinds]string{"octrace", "ocmetrics", "otlptrace", "otlpmetrics", "other"}

func (k Kind) String() string {
	if k < 0 || k >= numKinds {
		return fmt.Sprintf("kind(%d)", int(k))
	}
	return kindNames[k]
}

func parseKind(s string) (Kind, error) {
	for k, n := range kindNames {
		if n == s {
			return Kind(k), nil
		}
	}
	return 0, fmt.Errorf("unknown kind %q", s)
}

// kindOf maps a full gRPC method name to its counter and tells whether the
// method is unary (OTLP Export answers one response per request; the
// OpenCensus Export streams are bidirectional and never answered).
func kindOf(method string) (k Kind, unary bool) {
	switch method {
	case "/opencensus.proto.agent.trace.v1.TraceService/Export":
		return OCTrace, false
	case "/opencensus.proto.agent.metrics.v1.MetricsService/Export":
		return OCMetrics, false
	case "/opentelemetry.proto.collector.trace.v1.TraceService/Export":
		return OTLPTrace, true
	case "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export":
		return OTLPMetrics, true
	}
	return Other, strings.HasPrefix(method, "/opentelemetry.")
}

// Counts are cumulative since the agent started.
type Counts struct {
	Items    int64 // spans or metrics
	Messages int64
	Bytes    int64 // message bytes as received (after decompression)
	Wire     int64 // message bytes as sent (compressed, if so), with gRPC's 5-byte message header
}

type counters struct {
	items, messages, bytes, wire atomic.Int64
}

// Window is the agent's flow-control window: as large as the ones gRPC's BDP
// estimation grows to on a fast link, so
// that no peer pays for flow-control frames a long-lived connection would
// not see.
const Window = 4 << 20

// MaxRecvMsgSize is gRPC's default limit, which a real agent or collector
// also applies.
const MaxRecvMsgSize = 4 << 20

// Server is the in-process agent.
type Server struct {
	srv  *grpc.Server
	lis  net.Listener
	hsrv *http.Server // OTLP/HTTP, on its own port
	hlis net.Listener
	c    [numKinds]counters
}

// msg is the value the codec "decodes" into: it carries the stream's kind and
// the stream's scratch buffer (for messages gRPC hands over in pieces).
type msg struct {
	kind    Kind
	items   int64
	size    int64
	scratch []byte
}

type codec struct{}

var _ encoding.CodecV2 = codec{}

func (codec) Name() string { return "proto" }

// Marshal sends empty messages: the answer to an OTLP Export is an empty
// ExportXxxServiceResponse.
func (codec) Marshal(any) (mem.BufferSlice, error) { return nil, nil }

func (codec) Unmarshal(data mem.BufferSlice, v any) error {
	m := v.(*msg)
	m.size = int64(data.Len())
	var b []byte
	if len(data) == 1 {
		b = data[0].ReadOnlyData()
	} else {
		n := data.Len()
		if cap(m.scratch) < n {
			m.scratch = make([]byte, n)
		}
		b = m.scratch[:n]
		data.CopyTo(b)
	}
	switch m.kind {
	case OCTrace, OCMetrics:
		m.items = countField(b, 2)
	case OTLPTrace, OTLPMetrics:
		m.items = countNested(b)
	default:
		m.items = 0
	}
	return nil
}

// countField counts the occurrences of length-delimited field num at the top
// level of b.
func countField(b []byte, num protowire.Number) int64 {
	var n int64
	for len(b) > 0 {
		f, t, l := protowire.ConsumeTag(b)
		if l < 0 {
			return n
		}
		b = b[l:]
		if f == num && t == protowire.BytesType {
			n++
		}
		l = protowire.ConsumeFieldValue(f, t, b)
		if l < 0 {
			return n
		}
		b = b[l:]
	}
	return n
}

// countNested counts field 2 of field 2 of field 1: the spans (or metrics) of
// the scope spans (metrics) of the resource spans (metrics) of an OTLP
// request.
func countNested(b []byte) int64 {
	var n int64
	ForEach(b, 1, func(rs []byte) {
		ForEach(rs, 2, func(ss []byte) { n += countField(ss, 2) })
	})
	return n
}

// ForEach calls fn with the bytes of every length-delimited field num of
// the encoded message b, in order, without decoding anything else (the test
// agents count and identify items this way).
func ForEach(b []byte, num protowire.Number, fn func([]byte)) {
	for len(b) > 0 {
		f, t, l := protowire.ConsumeTag(b)
		if l < 0 {
			return
		}
		b = b[l:]
		if f == num && t == protowire.BytesType {
			v, l := protowire.ConsumeBytes(b)
			if l < 0 {
				return
			}
			fn(v)
			b = b[l:]
			continue
		}
		l = protowire.ConsumeFieldValue(f, t, b)
		if l < 0 {
			return
		}
		b = b[l:]
	}
}

// Start serves on 127.0.0.1:0.
func Start() (*Server, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{lis: lis}
	s.srv = grpc.NewServer(grpc.ForceServerCodecV2(codec{}),
		grpc.InitialWindowSize(Window), grpc.InitialConnWindowSize(Window),
		grpc.MaxRecvMsgSize(MaxRecvMsgSize), grpc.StatsHandler(wireCounter{s}),
		grpc.UnknownServiceHandler(s.handle))
	go func() { _ = s.srv.Serve(lis) }()
	if err := s.startHTTP(); err != nil {
		s.srv.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) handle(_ any, st grpc.ServerStream) error {
	method, _ := grpc.MethodFromServerStream(st)
	k, unary := kindOf(method)
	c := &s.c[k]
	m := &msg{kind: k}
	for {
		if err := st.RecvMsg(m); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		// Items last: a waiter that sees the items sees their bytes.
		c.bytes.Add(m.size)
		c.messages.Add(1)
		c.items.Add(m.items)
		if unary {
			return st.SendMsg(m)
		}
	}
}

// wireCounter adds up each received message's wire length (stats.InPayload),
// which the codec cannot see after decompression. It counts before the
// handler counts the message's items, so a waiter that sees the items sees
// their wire bytes.
type wireCounter struct{ s *Server }

type kindKey struct{}

func (w wireCounter) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	k, _ := kindOf(info.FullMethodName)
	return context.WithValue(ctx, kindKey{}, k)
}

func (w wireCounter) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if in, ok := s.(*stats.InPayload); ok {
		k, _ := ctx.Value(kindKey{}).(Kind)
		w.s.c[k].wire.Add(int64(in.WireLength))
	}
}

func (wireCounter) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (wireCounter) HandleConn(context.Context, stats.ConnStats)                       {}

// Addr is the "127.0.0.1:port" the agent listens on.
func (s *Server) Addr() string { return s.lis.Addr().String() }

// Counts returns k's counters.
func (s *Server) Counts(k Kind) Counts {
	c := &s.c[k]
	return Counts{Items: c.items.Load(), Messages: c.messages.Load(), Bytes: c.bytes.Load(), Wire: c.wire.Load()}
}

// Wait returns k's counters once at least items items have arrived, or an
// error after timeout.
func (s *Server) Wait(k Kind, items int64, timeout time.Duration) (Counts, error) {
	deadline := time.Now().Add(timeout)
	sleep := 20 * time.Microsecond
	for {
		c := s.Counts(k)
		if c.Items >= items {
			return c, nil
		}
		if time.Now().After(deadline) {
			return c, fmt.Errorf("agent: %d of %d %s items after %v", c.Items, items, k, timeout)
		}
		time.Sleep(sleep)
		sleep = min(2*sleep, time.Millisecond)
	}
}

// Stop closes every connection at once.
func (s *Server) Stop() { s.srv.Stop(); _ = s.hsrv.Close() }
