package otlpgrpc_test

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/zerocensus/ocagent/stream"
	"github.com/zerocensus/ocagent/stream/otlpgrpc"
)

// A Unary transport is what a stream.Pipeline sends OTLP requests through:
// the pipeline's scheduler is its only caller. (Not run: it needs a
// Collector on 127.0.0.1:4317.)
func ExampleNew() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // ends the connection and every call
	conn, err := stream.Dial(ctx, "127.0.0.1:4317", 5*time.Second, time.Second, nil,
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	var counters stream.Counters
	t := otlpgrpc.New(conn, otlpgrpc.Config{Method: otlpgrpc.TraceMethod, MaxInFlight: 4, Timeout: 10 * time.Second}, &counters)
	var _ stream.Transport = t // handed to Pipeline.Start
}
