// Command benchgate is the benchmark regression gate: it compares a fresh
// run of the gate's benchmarks (bench/, `make bench-gate`) with the committed
// baseline (bench/testdata/baseline.txt) and exits 1 on a regression.
//
// Checks, for every benchmark of the baseline:
//
//   - allocs/op of this exporter's benchmarks (impl=ours) and of the encode
//     floor may not rise at all: they are deterministic (verified run to
//     run), so any rise is a new allocation on the hot path;
//   - B/op may not rise at all for the benchmarks matching -exact-bytes (the
//     encode floor). Elsewhere B/op is printed, not gated: the exporter's
//     pooled encode buffers are re-made after garbage collections, whose
//     number depends on timing, so B/op varies by a few percent run to run;
//   - allocs/span of impl=ours (span scenarios) may not exceed the baseline
//     by more than -allocs-per-span: the fraction below one allocation per
//     span (gRPC's per-batch cost, about 0.016 per typical span) is invisible
//     in the integer allocs/op. (A view op is one message, so allocs/op
//     already counts its allocations one by one.);
//   - our ns/op as a ratio to upstream's, both measured in the same run, may
//     not exceed the baseline's ratio by more than -tolerance. Ratios, not
//     times, so that the gate holds on machines of different speeds; the
//     ratio is the median of the per-round ratios (bench/run.sh interleaves
//     the implementations in rounds), which a slow period of a shared machine
//     disturbs less than the ratio of two medians.
//
// The table above the checks is benchstat's: medians, the 95% confidence
// interval, and the delta when the Mann-Whitney U-test finds one (p < 0.05).
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"text/tabwriter"

	"golang.org/x/perf/benchmath"

	"github.com/zerocensus/ocagent/scripts/benchgate/internal/results"
)

func main() {
	baseline := flag.String("baseline", "bench/testdata/baseline.txt", "the committed baseline")
	tolerance := flag.Float64("tolerance", 0.35,
		"largest allowed rise of our ns/op as a ratio to upstream's, relative to the baseline's ratio (0.35 = +35%)")
	perSpan := flag.Float64("allocs-per-span", 0.01,
		"largest allowed rise of allocs/span of impl=ours (0.01 = 3 allocations per batch of 300 spans)")
	exactBytes := flag.String("exact-bytes", "^Floor/", "benchmarks whose B/op is deterministic and gated exactly")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: benchgate [flags] new-results.txt...\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	exact, err := regexp.Compile(*exactBytes)
	if err != nil {
		fatal(err)
	}
	base, err := results.Read(*baseline)
	if err != nil {
		fatal(err)
	}
	cur, err := results.Read(flag.Args()...)
	if err != nil {
		fatal(err)
	}
	if len(base.Names) == 0 {
		fatal(fmt.Errorf("%s holds no results: run make bench-baseline", *baseline))
	}
	g := gate{base: base, cur: cur, tolerance: *tolerance, perSpan: *perSpan, exactBytes: exact}
	fmt.Printf("benchgate: baseline %s (%d results), new %s (%d results)\n\n",
		*baseline, base.Runs, strings.Join(flag.Args(), " "), cur.Runs)
	g.deltas(os.Stdout)
	fmt.Println()
	g.check()
	g.report(os.Stdout)
	if g.failed {
		fmt.Println("\nbenchgate: FAIL. A legitimate change of the numbers (a new Go, gRPC or peer version, a new machine) is recorded with make bench-baseline; see README.md.")
		os.Exit(1)
	}
	fmt.Println("\nbenchgate: ok")
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "benchgate:", err)
	os.Exit(2)
}

type gate struct {
	base, cur  *results.Set
	tolerance  float64
	perSpan    float64
	exactBytes *regexp.Regexp

	lines  []string
	failed bool
}

func (g *gate) result(ok bool, format string, args ...any) {
	status := "ok  "
	if !ok {
		status = "FAIL"
		g.failed = true
	}
	g.lines = append(g.lines, status+"  "+fmt.Sprintf(format, args...))
}

// gated reports whether name is one of ours (or the floor, which is our
// encoding alone).
func gated(name string) bool {
	_, impl := results.Split(name)
	return impl == "ours" || impl == ""
}

// deltas prints benchstat's comparison of every benchmark of the baseline.
func (g *gate) deltas(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "benchmark\tunit\tbaseline\t\tnew\t\tdelta\t\t")
	for _, name := range g.base.Names {
		units := []string{"ns/op", "allocs/op", "B/op"}
		if _, impl := results.Split(name); impl == "ours" && results.PerUnit(name) == "span" {
			units = append(units, "allocs/span")
		}
		for _, unit := range units {
			bs, bsmp, ok1 := g.base.Summary(name, unit)
			cs, csmp, ok2 := g.cur.Summary(name, unit)
			if !ok1 {
				continue
			}
			if !ok2 {
				fmt.Fprintf(tw, "%s\t%s\t%s\t± %s\t%s\t\t%s\t\t\n", name, unit, fmtVal(unit, bs.Center), bs.PctRangeString(), "missing", "")
				continue
			}
			cmp := benchmath.AssumeNothing.Compare(bsmp, csmp)
			fmt.Fprintf(tw, "%s\t%s\t%s\t± %s\t%s\t± %s\t%s\t(%s)\t\n", name, unit,
				fmtVal(unit, bs.Center), bs.PctRangeString(), fmtVal(unit, cs.Center), cs.PctRangeString(),
				cmp.FormatDelta(bs.Center, cs.Center), cmp)
		}
	}
	tw.Flush()
}

func fmtVal(unit string, v float64) string {
	switch {
	case strings.HasPrefix(unit, "ns/"):
		return results.Duration(v)
	case unit == "allocs/span":
		return fmt.Sprintf("%.4g", v)
	}
	return results.Format(v)
}

func (g *gate) check() {
	// Exact allocation checks and the per-item allocation check.
	for _, name := range g.base.Names {
		if !gated(name) {
			continue
		}
		if !g.cur.Has(name) {
			g.result(false, "%s: not measured in the new run (the gate's benchmarks changed: rewrite the baseline)", name)
			continue
		}
		g.exact(name, "allocs/op")
		if g.exactBytes.MatchString(name) {
			g.exact(name, "B/op")
		}
		if _, impl := results.Split(name); impl == "ours" && results.PerUnit(name) == "span" {
			b, ok1 := g.base.Median(name, "allocs/span")
			c, ok2 := g.cur.Median(name, "allocs/span")
			if ok1 && ok2 {
				g.result(c <= b+g.perSpan, "%-45s %-12s %.4f -> %.4f (at most +%.4g)", name, "allocs/span", b, c, g.perSpan)
			}
		}
	}
	// Time: our ns/op as a ratio to upstream's in the same run.
	for _, name := range g.base.Names {
		scenario, impl := results.Split(name)
		if impl != "ours" {
			continue
		}
		up := scenario + "/impl=upstream"
		br, bn, ok := g.base.PairedRatio(name, up, "ns/op")
		if !ok {
			continue
		}
		cr, cn, ok := g.cur.PairedRatio(name, up, "ns/op")
		if !ok {
			g.result(false, "%s: ours or upstream not measured in the new run", scenario)
			continue
		}
		limit := br * (1 + g.tolerance)
		g.result(cr <= limit, "%-45s %-12s %.3f -> %.3f (%+.1f%%; at most %.3f, +%.0f%%; median of %d and %d per-round ratios)",
			scenario, "ours/upstream", br, cr, 100*(cr/br-1), limit, 100*g.tolerance, bn, cn)
	}
}

func (g *gate) exact(name, unit string) {
	b, ok1 := g.base.Median(name, unit)
	c, ok2 := g.cur.Median(name, unit)
	if !ok1 || !ok2 {
		return
	}
	g.result(c <= b, "%-45s %-12s %s -> %s (exact: may not rise)", name, unit, results.Format(b), results.Format(c))
}

func (g *gate) report(w io.Writer) {
	fmt.Fprintln(w, "checks:")
	for _, l := range g.lines {
		fmt.Fprintln(w, "  "+l)
	}
}
