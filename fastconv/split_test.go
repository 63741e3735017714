package fastconv

import (
	"math/rand/v2"
	"testing"

	upmetricspb "github.com/census-instrumentation/opencensus-proto/gen-go/metrics/v1"
	"go.opencensus.io/stats/view"
	"google.golang.org/protobuf/proto"

	otlpmetricspb "github.com/zerocensus/ocagent/internal/otlpproto/metrics/v1"
	"github.com/zerocensus/ocagent/internal/testspans"
)

// rowIDs decodes one encoded metric with protobuf-go (OpenCensus into
// upstream's types) and returns its name and the id of each row: the
// testspans views number their rows in their values.
func rowIDs(t *testing.T, p Protocol, enc []byte) (name string, ids []int64) {
	t.Helper()
	if p == OpenCensus {
		var m upmetricspb.Metric
		if err := proto.Unmarshal(enc, &m); err != nil {
			t.Fatal(err)
		}
		for _, ts := range m.Timeseries {
			pt := ts.Points[0]
			switch v := pt.Value.(type) {
			case *upmetricspb.Point_Int64Value:
				ids = append(ids, v.Int64Value)
			case *upmetricspb.Point_DoubleValue:
				ids = append(ids, int64(v.DoubleValue/1.5))
			case *upmetricspb.Point_DistributionValue:
				ids = append(ids, v.DistributionValue.Buckets[0].Count)
			}
		}
		return m.GetMetricDescriptor().GetName(), ids
	}
	var m otlpmetricspb.Metric
	if err := proto.Unmarshal(enc, &m); err != nil {
		t.Fatal(err)
	}
	num := func(dps []*otlpmetricspb.NumberDataPoint) {
		for _, dp := range dps {
			switch v := dp.Value.(type) {
			case *otlpmetricspb.NumberDataPoint_AsInt:
				ids = append(ids, v.AsInt)
			case *otlpmetricspb.NumberDataPoint_AsDouble:
				ids = append(ids, int64(v.AsDouble/1.5))
			}
		}
	}
	num(m.GetGauge().GetDataPoints())
	num(m.GetSum().GetDataPoints())
	for _, dp := range m.GetHistogram().GetDataPoints() {
		ids = append(ids, int64(dp.BucketCounts[0]))
	}
	return m.Name, ids
}

// encodeParts encodes vd whole or, when it is larger than limit, in parts.
func encodeParts(t *testing.T, e *ViewEncoder, vd *view.Data, limit int) (parts [][]byte) {
	t.Helper()
	enc, size, err := e.Encode(vd, limit)
	if err != nil {
		t.Fatal(err)
	}
	if enc != nil {
		return [][]byte{append([]byte(nil), enc...)}
	}
	if size <= limit {
		t.Fatalf("no encoding of %d bytes within %d", size, limit)
	}
	for {
		enc, last := e.Next(limit)
		if enc != nil {
			if len(enc) > limit {
				t.Fatalf("part of %d bytes over %d", len(enc), limit)
			}
			parts = append(parts, append([]byte(nil), enc...))
		}
		if last {
			return parts
		}
		if enc == nil {
			t.Fatal("no part and not last")
		}
	}
}

// TestViewSplitModel: over seeded random views (every aggregation, 0 to
// 2,000 rows) and part limits, for both protocols, every row arrives
// exactly once, in order, in parts no larger than the limit that each carry
// the metric's name; rows that alone exceed the limit are the only ones
// missing, and DroppedRows counts exactly them.
func TestViewSplitModel(t *testing.T) {
	seqs := 120
	if testing.Short() {
		seqs = 30
	}
	for _, p := range []Protocol{OpenCensus, OTLP} {
		e := NewViewEncoder(p, "app")
		for seed := range uint64(seqs) {
			r := rand.New(rand.NewPCG(seed, 27))
			agg := testspans.Aggregations[r.IntN(len(testspans.Aggregations))]
			n := r.IntN(2000)
			vd := testspans.View(agg, n, r.IntN(2) == 0)
			whole, _, err := NewViewEncoder(p, "app").Encode(vd, 1<<30)
			if err != nil {
				t.Fatal(err)
			}
			wantName, all := rowIDs(t, p, whole)
			limit := 200 + r.IntN(len(whole)+200)
			dropped0 := e.DroppedRows()
			parts := encodeParts(t, e, vd, limit)
			var got []int64
			for _, part := range parts {
				name, ids := rowIDs(t, p, part)
				if name != wantName {
					t.Fatalf("seed %d: a part of %q is named %q", seed, wantName, name)
				}
				got = append(got, ids...)
			}
			// The rows expected: those whose own part fits.
			var want []int64
			single := NewViewEncoder(p, "app")
			for i, id := range all {
				one := &view.Data{View: vd.View, Start: vd.Start, End: vd.End, Rows: vd.Rows[i : i+1]}
				if enc, _, _ := single.Encode(one, limit); enc != nil {
					want = append(want, id)
				}
			}
			if len(got) != len(want) {
				t.Fatalf("seed %d (%v %s, %d rows, limit %d, %d parts): %d rows arrived, want %d", seed, p, agg, n, limit, len(parts), len(got), len(want))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("seed %d: row %d is %d, want %d", seed, i, got[i], want[i])
				}
			}
			if d := e.DroppedRows() - dropped0; int(d) != len(all)-len(want) {
				t.Fatalf("seed %d: %d rows counted dropped, %d missing", seed, d, len(all)-len(want))
			}
			if len(all) != len(want) && e.LastDrop() == nil {
				t.Fatalf("seed %d: rows dropped and no LastDrop", seed)
			}
		}
	}
}

// TestViewSplitAllocs: splitting a large view into parts allocates nothing
// once warm (the row sizes are kept in a reused slice).
func TestViewSplitAllocs(t *testing.T) {
	for _, p := range []Protocol{OpenCensus, OTLP} {
		vd := testspans.View("distribution", 5000, false)
		e := NewViewEncoder(p, "")
		run := func() {
			if enc, _, _ := e.Encode(vd, 64<<10); enc != nil {
				t.Fatal("not split")
			}
			for {
				if _, last := e.Next(64 << 10); last {
					return
				}
			}
		}
		run()
		if got := testing.AllocsPerRun(20, run); got != 0 {
			t.Errorf("%v: %v allocs per split view of 5000 rows, want 0", p, got)
		}
	}
}
