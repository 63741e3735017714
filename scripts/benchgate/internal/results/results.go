// Package results reads Go benchmark results (the benchfmt format) into
// samples per benchmark and unit, for benchgate and its table.
package results

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"golang.org/x/perf/benchfmt"
	"golang.org/x/perf/benchmath"
)

// Set holds every value read, by benchmark name (without the "Benchmark"
// prefix and the -GOMAXPROCS suffix) and unit as printed by the benchmark
// (ns/op, not benchfmt's tidied sec/op).
type Set struct {
	Names  []string // in order of first appearance
	values map[string]map[string][]float64
	Runs   int // results lines read
	// Machine is the "cpu" configuration line and the GOMAXPROCS suffix of
	// the first result ("Intel(R) Xeon(R) Processor, 2 procs"): time
	// ratios are comparable only between runs on the same kind of machine.
	Machine string
}

// Read parses the files.
func Read(paths ...string) (*Set, error) {
	s := &Set{values: map[string]map[string][]float64{}}
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		r := benchfmt.NewReader(f, p)
		for r.Scan() {
			switch rec := r.Result().(type) {
			case *benchfmt.SyntaxError:
				f.Close()
				return nil, rec
			case *benchfmt.Result:
				s.Runs++
				s.add(rec)
			}
		}
		err = r.Err()
		f.Close()
		if err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *Set) add(r *benchfmt.Result) {
	name := string(r.Name.Full())
	procs := "1"
	if i := strings.LastIndexByte(name, '-'); i > 0 && isDigits(name[i+1:]) {
		name, procs = name[:i], name[i+1:]
	}
	if s.Machine == "" {
		s.Machine = strings.TrimSpace(r.GetConfig("cpu")) + ", " + procs + " procs"
	}
	m := s.values[name]
	if m == nil {
		m = map[string][]float64{}
		s.values[name] = m
		s.Names = append(s.Names, name)
	}
	for _, v := range r.Values {
		unit, val := v.Unit, v.Value
		if v.OrigUnit != "" {
			unit, val = v.OrigUnit, v.OrigValue
		}
		m[unit] = append(m[unit], val)
	}
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// Has reports whether name was read.
func (s *Set) Has(name string) bool { return s.values[name] != nil }

// Values returns name's values in unit, sorted (nil if none).
func (s *Set) Values(name, unit string) []float64 {
	v := append([]float64(nil), s.values[name][unit]...)
	sort.Float64s(v)
	return v
}

// Raw returns name's values in unit in the order they were read: with
// bench/run.sh's interleaved rounds, the i-th value of every benchmark comes
// from round i.
func (s *Set) Raw(name, unit string) []float64 { return s.values[name][unit] }

// PairedRatio is the median of the per-round ratios a[i]/b[i] of two
// benchmarks' values in unit, when both have one value per round (the two
// ran minutes apart at most, so a slow period of the machine hits both);
// otherwise the ratio of their medians. n is the number of ratios (0 for the
// ratio of medians).
func (s *Set) PairedRatio(a, b, unit string) (r float64, n int, ok bool) {
	x, y := s.Raw(a, unit), s.Raw(b, unit)
	if len(x) == 0 || len(y) == 0 {
		return 0, 0, false
	}
	if len(x) != len(y) {
		ma, _ := s.Median(a, unit)
		mb, _ := s.Median(b, unit)
		return ma / mb, 0, true
	}
	ratios := make([]float64, len(x))
	for i := range x {
		ratios[i] = x[i] / y[i]
	}
	smp := benchmath.NewSample(ratios, &benchmath.DefaultThresholds)
	return benchmath.AssumeNothing.Summary(smp, 0.95).Center, len(ratios), true
}

// Median of name's values in unit; ok is false when there are none.
func (s *Set) Median(name, unit string) (m float64, ok bool) {
	v := s.Values(name, unit)
	if len(v) == 0 {
		return 0, false
	}
	return benchmath.AssumeNothing.Summary(benchmath.NewSample(v, &benchmath.DefaultThresholds), 0.95).Center, true
}

// Summary is benchstat's summary of name's values in unit: the median and
// its 95% confidence interval.
func (s *Set) Summary(name, unit string) (benchmath.Summary, *benchmath.Sample, bool) {
	v := s.Values(name, unit)
	if len(v) == 0 {
		return benchmath.Summary{}, nil, false
	}
	smp := benchmath.NewSample(v, &benchmath.DefaultThresholds)
	return benchmath.AssumeNothing.Summary(smp, 0.95), smp, true
}

// Split cuts "EndToEnd/shape=typical/impl=ours" into its scenario
// ("EndToEnd/shape=typical") and implementation ("ours"); impl is "" when
// the name has no impl= part (the floor).
func Split(name string) (scenario, impl string) {
	i := strings.LastIndex(name, "/impl=")
	if i < 0 {
		return name, ""
	}
	return name[:i], name[i+len("/impl="):]
}

// Floor is the name of the encode-floor benchmark for a scenario:
// "Exporter/shape=typical" -> "Floor/shape=typical",
// "Views/agg=count/rows=10" -> "Floor/agg=count/rows=10".
func Floor(scenario string) string {
	i := strings.IndexByte(scenario, '/')
	if i < 0 {
		return ""
	}
	return "Floor" + scenario[i:]
}

// PerUnit is the per-item unit of a scenario's extra metrics: "span" for
// spans, "row" for views.
func PerUnit(scenario string) string {
	if strings.HasPrefix(scenario, "Views/") || strings.HasPrefix(scenario, "Floor/agg=") {
		return "row"
	}
	return "span"
}

// Format prints a number with three significant digits, in the style of
// benchstat (1.23k, 45.6, 0.0152).
func Format(x float64) string {
	switch ax := abs(x); {
	case x == 0:
		return "0"
	case ax >= 999.5e3:
		return fmt.Sprintf("%.3gM", x/1e6)
	case ax >= 999.5:
		return fmt.Sprintf("%.3gk", x/1e3)
	default:
		return fmt.Sprintf("%.3g", x)
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// Duration prints nanoseconds as benchstat does (1.23µs, 456ns, 1.20ms).
func Duration(ns float64) string {
	switch {
	case ns >= 999.5e6:
		return fmt.Sprintf("%.3gs", ns/1e9)
	case ns >= 999.5e3:
		return fmt.Sprintf("%.3gms", ns/1e6)
	case ns >= 999.5:
		return fmt.Sprintf("%.3gµs", ns/1e3)
	default:
		return fmt.Sprintf("%.3gns", ns)
	}
}
