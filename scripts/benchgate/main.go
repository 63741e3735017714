// Command benchgate is the benchmark regression gate: it compares a fresh
// run of the gate's benchmarks (bench/, `make bench-gate`) with the committed
// baseline (bench/testdata/baseline.txt) and exits 1 on a regression.
//
// Benchmarks fall in two classes, gated differently (docs/measurements.md, "The gate"):
//
//   - deterministic (Micro/..., Floor/...): the hot paths alone in one
//     goroutine, without gRPC: conversion into a reused message, the encode
//     of a batch, the encode floor. Their allocs/op and B/op are the same
//     every run, so they may not rise at all. Their time is pure CPU, so our
//     ns/op as a ratio to upstream's equivalent in the same rounds may not
//     rise by more than -micro-tolerance.
//   - round trips (Exporter/..., EndToEnd/..., Views/...): spans or views
//     through gRPC to an agent. gRPC's own allocations (window updates, pings,
//     the flush of the last batch, and for OTLP the size of each call's batch,
//     which decides how many calls' ~77 allocations a span shares) depend on
//     timing, so these are gated on a rise of allocations per item with a
//     tolerance taken from their measured spread (-allocs-per-span,
//     -allocs-per-span-otlp, -allocs-per-view-op), and on our ns/op as a
//     ratio to upstream's in the same rounds within -tolerance.
//
// Time ratios are gated only when the baseline comes from the same kind of
// machine (its "cpu" line and GOMAXPROCS); on another, they are printed and
// the allocation checks alone decide.
//
// Only our implementations (impl=ours, impl=ours-otlp, and the floor) are
// gated; upstream and otel are the yardsticks. A ratio is the median of the
// per-round ratios (bench/run.sh interleaves the implementations in rounds),
// which a slow period of a shared machine disturbs less than the ratio of
// two medians. Ratios, not times, so that the gate holds on machines of
// different speeds.
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

// class is how one group of benchmarks is gated.
type class struct {
	name  string
	match *regexp.Regexp
	// exact lists the units that may not rise at all.
	exact []string
	// rise is the unit and largest absolute rise of its median for
	// allocation counts that depend on timing ("" for none); riseOTLP the
	// same for impl=ours-otlp.
	riseUnit string
	rise     float64
	riseOTLP float64
	// ratio is the largest relative rise of ns/op as a ratio to upstream's.
	ratio float64
}

func main() {
	baseline := flag.String("baseline", "bench/testdata/baseline.txt", "the committed baseline")
	tolerance := flag.Float64("tolerance", 0.35,
		"round trips: largest rise of our ns/op as a ratio to upstream's, relative to the baseline's ratio (0.35 = +35%)")
	microTolerance := flag.Float64("micro-tolerance", 0.25,
		"deterministic benchmarks: largest rise of our ns/op as a ratio to upstream's equivalent")
	perSpan := flag.Float64("allocs-per-span", 0.01,
		"span round trips over OpenCensus: largest rise of allocs/span (0.01 = 3 allocations per batch of 300 spans)")
	perSpanOTLP := flag.Float64("allocs-per-span-otlp", 0.02,
		"span round trips over OTLP: largest rise of allocs/span (0.02 = 41 allocations, half of gRPC's cost of one unary call, per batch of 2048 spans)")
	perViewOp := flag.Float64("allocs-per-view-op", 3,
		"view round trips: largest rise of allocs/op (one op is one view exported, flushed and received)")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: benchgate [flags] new-results.txt...\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
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
	g := gate{base: base, cur: cur, classes: []class{
		{name: "deterministic", match: regexp.MustCompile(`^(Micro|Floor)/`),
			exact: []string{"allocs/op", "B/op"}, ratio: *microTolerance},
		{name: "span round trip", match: regexp.MustCompile(`^(Exporter|EndToEnd)/`),
			riseUnit: "allocs/span", rise: *perSpan, riseOTLP: *perSpanOTLP, ratio: *tolerance},
		{name: "view round trip", match: regexp.MustCompile(`^Views/`),
			riseUnit: "allocs/op", rise: *perViewOp, riseOTLP: *perViewOp, ratio: *tolerance},
	}}
	fmt.Printf("benchgate: baseline %s (%d results; %s), new %s (%d results; %s)\n\n",
		*baseline, base.Runs, base.Machine, strings.Join(flag.Args(), " "), cur.Runs, cur.Machine)
	// Time ratios between two implementations depend on the kind of
	// machine (its caches, its system-call cost); allocation counts do not.
	// On another machine the ratios are printed, not gated, until a
	// baseline is recorded there.
	g.timeAdvisory = base.Machine != cur.Machine
	g.deltas(os.Stdout)
	fmt.Println()
	g.check()
	g.report(os.Stdout)
	if g.timeAdvisory {
		fmt.Printf("\nbenchgate: the baseline was recorded on %q, this run on %q: allocation checks are gated, time ratios only printed. Record a baseline for this machine with make bench-baseline (docs/measurements.md: \"When to rewrite the baseline\").\n", base.Machine, cur.Machine)
	}
	if g.failed {
		fmt.Println("\nbenchgate: FAIL. A legitimate change of the numbers (a new Go, gRPC or peer version, a new machine) is recorded with make bench-baseline; see docs/measurements.md.")
		os.Exit(1)
	}
	fmt.Println("\nbenchgate: ok")
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "benchgate:", err)
	os.Exit(2)
}

type gate struct {
	base, cur    *results.Set
	classes      []class
	timeAdvisory bool // the machines differ: time ratios are printed, not gated

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

// ours reports whether impl is one of this exporter's (the floor, without
// an impl, is our encoding alone).
func ours(impl string) bool { return impl == "ours" || impl == "ours-otlp" || impl == "" }

// classOf returns the class gating name, or nil when name is not gated.
func (g *gate) classOf(name string) *class {
	if _, impl := results.Split(name); !ours(impl) {
		return nil
	}
	for i := range g.classes {
		if g.classes[i].match.MatchString(name) {
			return &g.classes[i]
		}
	}
	return nil
}

// deltas prints benchstat's comparison of every benchmark of the baseline.
func (g *gate) deltas(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "benchmark\tunit\tbaseline\t\tnew\t\tdelta\t\t")
	for _, name := range g.base.Names {
		units := []string{"ns/op", "allocs/op", "B/op"}
		if c := g.classOf(name); c != nil && c.riseUnit == "allocs/span" {
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
	for _, name := range g.base.Names {
		c := g.classOf(name)
		if c == nil {
			continue
		}
		if !g.cur.Has(name) {
			g.result(false, "%s: not measured in the new run (the gate's benchmarks changed: rewrite the baseline)", name)
			continue
		}
		for _, unit := range c.exact {
			g.exact(name, unit)
		}
		if c.riseUnit != "" {
			rise := c.rise
			if _, impl := results.Split(name); impl == "ours-otlp" {
				rise = c.riseOTLP
			}
			b, ok1 := g.base.Median(name, c.riseUnit)
			n, ok2 := g.cur.Median(name, c.riseUnit)
			if ok1 && ok2 {
				g.result(n <= b+rise, "%-50s %-12s %.4g -> %.4g (%s: at most +%.4g)", name, c.riseUnit, b, n, c.name, rise)
			}
		}
	}
	// Time: our ns/op as a ratio to upstream's in the same rounds.
	for _, name := range g.base.Names {
		c := g.classOf(name)
		scenario, impl := results.Split(name)
		if c == nil || impl == "" {
			continue
		}
		up := scenario + "/impl=upstream"
		br, bn, ok := g.base.PairedRatio(name, up, "ns/op")
		if !ok {
			continue // no upstream equivalent (Micro/convert)
		}
		cr, cn, ok := g.cur.PairedRatio(name, up, "ns/op")
		if !ok {
			g.result(false, "%s: %s or upstream not measured in the new run", scenario, impl)
			continue
		}
		limit := br * (1 + c.ratio)
		if g.timeAdvisory {
			g.lines = append(g.lines, fmt.Sprintf("info  %-50s %-12s %.3f -> %.3f (%+.1f%%; not gated: the baseline is from another kind of machine)",
				name, "x upstream", br, cr, 100*(cr/br-1)))
			continue
		}
		g.result(cr <= limit, "%-50s %-12s %.3f -> %.3f (%+.1f%%; %s: at most %.3f, +%.0f%%; median of %d and %d per-round ratios)",
			name, "x upstream", br, cr, 100*(cr/br-1), c.name, limit, 100*c.ratio, bn, cn)
	}
}

func (g *gate) exact(name, unit string) {
	b, ok1 := g.base.Median(name, unit)
	c, ok2 := g.cur.Median(name, unit)
	if !ok1 || !ok2 {
		return
	}
	g.result(c <= b, "%-50s %-12s %s -> %s (deterministic: may not rise)", name, unit, results.Format(b), results.Format(c))
}

func (g *gate) report(w io.Writer) {
	fmt.Fprintln(w, "checks:")
	for _, l := range g.lines {
		fmt.Fprintln(w, "  "+l)
	}
}
