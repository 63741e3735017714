// Command compressiontable prints the README's compression table from
// `make bench-compression`'s raw results: per implementation and
// compression, the medians of CPU ns, allocations and bytes on the wire per
// span, the CPU per span as a ratio to the same implementation
// uncompressed, and the compression ratio (uncompressed message bytes over
// bytes on the wire). Ratios of CPU are medians of per-round ratios (the
// rounds are interleaved, so a slow period of the machine hits both).
//
//	go run ./compressiontable ../../bench/results/compression.txt
package main

import (
	"fmt"
	"os"

	"github.com/zerocensus/ocagent/scripts/benchgate/internal/results"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: compressiontable results.txt...")
		os.Exit(2)
	}
	s, err := results.Read(os.Args[1:]...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "compressiontable:", err)
		os.Exit(1)
	}
	fmt.Println("| shape | impl | compression | CPU ns/span | × uncompressed | allocs/span | message B/span | wire B/span | ratio |")
	fmt.Println("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, shape := range []string{"typical", "churn"} {
		sc := "Compression/shape=" + shape
		table(s, shape, sc)
	}
}

func table(s *results.Set, shape, sc string) {
	for _, impl := range []string{"ours", "ours-otlp", "upstream", "otel"} {
		none := sc + "/comp=none/impl=" + impl
		for _, comp := range []string{"none", "gzip", "grpc-gzip", "zstd", "snappy"} {
			name := sc + "/comp=" + comp + "/impl=" + impl
			if !s.Has(name) {
				continue
			}
			cpu, _ := s.Median(name, "cpu-ns/span")
			allocs, _ := s.Median(name, "allocs/span")
			msg, _ := s.Median(name, "wireB/span")
			wire, _ := s.Median(name, "compB/span")
			x := "–"
			if r, _, ok := s.PairedRatio(name, none, "cpu-ns/span"); ok && comp != "none" {
				x = fmt.Sprintf("%.2f×", r)
			}
			ratio := "–"
			if wire > 0 {
				ratio = fmt.Sprintf("%.1f", msg/wire)
			}
			a := results.Format(allocs)
			if allocs > 0 && allocs < 0.1 {
				a = fmt.Sprintf("%.4f", allocs)
			}
			fmt.Printf("| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", shape, impl, comp, results.Duration(cpu), x, a,
				results.Format(msg), results.Format(wire), ratio)
		}
	}
}
