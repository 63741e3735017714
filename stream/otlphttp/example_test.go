package otlphttp_test

import (
	"context"
	"time"

	"github.com/zerocensus/ocagent/stream"
	"github.com/zerocensus/ocagent/stream/otlphttp"
)

// A Client is the OTLP/HTTP transport a stream.Pipeline sends through: each
// request is one POST of the OTLP Export message, acknowledged by the
// answer. (Not run: it needs a Collector's OTLP/HTTP receiver on
// 127.0.0.1:4318.)
func ExampleNew() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // ends every request in flight
	var counters stream.Counters
	c := otlphttp.New(ctx, otlphttp.Config{
		URL:         "http://127.0.0.1:4318" + otlphttp.TracesPath,
		Gzip:        true,
		MaxInFlight: 4,
		Timeout:     10 * time.Second,
		MaxBackoff:  5 * time.Second,
	}, &counters)
	var _ stream.Transport = c // handed to Pipeline.Start
}
