package fastconv_test

import (
	"fmt"
	"time"

	uptracepb "github.com/census-instrumentation/opencensus-proto/gen-go/trace/v1"
	"go.opencensus.io/trace"
	"google.golang.org/protobuf/proto"

	"github.com/zerocensus/ocagent/fastconv"
)

// A SpanEncoder writes the wire encoding of one span; here it is decoded
// with the upstream opencensus-proto types, as an agent would.
func ExampleSpanEncoder() {
	start := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	sd := &trace.SpanData{
		SpanContext: trace.SpanContext{TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6}},
		Name:        "GET /users",
		SpanKind:    trace.SpanKindServer,
		StartTime:   start,
		EndTime:     start.Add(42 * time.Millisecond),
		Attributes:  map[string]any{"http.status_code": int64(200)},
	}
	enc := fastconv.NewSpanEncoder(fastconv.OpenCensus, fastconv.SpanOptions{})
	wire := enc.Append(nil, sd) // a reused message and scratch inside: 0 allocations once warm

	var span uptracepb.Span
	if err := proto.Unmarshal(wire, &span); err != nil {
		panic(err)
	}
	fmt.Println(span.GetName().GetValue(), span.GetKind())
	fmt.Println(span.GetEndTime().AsTime().Sub(span.GetStartTime().AsTime()))
	fmt.Println(span.GetAttributes().GetAttributeMap()["http.status_code"].GetIntValue())
	// Output:
	// GET /users SERVER
	// 42ms
	// 200
}

// The same span as OTLP: an opentelemetry.proto.trace.v1.Span.
func ExampleNewSpanEncoder_otlp() {
	sd := &trace.SpanData{
		SpanContext: trace.SpanContext{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}},
		Name:        "work",
	}
	enc := fastconv.NewSpanEncoder(fastconv.OTLP, fastconv.SpanOptions{})
	wire, size, err := enc.Encode(sd, 1<<20) // wire belongs to enc until its next call
	fmt.Println(len(wire) == size, err)
	_, size, _ = enc.Encode(sd, 10) // over the limit: sized, not encoded
	fmt.Println(size > 10)
	// Output:
	// true <nil>
	// true
}
