package ocagent_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"go.opencensus.io/trace"

	ocagent "github.com/zerocensus/ocagent"
	"github.com/zerocensus/ocagent/internal/mockagent"
)

// The drop-in swap: the same calls as upstream's exporter. (The agent here is
// a test agent on 127.0.0.1; in production it is the OpenCensus agent or the
// OpenTelemetry Collector.)
func Example() {
	agent, err := mockagent.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer agent.Stop()

	exp, err := ocagent.NewExporter(ocagent.WithInsecure(), ocagent.WithAddress(agent.Addr()),
		ocagent.WithServiceName("engine"))
	if err != nil {
		log.Fatalf("Failed to create the agent exporter: %v", err)
	}
	trace.RegisterExporter(exp)
	defer trace.UnregisterExporter(exp)

	ctx, span := trace.StartSpan(context.Background(), "AgentExporter-Example", trace.WithSampler(trace.AlwaysSample()))
	for i := 0; i < 10; i++ {
		_, child := trace.StartSpan(ctx, fmt.Sprintf("Sample-%d", i))
		child.End()
	}
	span.End()

	exp.Flush() // sends what is queued
	if err := agent.WaitSpans(11, time.Minute); err != nil {
		log.Fatal(err)
	}
	if err := exp.Stop(); err != nil {
		log.Fatal(err)
	}
	st := exp.Stats()
	fmt.Println("spans exported:", st.SpansExported, "dropped:", st.SpansDroppedFull)
	// Output: spans exported: 11 dropped: 0
}

// Tuning options have defaults sized for a typical service; invalid values
// are reported by NewExporter.
func ExampleWithSpanRingCapacity() {
	_, err := ocagent.NewUnstartedExporter(ocagent.WithInsecure(), ocagent.WithSpanRingCapacity(-1))
	fmt.Println(err)
	// Output: ocagent: span ring capacity must be in 1..67108864, got -1
}
