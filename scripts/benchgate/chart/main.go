// Command chart draws the chart of README.md from `make bench`'s raw
// results: CPU per span (per row for views) and allocations per span, per
// implementation and scenario, as grouped bars (medians), labelled with the
// machine and the date of the run. It writes an SVG and a PNG.
//
//	go run ./chart -o ../../bench/results/chart ../../bench/results/latest.txt
//
// It lives in the benchgate module (beside the results table, with
// golang.org/x/perf's benchfmt) rather than in bench/: x/perf raises
// google.golang.org/api, a dependency of the upstream exporter that bench/
// measures, from v0.25.0 to v0.126.0, which would change the peer.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/zerocensus/ocagent/scripts/benchgate/internal/results"
)

func main() {
	out := flag.String("o", "chart", "output path without extension: writes OUT.svg and OUT.png")
	label := flag.String("label", "", "the machine and date printed under the title (default: from the results' configuration lines)")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: chart [-o out] [-label text] results.txt...")
		os.Exit(2)
	}
	s, err := results.Read(flag.Args()...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chart:", err)
		os.Exit(1)
	}
	lbl := *label
	if lbl == "" {
		lbl = strings.TrimSpace(s.Machine + " " + runDate(flag.Args()...))
	}
	c := collect(s)
	if len(c.scenarios) == 0 {
		fmt.Fprintln(os.Stderr, "chart: no Exporter, EndToEnd or Views results")
		os.Exit(1)
	}
	for _, ext := range []string{"svg", "png"} {
		if err := c.draw(lbl, *out+"."+ext); err != nil {
			fmt.Fprintln(os.Stderr, "chart:", err)
			os.Exit(1)
		}
	}
	fmt.Printf("wrote %s.svg and %s.png\n", *out, *out)
}

// runDate is the "date:" configuration line bench/run.sh writes.
func runDate(paths ...string) string {
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "date: "); ok {
				return v
			}
		}
	}
	return ""
}
