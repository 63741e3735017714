package ocstream_test

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/zerocensus/ocagent/pool"
	"github.com/zerocensus/ocagent/stream"
	"github.com/zerocensus/ocagent/stream/ocstream"
)

// A Stream is the OpenCensus agent transport a stream.Pipeline sends
// through: Header is the stream's first message (the encoded Node and
// Resource), and the replay keeps up to ReplayBytes of recent batches to
// send again on the next stream after a break. (Not run: it needs an agent
// on 127.0.0.1:55678.)
func ExampleNew() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	conn, err := stream.Dial(ctx, "127.0.0.1:55678", 5*time.Second, time.Second, nil,
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	var counters stream.Counters
	s := ocstream.New(conn, ocstream.Config{
		Method:      "/opencensus.proto.agent.trace.v1.TraceService/Export",
		ReplayBytes: 16 << 20,
	}, pool.NewBuffers(), &counters)
	var _ stream.Transport = s // handed to Pipeline.Start
}
