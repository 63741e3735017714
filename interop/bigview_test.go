//go:build unix

package interop

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"go.opencensus.io/stats"
	"go.opencensus.io/stats/view"
	"go.opencensus.io/tag"

	ocagent "github.com/zerocensus/ocagent"
)

// TestBigViewAtCollectors: a view of 30,000 distribution rows (13 bounds,
// about 8 MB, over the 4 MiB budget and the Collectors' 4 MiB receive
// limit) reaches both real Collectors split by rows across requests: every
// row arrives exactly once, counted by its endpoint tag in what they wrote.
func TestBigViewAtCollectors(t *testing.T) {
	const rows = 30_000
	key := tag.MustNewKey("endpoint")
	m := stats.Float64("interop/big_latency", "latency", stats.UnitMilliseconds)
	bounds := []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000}
	vd := &view.Data{View: &view.View{Name: "interop/big_latency", Measure: m, Aggregation: view.Distribution(bounds...), TagKeys: []tag.Key{key}},
		Start: time.Unix(1700000000, 0), End: time.Unix(1700000060, 0)}
	for i := range rows {
		dd := &view.DistributionData{Count: int64(i + 1), Min: 1, Max: 9000, Mean: 42, CountPerBucket: make([]int64, len(bounds)+1)}
		dd.CountPerBucket[0] = int64(i + 1)
		vd.Rows = append(vd.Rows, &view.Row{Tags: []tag.Tag{{Key: key, Value: fmt.Sprint("e", i)}}, Data: dd})
	}
	dir := t.TempDir()
	for _, c := range []struct {
		name  string
		col   collectorKind
		proto ocagent.Protocol
	}{{"opencensus", ocCollector, ocagent.ProtocolOpenCensus}, {"otlp", otlpCollector, ocagent.ProtocolOTLP}} {
		t.Run(c.name, func(t *testing.T) {
			addr, out := freeAddr(t), filepath.Join(dir, c.name+".jsonl")
			startCollectorOf(t, c.col, addr, out, nil)
			exp := exporterFor(t, addr, c.proto)
			exp.ExportView(vd)
			exp.Flush()
			seen := map[string]int{}
			parts := 0
			waitOutput(t, out, outputTimeout, func(o *output) bool {
				clear(seen)
				parts = 0
				for _, m := range o.metricsNamed("interop/big_latency") {
					parts++
					for _, p := range m.Histogram.DataPoints {
						for _, kv := range p.Attributes {
							if kv.Key == "endpoint" && kv.Value.StringValue != nil {
								seen[*kv.Value.StringValue]++
							}
						}
					}
				}
				return len(seen) == rows
			}, statsOf(exp))
			for i := range rows {
				if n := seen[fmt.Sprint("e", i)]; n != 1 {
					t.Fatalf("endpoint e%d arrived %d times", i, n)
				}
			}
			st := exp.Stats()
			if err := exp.Stop(); err != nil {
				t.Fatal(err)
			}
			if parts < 2 || st.ViewsExported != 1 || st.PointsDroppedOversize != 0 {
				t.Fatalf("%d parts; stats %+v", parts, st)
			}
			t.Logf("%d rows in %d parts, each row once", rows, parts)
		})
	}
}
