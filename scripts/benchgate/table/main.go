// Command table prints the results table of README.md from `make bench`'s
// raw results: per scenario and implementation, the medians of ns, CPU ns
// (user + system time of the whole process, agents excluded), allocs,
// bytes allocated and bytes on the wire per span (per row for views), ns as
// a ratio to upstream's and to the encode floor of the same shape (view).
//
//	go run ./table ../../bench/results/latest.txt
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/zerocensus/ocagent/scripts/benchgate/internal/results"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: table results.txt...")
		os.Exit(2)
	}
	s, err := results.Read(os.Args[1:]...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "table:", err)
		os.Exit(1)
	}
	groups := []struct{ prefix, title string }{
		{"Exporter/", "Exporter only (pre-built spans, GOMAXPROCS callers, until the agent has them)"},
		{"EndToEnd/", "End to end (OpenCensus StartSpan ... End, until the agent has every span)"},
		{"Views/", "Views (one view exported and received per op; per row)"},
	}
	for _, gr := range groups {
		var scenarios []string
		seen := map[string]bool{}
		for _, name := range s.Names {
			sc, impl := results.Split(name)
			if impl != "" && strings.HasPrefix(sc, gr.prefix) && !seen[sc] {
				seen[sc] = true
				scenarios = append(scenarios, sc)
			}
		}
		if len(scenarios) == 0 {
			continue
		}
		u := results.PerUnit(scenarios[0])
		fmt.Printf("%s\n\n", gr.title)
		fmt.Printf("| scenario | impl | ns/%s | CPU ns/%s | allocs/%s | B/%s | wire B/%s | × upstream | × floor |\n", u, u, u, u, u)
		fmt.Println("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
		for _, sc := range scenarios {
			up, _ := s.Median(sc+"/impl=upstream", "ns/"+u)
			floor, _ := s.Median(results.Floor(sc), "ns/"+u)
			for _, impl := range []string{"ours", "ours-otlp", "upstream", "otel"} {
				name := sc + "/impl=" + impl
				if !s.Has(name) {
					continue
				}
				ns, _ := s.Median(name, "ns/"+u)
				allocs, _ := s.Median(name, "allocs/"+u)
				b, _ := s.Median(name, "B/"+u)
				wire, _ := s.Median(name, "wireB/"+u)
				cpu, _ := s.Median(name, "cpu-ns/"+u)
				fmt.Printf("| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
					strings.TrimPrefix(sc, gr.prefix), impl, results.Duration(ns), results.Duration(cpu), allocsString(allocs),
					results.Format(b), results.Format(wire), ratio(ns, up), ratio(ns, floor))
			}
		}
		fmt.Println()
	}
	var floors []string
	for _, name := range s.Names {
		if strings.HasPrefix(name, "Floor/") {
			floors = append(floors, name)
		}
	}
	if len(floors) > 0 {
		fmt.Printf("Encode floor (MarshalToSizedBufferVT of the converted message only)\n\n")
		fmt.Println("| floor | ns/op | ns per span or row | allocs/op | encoded B per span or row |")
		fmt.Println("| --- | ---: | ---: | ---: | ---: |")
		for _, name := range floors {
			u := results.PerUnit(name)
			op, _ := s.Median(name, "ns/op")
			per, _ := s.Median(name, "ns/"+u)
			allocs, _ := s.Median(name, "allocs/op")
			wire, _ := s.Median(name, "wireB/"+u)
			fmt.Printf("| %s | %s | %s/%s | %s | %s |\n", strings.TrimPrefix(name, "Floor/"),
				results.Duration(op), results.Duration(per), u, results.Format(allocs), results.Format(wire))
		}
		fmt.Println()
	}
}

func allocsString(a float64) string {
	if a > 0 && a < 0.1 {
		return fmt.Sprintf("%.4f", a)
	}
	return results.Format(a)
}

func ratio(x, y float64) string {
	if x == 0 || y == 0 {
		return "–"
	}
	r := x / y
	if r < 10 {
		return fmt.Sprintf("%.2f×", r)
	}
	return fmt.Sprintf("%.0f×", r)
}
