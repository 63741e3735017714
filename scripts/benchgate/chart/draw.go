package main

import (
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/zerocensus/ocagent/scripts/benchgate/internal/results"
)

// impls are drawn in this order and colour.
var impls = []struct {
	name  string
	color color.RGBA
}{
	{"ours", color.RGBA{R: 0x1b, G: 0x9e, B: 0x77, A: 0xff}},
	{"ours-otlp", color.RGBA{R: 0x66, G: 0xa6, B: 0x1e, A: 0xff}},
	{"upstream", color.RGBA{R: 0xd9, G: 0x5f, B: 0x02, A: 0xff}},
	{"otel", color.RGBA{R: 0x75, G: 0x70, B: 0xb3, A: 0xff}},
}

// chartData is the medians per scenario (x) and implementation (bars).
type chartData struct {
	scenarios []string             // e.g. "Exporter typical", "Views distribution 1000 rows"
	cpu       map[string][]float64 // impl -> CPU ns per span (row), by scenario; 0 where not measured
	allocs    map[string][]float64 // impl -> allocations per span (row)
}

func collect(s *results.Set) chartData {
	c := chartData{cpu: map[string][]float64{}, allocs: map[string][]float64{}}
	seen := map[string]bool{}
	for _, name := range s.Names {
		sc, impl := results.Split(name)
		if impl == "" || seen[sc] || !(strings.HasPrefix(sc, "Exporter/") || strings.HasPrefix(sc, "EndToEnd/") || strings.HasPrefix(sc, "Views/")) {
			continue
		}
		seen[sc] = true
		u := results.PerUnit(sc)
		c.scenarios = append(c.scenarios, label(sc))
		for _, im := range impls {
			cpu, _ := s.Median(sc+"/impl="+im.name, "cpu-ns/"+u)
			allocs, _ := s.Median(sc+"/impl="+im.name, "allocs/"+u)
			c.cpu[im.name] = append(c.cpu[im.name], cpu)
			c.allocs[im.name] = append(c.allocs[im.name], allocs)
		}
	}
	return c
}

// label shortens "Views/agg=distribution/rows=1000" to "Views distribution 1000".
func label(sc string) string {
	parts := strings.Split(sc, "/")
	for i, p := range parts {
		if _, v, ok := strings.Cut(p, "="); ok {
			parts[i] = v
		}
	}
	return strings.Join(parts, " ")
}

func (c chartData) draw(subtitle, path string) error {
	cpu, err := c.panel("CPU per span or row (ns, user + system, agents excluded; lower is better)", c.cpu, true)
	if err != nil {
		return err
	}
	cpu.Title.Text = "zerocensus/ocagent: make bench\n" + subtitle + "\n\n" + cpu.Title.Text
	allocs, err := c.panel("allocations per span or row (lower is better)", c.allocs, false)
	if err != nil {
		return err
	}
	w, h := vg.Length(26+len(c.scenarios)*10)*vg.Centimeter/2, 24*vg.Centimeter
	var canvas draw.Canvas
	var save func(*os.File) error
	switch filepath.Ext(path) {
	case ".svg":
		sv := vgsvg.New(w, h)
		canvas = draw.New(sv)
		save = func(f *os.File) error { _, err := sv.WriteTo(f); return err }
	case ".png":
		im := vgimg.New(w, h)
		canvas = draw.New(im)
		save = func(f *os.File) error { _, err := vgimg.PngCanvas{Canvas: im}.WriteTo(f); return err }
	default:
		return fmt.Errorf("unknown image type %s", path)
	}
	canvas.SetColor(color.White)
	canvas.Fill(canvas.Rectangle.Path())
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadTop: vg.Centimeter / 2, PadBottom: vg.Centimeter / 2, PadX: vg.Centimeter / 2, PadY: vg.Centimeter}
	plots := [][]*plot.Plot{{cpu}, {allocs}}
	canvases := plot.Align(plots, tiles, canvas)
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := save(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// panel is one grouped bar chart: a group of bars per scenario, a bar per
// implementation, its value printed above it.
func (c chartData) panel(title string, values map[string][]float64, log bool) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.Legend.Top = true
	p.Legend.Left = false
	width := vg.Points(14)
	// On a log scale bars start at half the smallest value (a log axis has
	// no 0), and a value not measured is a bar of no height there.
	base, hi := 0.0, 0.0
	if log {
		for _, v := range values {
			for _, y := range v {
				if y > 0 && (base == 0 || y/2 < base) {
					base = y / 2
				}
				hi = max(hi, y)
			}
		}
	}
	n := 0
	for _, im := range impls {
		if nonZero(values[im.name]) {
			n++
		}
	}
	i := 0
	for _, im := range impls {
		v := values[im.name]
		if !nonZero(v) {
			continue
		}
		heights := plotter.Values(v)
		var under *plotter.BarChart
		if base > 0 {
			// gonum's bars start at 0 unless stacked: stack them on
			// bars of height base that are not drawn.
			heights = make(plotter.Values, len(v))
			floor := make(plotter.Values, len(v))
			for i, y := range v {
				heights[i], floor[i] = max(y, base)-base, base
			}
			var err error
			if under, err = plotter.NewBarChart(floor, width); err != nil {
				return nil, err
			}
		}
		bars, err := plotter.NewBarChart(heights, width)
		if err != nil {
			return nil, err
		}
		if under != nil {
			bars.StackOn(under)
		}
		bars.Color = im.color
		bars.LineStyle.Width = 0
		bars.Offset = width * vg.Length(2*i-n+1) / 2
		p.Add(bars)
		p.Legend.Add(im.name, bars)
		labels, err := valueLabels(v, bars.Offset)
		if err != nil {
			return nil, err
		}
		p.Add(labels)
		i++
	}
	p.NominalX(c.scenarios...)
	// Room at the right for the legend.
	p.X.Min, p.X.Max = -0.7, float64(len(c.scenarios))+0.4
	if base > 0 {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
		p.Y.Min, p.Y.Max = base, hi*3
	}
	return p, nil
}

func valueLabels(v []float64, offset vg.Length) (*plotter.Labels, error) {
	xys := make(plotter.XYs, 0, len(v))
	texts := make([]string, 0, len(v))
	for x, y := range v {
		if y <= 0 {
			continue
		}
		xys = append(xys, plotter.XY{X: float64(x), Y: y})
		texts = append(texts, short(y))
	}
	l, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: texts})
	if err != nil {
		return nil, err
	}
	for i := range l.TextStyle {
		l.TextStyle[i].XAlign = draw.XCenter
		l.TextStyle[i].Font.Size = vg.Points(7)
	}
	l.Offset = vg.Point{X: offset, Y: vg.Points(2)}
	return l, nil
}

func short(y float64) string {
	switch {
	case y >= 10_000:
		return fmt.Sprintf("%.0fk", y/1000)
	case y >= 1000:
		return fmt.Sprintf("%.1fk", y/1000)
	case y >= 10:
		return fmt.Sprintf("%.0f", y)
	case y >= 0.1:
		return fmt.Sprintf("%.2f", y)
	}
	return fmt.Sprintf("%.3f", y)
}

func nonZero(v []float64) bool {
	for _, x := range v {
		if x > 0 {
			return true
		}
	}
	return false
}
