// Command enable_stats is the "Enabling stats exporting" snippet of the
// OpenCensus website's ocagent page (seed 001), with the exporter made as in
// the simplest program. Only the exporter's import path differs from
// upstream's.
package main

import (
	"log"

	"github.com/zerocensus/ocagent"
	"go.opencensus.io/stats/view"
)

func main() {
	oce, err := ocagent.NewExporter()
	if err != nil {
		log.Fatalf("Failed to create a new ocagent exporter: %v", err)
	}
	defer oce.Stop()

	view.RegisterExporter(oce)
}
