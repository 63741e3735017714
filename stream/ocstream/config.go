package ocstream

import (
	"errors"
	"io"
	"sync/atomic"
	"time"

	commonpb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/common/v1"
	agenttracepb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/trace/v1"
	tracepb "github.com/census-instrumentation/opencensus-proto/gen-go/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/zerocensus/ocagent/stream"
)

// ConfigMethod is the real (upstream) name of the trace Config RPC.
const ConfigMethod = "/opencensus.proto.agent.trace.v1.TraceService/Config"

// ConfigStream keeps the trace Config stream open: it sends the Node, applies
// every configuration the agent pushes and answers with the configuration now
// in force. Config messages are rare, so this uses upstream's generated types
// and gRPC's default codec.
type ConfigStream struct {
	Conn    *stream.Conn
	Node    *commonpb.Node
	Apply   func(*tracepb.TraceConfig) // applies a pushed config (trace.ApplyConfig)
	applied atomic.Uint64
	lastErr atomic.Pointer[error]
}

// Applied counts configurations received and applied.
func (c *ConfigStream) Applied() uint64 { return c.applied.Load() }

// LastError is the error that ended the last Config stream: for an agent
// without the Config RPC (the OpenTelemetry Collector), its "unimplemented"
// answer, after which the stream is not retried.
func (c *ConfigStream) LastError() error {
	if p := c.lastErr.Load(); p != nil {
		return *p
	}
	return nil
}

// Run keeps the stream alive until the connection's context ends or the agent
// answers Unimplemented. Failures are retried with backoff; they never affect
// the Export streams.
func (c *ConfigStream) Run() {
	var bo stream.Backoff
	for {
		received, err := c.once()
		if c.Conn.Ctx.Err() != nil {
			return
		}
		c.lastErr.Store(&err)
		if unimplemented(err) {
			return
		}
		if received {
			bo.Reset()
		}
		t := time.NewTimer(bo.Next(c.Conn.MaxBackoff))
		select {
		case <-c.Conn.Ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

var configDesc = &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}

// once runs one Config stream and reports whether anything was received.
func (c *ConfigStream) once() (bool, error) {
	s, cancel, err := c.Conn.Open(ConfigMethod, configDesc, c.Conn.CallOptions())
	if err != nil {
		return false, err
	}
	defer cancel()
	if err := s.SendMsg(&agenttracepb.CurrentLibraryConfig{Node: c.Node}); err != nil {
		return false, recvStatus(s, err)
	}
	received := false
	for {
		var upd agenttracepb.UpdatedLibraryConfig
		if err := s.RecvMsg(&upd); err != nil {
			return received, err
		}
		received = true
		cfg := upd.GetConfig()
		if cfg == nil {
			continue
		}
		c.Apply(cfg)
		c.applied.Add(1)
		reply := &agenttracepb.CurrentLibraryConfig{Config: &tracepb.TraceConfig{Sampler: cfg.Sampler}}
		if err := s.SendMsg(reply); err != nil {
			return received, recvStatus(s, err)
		}
	}
}

// recvStatus turns SendMsg's io.EOF into the stream's real status.
func recvStatus(s grpc.ClientStream, err error) error {
	if !errors.Is(err, io.EOF) {
		return err
	}
	var upd agenttracepb.UpdatedLibraryConfig
	if rerr := s.RecvMsg(&upd); rerr != nil && rerr != io.EOF {
		return rerr
	}
	return err
}

// unimplemented reports an agent without the Config RPC: codes.Unimplemented,
// or what the OpenTelemetry Collector's OpenCensus receiver answers, a plain
// error "unimplemented" that gRPC delivers as codes.Unknown.
func unimplemented(err error) bool {
	st := status.Convert(err)
	return st.Code() == codes.Unimplemented || (st.Code() == codes.Unknown && st.Message() == "unimplemented")
}
