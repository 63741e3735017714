package main

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zerocensus/ocagent/scripts/benchgate/internal/results"
)

// fixed is a results file of two rounds of two scenarios.
const fixed = `cpu: Test CPU
date: 2026-12-07
goos: linux
BenchmarkExporter/shape=typical/impl=ours-2 1000 1000 ns/op 1000 ns/span 1100 cpu-ns/span 0.0100 allocs/span
BenchmarkExporter/shape=typical/impl=upstream-2 100 10000 ns/op 10000 ns/span 12000 cpu-ns/span 45 allocs/span
BenchmarkViews/agg=count/rows=1000/impl=ours-2 100 100000 ns/op 100 ns/row 120 cpu-ns/row 0 allocs/row
BenchmarkViews/agg=count/rows=1000/impl=upstream-2 10 900000 ns/op 900 ns/row 950 cpu-ns/row 3 allocs/row
BenchmarkExporter/shape=typical/impl=ours-2 1000 1000 ns/op 1000 ns/span 1300 cpu-ns/span 0.0100 allocs/span
BenchmarkExporter/shape=typical/impl=upstream-2 100 10000 ns/op 10000 ns/span 11000 cpu-ns/span 45 allocs/span
`

// TestChartOfFixedResults draws the chart of a fixed results file and
// checks what it shows: the medians, the implementations, the scenarios and
// the machine and date.
func TestChartOfFixedResults(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "results.txt")
	if err := os.WriteFile(in, []byte(fixed), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := results.Read(in)
	if err != nil {
		t.Fatal(err)
	}
	c := collect(s)
	if strings.Join(c.scenarios, ",") != "Exporter typical,Views count 1000" {
		t.Fatalf("scenarios %q", c.scenarios)
	}
	if got := c.cpu["ours"]; got[0] != 1200 || got[1] != 120 {
		t.Fatalf("ours CPU medians %v, want [1200 120]", got)
	}
	if got := c.allocs["upstream"]; got[0] != 45 || got[1] != 3 {
		t.Fatalf("upstream allocs %v", got)
	}
	if nonZero(c.cpu["otel"]) {
		t.Fatalf("otel not measured, drawn: %v", c.cpu["otel"])
	}
	label := strings.TrimSpace(s.Machine + " " + runDate(in))
	if label != "Test CPU, 2 procs 2026-12-07" {
		t.Fatalf("label %q", label)
	}
	for _, ext := range []string{"svg", "png"} {
		if err := c.draw(label, filepath.Join(dir, "chart."+ext)); err != nil {
			t.Fatal(err)
		}
	}
	svg, err := os.ReadFile(filepath.Join(dir, "chart.svg"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ours", "upstream", "Exporter typical", "Views count 1000", "Test CPU, 2 procs 2026-12-07", "1.2k", "12k"} {
		if !bytes.Contains(svg, []byte(want)) {
			t.Errorf("the SVG lacks %q", want)
		}
	}
	f, err := os.Open(filepath.Join(dir, "chart.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() < 400 || b.Dy() < 400 {
		t.Fatalf("a PNG of %v", b)
	}
}
