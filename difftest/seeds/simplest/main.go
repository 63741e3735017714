// Command simplest is "the simplest end-to-end initialization" of the
// OpenCensus website's ocagent page (seed 001). Only the exporter's import
// path differs from upstream's.
package main

import (
	"log"

	"github.com/zerocensus/ocagent"
)

func main() {
	oce, err := ocagent.NewExporter()
	if err != nil {
		log.Fatalf("Failed to create a new ocagent exporter: %v", err)
	}
	// Before the program stops, please
	// remember to stop  the exporter.
	defer oce.Stop()
}
