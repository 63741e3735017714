// Command with_address wraps the "Custom address" snippet of the OpenCensus
// website's ocagent page (seed 001) in the simplest program's main. Only the
// exporter's import path differs from upstream's.
package main

import (
	"log"

	"github.com/zerocensus/ocagent"
)

func main() {
	oce, err := ocagent.NewExporter(
		// WithAddress takes in any value that can be resolved
		// by invoking net.Lookup https://golang.org/pkg/net/#LookupAddr
		ocagent.WithAddress("<my_host>:<myport>"))
	if err != nil {
		log.Fatalf("Failed to create a new ocagent exporter: %v", err)
	}
	defer oce.Stop()
}
