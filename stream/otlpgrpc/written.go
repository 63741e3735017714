package otlpgrpc

import (
	"context"
	"fmt"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/stats"
)

// Whether a request left the client.
//
// A failed unary call tells nothing of where it failed: gRPC returns
// Unavailable both for a call that never had a connection (the dial failed,
// the connection was refused, the channel was never READY: the pick fails
// before any stream exists) and for one whose request was written and whose
// connection then broke. The first never reached the agent and is only
// not sent yet (dropped at Stop if it never is); the second may have been
// taken, and only it is in doubt. Likewise a status the agent answered
// (a refusal, even a retryable one) means the agent did not take the data,
// whereas a call cut by its timeout or by Stop after its request left has
// no answer at all.
//
// The channel's state cannot tell them apart (a READY channel can still
// break under a call, a call can fail while it was CONNECTING), nor can
// the error's code or text. StatsHandler can: installed on the connection
// (DialOption), it sees every attempt's events, and marks the attempt
// state carried by the call's context:
//
//   - written: stats.OutPayload, which gRPC emits only after the
//     transport took the request's bytes (csAttempt.sendMsg, after a
//     successful Write), never for an attempt whose pick, stream creation,
//     size check or compressor failed;
//   - answered: stats.InTrailer, which gRPC emits when the agent's status
//     arrived (a trailers-only refusal included), before the call returns.
//
// A written, unanswered attempt is what "in doubt" means; nothing else is.
//
// Cost: once a stats handler is installed, gRPC allocates its event
// structs (Begin, OutHeader with a copy of the headers, OutPayload,
// InHeader, InPayload, InTrailer, End) for every call: a few allocations
// per call (OTLP calls carry up to 2048 spans), none per span; the
// handler itself allocates nothing. It is installed on OTLP connections
// only.
type StatsHandler struct{}

// DialOption installs StatsHandler; a connection given to New must have it.
func DialOption() grpc.DialOption { return grpc.WithStatsHandler(StatsHandler{}) }

// attemptState is what the handler learnt of the current attempt of a call.
// A new one comes with each new call context (after a timeout), so that the
// late events of an attempt cut by its timeout never mark the next one.
type attemptState struct {
	written  atomic.Bool
	answered atomic.Bool
}

type attemptKey struct{}

func (a *attemptState) reset() {
	a.written.Store(false)
	a.answered.Store(false)
}

// outcome reads the attempt after its call returned: whether its request
// left the client, and whether it then got no answer (in doubt).
func (a *attemptState) outcome() (written, unanswered bool) {
	w := a.written.Load()
	return w, w && !a.answered.Load()
}

func withAttempt(ctx context.Context, a *attemptState) context.Context {
	return context.WithValue(ctx, attemptKey{}, a)
}

// TagRPC implements stats.Handler.
func (StatsHandler) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }

// HandleRPC implements stats.Handler.
func (StatsHandler) HandleRPC(ctx context.Context, s stats.RPCStats) {
	switch s.(type) {
	case *stats.OutPayload:
		if a, ok := ctx.Value(attemptKey{}).(*attemptState); ok {
			a.written.Store(true)
		}
	case *stats.InTrailer:
		if a, ok := ctx.Value(attemptKey{}).(*attemptState); ok {
			a.answered.Store(true)
		}
	}
}

// TagConn implements stats.Handler.
func (StatsHandler) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }

// HandleConn implements stats.Handler.
func (StatsHandler) HandleConn(context.Context, stats.ConnStats) {}

// connect is the transport's first attempt, made when the pipeline starts
// (its first Ready), as the OpenCensus stream's first attempt is: the
// channel dials now rather than at the first call, and one that fails to
// connect sets LastError at once, long before a batch is due. Nothing is
// sent. It waits at most the connection's AttemptTimeout.
//
// The channel does not expose the reason of a failed dial (the first call
// that fails replaces this error with gRPC's, which has it), and learning
// it from a call would send a request to an agent that came back meanwhile.
func (u *Unary) connect() {
	cc := u.conn.Client()
	cc.Connect()
	ctx, cancel := context.WithTimeout(u.conn.Ctx, u.conn.AttemptTimeout)
	defer cancel()
	for {
		s := cc.GetState()
		switch s {
		case connectivity.Ready, connectivity.Shutdown:
			return
		case connectivity.TransientFailure:
			u.c.SetErr(fmt.Errorf("otlp: cannot connect to %s (the channel is in %v; calls wait and retry)", u.conn.Target(), s))
			return
		}
		if !cc.WaitForStateChange(ctx, s) {
			return
		}
	}
}
