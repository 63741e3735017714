// Command readme_example is the usage example of upstream's README (seed
// 000): the function Example, run by main. Only the exporter's import path
// differs from upstream's.
package main

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/zerocensus/ocagent"
	"go.opencensus.io/trace"
)

func main() { Example() }

func Example() {
	exp, err := ocagent.NewExporter(ocagent.WithInsecure(), ocagent.WithServiceName("your-service-name"))
	if err != nil {
		log.Fatalf("Failed to create the agent exporter: %v", err)
	}
	defer exp.Stop()

	// Now register it as a trace exporter.
	trace.RegisterExporter(exp)

	// Then use the OpenCensus tracing library, like we normally would.
	ctx, span := trace.StartSpan(context.Background(), "AgentExporter-Example")
	defer span.End()

	for i := 0; i < 10; i++ {
		_, iSpan := trace.StartSpan(ctx, fmt.Sprintf("Sample-%d", i))
		<-time.After(6 * time.Millisecond)
		iSpan.End()
	}
}
