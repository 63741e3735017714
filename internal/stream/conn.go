package stream

import (
	"context"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc"
)

// Conn is the one gRPC connection the exporter's streams share, with the
// context that carries the user's headers to every stream and ends them all
// on Stop.
type Conn struct {
	CC       *grpc.ClientConn
	Ctx      context.Context // cancelled by the exporter's Stop; carries outgoing headers
	CallOpts []grpc.CallOption
	// MaxBackoff caps the delay between reconnection attempts
	// (WithReconnectionPeriod).
	MaxBackoff time.Duration
	// OpenTimeout bounds opening a stream, so that an agent that accepts TCP
	// but never answers cannot hold a writer forever.
	OpenTimeout time.Duration
}

// open starts a stream on method. The stream lives until cancel is called or
// the connection's context ends.
func (c *Conn) open(method string, desc *grpc.StreamDesc, opts ...grpc.CallOption) (grpc.ClientStream, context.CancelFunc, error) {
	ctx, cancel := context.WithCancel(c.Ctx)
	// The timeout cancels only a stream that is still being opened.
	t := time.AfterFunc(c.OpenTimeout, cancel)
	s, err := c.CC.NewStream(ctx, desc, method, append(c.CallOpts[:len(c.CallOpts):len(c.CallOpts)], opts...)...)
	if !t.Stop() && err == nil {
		err = context.DeadlineExceeded
	}
	if err != nil {
		cancel()
		return nil, nil, err
	}
	return s, cancel, nil
}

// backoff is exponential with jitter: the first retry after about 100 ms,
// doubling per failure up to the cap, each delay drawn from [d/2, d] so that
// many exporters restarted together do not reconnect in step.
type backoff struct {
	failures int
}

const firstBackoff = 100 * time.Millisecond

func (b *backoff) next(limit time.Duration) time.Duration {
	d := firstBackoff
	for i := 0; i < b.failures && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	b.failures++
	return d/2 + rand.N(d/2+1)
}

func (b *backoff) reset() { b.failures = 0 }
