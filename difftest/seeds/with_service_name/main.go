// Command with_service_name wraps the "Service name" snippet of the OpenCensus
// website's ocagent page (seed 001) in the simplest program's main. Only the
// exporter's import path differs from upstream's.
package main

import (
	"log"

	"github.com/zerocensus/ocagent"
)

func main() {
	oce, err := ocagent.NewExporter(ocagent.WithServiceName("with-service-name"))
	if err != nil {
		log.Fatalf("Failed to create a new ocagent exporter: %v", err)
	}
	defer oce.Stop()
}
