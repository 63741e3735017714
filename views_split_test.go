package ocagent

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"go.opencensus.io/stats"
	"go.opencensus.io/stats/view"
	"go.opencensus.io/tag"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/zerocensus/ocagent/fastconv"

	"github.com/zerocensus/ocagent/internal/otlpagent"
	collmetricspb "github.com/zerocensus/ocagent/internal/otlpproto/collector/metrics/v1"
)

var keyEndpoint = tag.MustNewKey("endpoint")

// bigView is a view of rows rows, one per endpoint ("e0", "e1", ...): a
// latency distribution of 13 bounds, or a count.
func bigView(agg string, rows int) *view.Data {
	m := stats.Float64("split/latency", "latency", stats.UnitMilliseconds)
	v := &view.View{Name: "split/" + agg, Measure: m, TagKeys: []tag.Key{keyEndpoint}}
	bounds := []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000}
	if agg == "distribution" {
		v.Aggregation = view.Distribution(bounds...)
	} else {
		v.Aggregation = view.Count()
	}
	vd := &view.Data{View: v, Start: time.Unix(1700000000, 0), End: time.Unix(1700000060, 0), Rows: make([]*view.Row, rows)}
	for i := range vd.Rows {
		var d view.AggregationData = &view.CountData{Value: int64(i + 1)}
		if agg == "distribution" {
			dd := &view.DistributionData{Count: int64(i + 1), Min: 1, Max: 9000, Mean: 42, CountPerBucket: make([]int64, len(bounds)+1)}
			for j := range dd.CountPerBucket {
				dd.CountPerBucket[j] = int64(i + j)
			}
			d = dd
		}
		vd.Rows[i] = &view.Row{Tags: []tag.Tag{{Key: keyEndpoint, Value: fmt.Sprint("e", i)}}, Data: d}
	}
	return vd
}

// TestBigViewsArriveWhole is the reproduction of the high-cardinality view
// that was dropped whole: views of 20,000 and 40,000 distribution rows and
// 200,000 count rows, each over the 4 MiB budget, arrive split across
// requests, every row exactly once, counted by endpoint at the agent, over
// OpenCensus and OTLP.
func TestBigViewsArriveWhole(t *testing.T) {
	if testing.Short() {
		t.Skip("sends about 40 MB of views")
	}
	cases := []struct {
		agg  string
		rows int
	}{{"distribution", 20_000}, {"distribution", 40_000}, {"count", 200_000}}
	t.Run("opencensus", func(t *testing.T) {
		for _, c := range cases {
			a := startAgent(t)
			e := newExporter(t, a)
			e.ExportView(bigView(c.agg, c.rows))
			seen := map[string]int{}
			msgs := 0
			waitFor(t, nil, "the condition of views_split_test.go:70", func() bool {
				ms := a.Metrics()
				for _, m := range ms[msgs:] {
					if m.GetMetricDescriptor().GetName() != "split/"+c.agg {
						t.Fatalf("a part named %q", m.GetMetricDescriptor().GetName())
					}
					for _, ts := range m.Timeseries {
						seen[ts.LabelValues[0].Value]++
					}
				}
				msgs = len(ms)
				return len(seen) == c.rows
			})
			checkEveryRowOnce(t, c.agg, c.rows, seen, msgs, e.Stats())
		}
	})
	t.Run("otlp", func(t *testing.T) {
		for _, c := range cases {
			a := startOTLPAgent(t)
			e := newOTLPExporter(t, a)
			e.ExportView(bigView(c.agg, c.rows))
			seen := map[string]int{}
			reqs, parts := 0, 0
			waitFor(t, nil, "the condition of views_split_test.go:93", func() bool {
				rs := a.Requests()
				for _, r := range rs[reqs:] {
					if r.Method != otlpagent.MetricsMethod {
						continue
					}
					var req collmetricspb.ExportMetricsServiceRequest
					if err := proto.Unmarshal(r.Body, &req); err != nil {
						t.Fatal(err)
					}
					for _, m := range req.ResourceMetrics[0].ScopeMetrics[0].Metrics {
						parts++
						if m.Name != "split/"+c.agg {
							t.Fatalf("a part named %q", m.Name)
						}
						for _, dp := range m.GetHistogram().GetDataPoints() {
							seen[dp.Attributes[0].Value.GetStringValue()]++
						}
						for _, dp := range m.GetSum().GetDataPoints() {
							seen[dp.Attributes[0].Value.GetStringValue()]++
						}
					}
				}
				reqs = len(rs)
				return len(seen) == c.rows
			})
			checkEveryRowOnce(t, c.agg, c.rows, seen, parts, e.Stats())
		}
	})
}

func checkEveryRowOnce(t *testing.T, agg string, rows int, seen map[string]int, parts int, st Stats) {
	t.Helper()
	for i := range rows {
		if n := seen[fmt.Sprint("e", i)]; n != 1 {
			t.Fatalf("%s view of %d rows: endpoint e%d arrived %d times; stats %+v", agg, rows, i, n, st)
		}
	}
	if parts < 2 || st.ViewsDroppedInvalid != 0 || st.PointsDroppedOversize != 0 || st.ViewsLastError != nil {
		t.Fatalf("%s view of %d rows in %d parts; stats %+v", agg, rows, parts, st)
	}
	t.Logf("%s view of %d rows: every row once, in %d parts", agg, rows, parts)
}

// TestViewSplitDeliveryModel: over seeded random budgets and views (0 to
// 3,000 rows of random sizes, a few rows each alone over the budget), for
// both protocols, every row that fits a request alone arrives at the agent
// exactly once, counted by its tag, and the others are counted in
// PointsDroppedOversize and named in ViewsLastError.
func TestViewSplitDeliveryModel(t *testing.T) {
	seeds := 8
	if testing.Short() {
		seeds = 2
	}
	for _, p := range []Protocol{ProtocolOpenCensus, ProtocolOTLP} {
		for seed := range uint64(seeds) {
			r := rand.New(rand.NewPCG(seed, 2027))
			budget := 8<<10 + r.IntN(256<<10)
			fp := fastconv.OpenCensus
			if p == ProtocolOTLP {
				fp = fastconv.OTLP
			}
			partMax := budget - protowire.SizeTag(2) - protowire.SizeVarint(uint64(budget))
			single := fastconv.NewViewEncoder(fp, "")
			var views []*view.Data
			want, dropped := map[string]bool{}, 0
			for vi := range 1 + r.IntN(4) {
				agg := []string{"distribution", "count"}[r.IntN(2)]
				vd := bigView(agg, r.IntN(3000))
				vd.View = &view.View{Name: fmt.Sprintf("model/%d/%s", vi, agg), Measure: vd.View.Measure, Aggregation: vd.View.Aggregation, TagKeys: vd.View.TagKeys}
				for i, row := range vd.Rows {
					pad := r.IntN(200)
					if r.IntN(500) == 0 {
						pad = budget // alone over the budget
					}
					key := fmt.Sprintf("v%d-r%d-%s", vi, i, strings.Repeat("x", pad))
					row.Tags = []tag.Tag{{Key: keyEndpoint, Value: key}}
					one := &view.Data{View: vd.View, Start: vd.Start, End: vd.End, Rows: vd.Rows[i : i+1]}
					if enc, _, _ := single.Encode(one, partMax); enc != nil {
						want[key] = true
					} else {
						dropped++
					}
				}
				views = append(views, vd)
			}
			seen := map[string]int{}
			var st Stats
			if p == ProtocolOpenCensus {
				a := startAgent(t)
				e := newExporter(t, a, WithMaxBatchBytes(budget))
				for _, vd := range views {
					e.ExportView(vd)
				}
				e.Flush()
				msgs := 0
				waitFor(t, nil, "the condition of views_split_test.go:189", func() bool {
					ms := a.Metrics()
					for _, m := range ms[msgs:] {
						for _, ts := range m.Timeseries {
							seen[ts.LabelValues[0].Value]++
						}
					}
					msgs = len(ms)
					return len(seen) >= len(want)
				})
				st = e.Stats()
			} else {
				a := startOTLPAgent(t)
				e := newOTLPExporter(t, a, WithMaxBatchBytes(budget))
				for _, vd := range views {
					e.ExportView(vd)
				}
				e.Flush()
				for _, req := range a.Requests() {
					if req.Method != otlpagent.MetricsMethod {
						continue
					}
					var mr collmetricspb.ExportMetricsServiceRequest
					if err := proto.Unmarshal(req.Body, &mr); err != nil {
						t.Fatal(err)
					}
					for _, m := range mr.ResourceMetrics[0].ScopeMetrics[0].Metrics {
						for _, dp := range m.GetHistogram().GetDataPoints() {
							seen[dp.Attributes[0].Value.GetStringValue()]++
						}
						for _, dp := range m.GetSum().GetDataPoints() {
							seen[dp.Attributes[0].Value.GetStringValue()]++
						}
					}
				}
				st = e.Stats()
			}
			for k := range want {
				if seen[k] != 1 {
					t.Fatalf("%v seed %d: row %.12s arrived %d times", p, seed, k, seen[k])
				}
			}
			if len(seen) != len(want) || int(st.PointsDroppedOversize) != dropped || (dropped > 0) != (st.ViewsLastError != nil) {
				t.Fatalf("%v seed %d (budget %d): %d rows arrived, want %d; dropped %d, want %d; %v", p, seed, budget, len(seen), len(want), st.PointsDroppedOversize, dropped, st.ViewsLastError)
			}
		}
	}
}
