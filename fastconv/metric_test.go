package fastconv

import (
	"fmt"
	"testing"
	"time"

	upmetricspb "github.com/census-instrumentation/opencensus-proto/gen-go/metrics/v1"
	"go.opencensus.io/metric/metricdata"
	"go.opencensus.io/trace"
	"google.golang.org/protobuf/proto"

	otlpmetricspb "github.com/zerocensus/ocagent/internal/otlpproto/metrics/v1"
)

var (
	mStart = time.Unix(1700000000, 5)
	mEnd   = time.Unix(1700000060, 7)
)

// sampleMetricData is one metric of each type the encoder supports, with
// label values present and absent, gauge series without a start time, and
// a distribution with exemplars.
func sampleMetricData(points int) []*metricdata.Metric {
	keys := []metricdata.LabelKey{{Key: "method", Description: "RPC method"}, {Key: "code"}}
	series := func(mk func(i int) metricdata.Point, start time.Time) []*metricdata.TimeSeries {
		var out []*metricdata.TimeSeries
		for i := range points {
			out = append(out, &metricdata.TimeSeries{
				LabelValues: []metricdata.LabelValue{metricdata.NewLabelValue(fmt.Sprint("m", i)), {Present: i%2 == 0, Value: map[bool]string{true: "OK"}[i%2 == 0]}},
				Points:      []metricdata.Point{mk(i)},
				StartTime:   start,
			})
		}
		return out
	}
	dist := func(i int) metricdata.Point {
		return metricdata.NewDistributionPoint(mEnd, &metricdata.Distribution{
			Count: 3, Sum: float64(i) + 1.5, SumOfSquaredDeviation: 0.25,
			BucketOptions: &metricdata.BucketOptions{Bounds: []float64{1, 10}},
			Buckets: []metricdata.Bucket{{Count: 1}, {Count: 2, Exemplar: &metricdata.Exemplar{Value: 5, Timestamp: mEnd,
				Attachments: metricdata.Attachments{"user": "u1"}}}, {Count: 0}},
		})
	}
	return []*metricdata.Metric{
		{Descriptor: metricdata.Descriptor{Name: "g/int", Description: "gauge int", Unit: "By", Type: metricdata.TypeGaugeInt64, LabelKeys: keys},
			TimeSeries: series(func(i int) metricdata.Point { return metricdata.NewInt64Point(mEnd, int64(i)) }, time.Time{})},
		{Descriptor: metricdata.Descriptor{Name: "g/float", Unit: "1", Type: metricdata.TypeGaugeFloat64, LabelKeys: keys},
			TimeSeries: series(func(i int) metricdata.Point { return metricdata.NewFloat64Point(mEnd, float64(i)+0.5) }, time.Time{})},
		{Descriptor: metricdata.Descriptor{Name: "c/int", Unit: "{call}", Type: metricdata.TypeCumulativeInt64, LabelKeys: keys},
			TimeSeries: series(func(i int) metricdata.Point { return metricdata.NewInt64Point(mEnd, int64(100+i)) }, mStart)},
		{Descriptor: metricdata.Descriptor{Name: "c/float", Unit: "s", Type: metricdata.TypeCumulativeFloat64, LabelKeys: keys},
			TimeSeries: series(func(i int) metricdata.Point { return metricdata.NewFloat64Point(mEnd, float64(i)*2) }, mStart)},
		{Descriptor: metricdata.Descriptor{Name: "c/dist", Unit: "ms", Type: metricdata.TypeCumulativeDistribution, LabelKeys: keys},
			TimeSeries: series(dist, mStart)},
	}
}

// TestMetricEncoderOpenCensus decodes each metric with upstream's types:
// the metricdata model is the protocol's, field for field.
func TestMetricEncoderOpenCensus(t *testing.T) {
	e := NewMetricEncoder(OpenCensus)
	for _, m := range sampleMetricData(3) {
		enc, _, err := e.Encode(m, maxInt)
		if err != nil {
			t.Fatal(err)
		}
		var got upmetricspb.Metric
		if err := proto.Unmarshal(enc, &got); err != nil {
			t.Fatal(err)
		}
		d := got.MetricDescriptor
		if d.Name != m.Descriptor.Name || d.Unit != string(m.Descriptor.Unit) || d.Description != m.Descriptor.Description ||
			int(d.Type) != int(metricType[m.Descriptor.Type]) || len(d.LabelKeys) != 2 || d.LabelKeys[0].Key != "method" ||
			d.LabelKeys[0].Description != "RPC method" {
			t.Fatalf("%s: descriptor %v", m.Descriptor.Name, d)
		}
		if len(got.Timeseries) != 3 {
			t.Fatalf("%s: %d series", d.Name, len(got.Timeseries))
		}
		for i, ts := range got.Timeseries {
			src := m.TimeSeries[i]
			if src.StartTime.IsZero() != (ts.StartTimestamp == nil) || (ts.StartTimestamp != nil && !ts.StartTimestamp.AsTime().Equal(src.StartTime)) {
				t.Errorf("%s/%d: start %v", d.Name, i, ts.StartTimestamp)
			}
			for j, lv := range ts.LabelValues {
				if lv.Value != src.LabelValues[j].Value || lv.HasValue != src.LabelValues[j].Present {
					t.Errorf("%s/%d: label %d = %v", d.Name, i, j, lv)
				}
			}
			pt := ts.Points[0]
			if !pt.Timestamp.AsTime().Equal(mEnd) {
				t.Errorf("%s/%d: time %v", d.Name, i, pt.Timestamp)
			}
			switch v := src.Points[0].Value.(type) {
			case int64:
				if pt.GetInt64Value() != v {
					t.Errorf("%s/%d: %v", d.Name, i, pt.Value)
				}
			case float64:
				if pt.GetDoubleValue() != v {
					t.Errorf("%s/%d: %v", d.Name, i, pt.Value)
				}
			case *metricdata.Distribution:
				dv := pt.GetDistributionValue()
				if dv.Count != v.Count || dv.Sum != v.Sum || dv.SumOfSquaredDeviation != v.SumOfSquaredDeviation ||
					len(dv.BucketOptions.GetExplicit().Bounds) != 2 || len(dv.Buckets) != 3 || dv.Buckets[1].Count != 2 ||
					dv.Buckets[1].Exemplar.GetValue() != 5 || dv.Buckets[1].Exemplar.Attachments["user"] != "u1" || dv.Buckets[0].Exemplar != nil {
					t.Errorf("%s/%d: %v", d.Name, i, dv)
				}
			}
		}
	}
}

// TestMetricEncoderOTLPIsTranslation: the OTLP encoding of each metric is
// exactly the OpenCensus encoding translated by the rules of the
// Collector's OpenCensus translation (this package's translation of
// caller-built requests, checked against the Collector in interop).
func TestMetricEncoderOTLPIsTranslation(t *testing.T) {
	oc, ot := NewMetricEncoder(OpenCensus), NewMetricEncoder(OTLP)
	for _, m := range sampleMetricData(4) {
		encOC, _, err := oc.Encode(m, maxInt)
		if err != nil {
			t.Fatal(err)
		}
		var ocm upmetricspb.Metric
		if err := proto.Unmarshal(encOC, &ocm); err != nil {
			t.Fatal(err)
		}
		want, err := metric(&ocm)
		if err != nil {
			t.Fatal(err)
		}
		encOT, _, err := ot.Encode(m, maxInt)
		if err != nil {
			t.Fatal(err)
		}
		var got otlpmetricspb.Metric
		if err := got.UnmarshalVT(encOT); err != nil {
			t.Fatal(err)
		}
		if !got.EqualVT(want) {
			t.Errorf("%s:\n got %v\nwant %v", m.Descriptor.Name, &got, want)
		}
	}
}

func TestMetricEncoderRefuses(t *testing.T) {
	bad := []*metricdata.Metric{
		nil,
		{Descriptor: metricdata.Descriptor{Type: metricdata.TypeSummary}},
		{Descriptor: metricdata.Descriptor{Type: metricdata.Type(99)}},
		{Descriptor: metricdata.Descriptor{Type: metricdata.TypeGaugeInt64}, TimeSeries: []*metricdata.TimeSeries{nil}},
		{Descriptor: metricdata.Descriptor{Type: metricdata.TypeGaugeInt64}, TimeSeries: []*metricdata.TimeSeries{{Points: []metricdata.Point{metricdata.NewFloat64Point(mEnd, 1)}}}},
		{Descriptor: metricdata.Descriptor{Type: metricdata.TypeCumulativeDistribution}, TimeSeries: []*metricdata.TimeSeries{{Points: []metricdata.Point{{Value: (*metricdata.Distribution)(nil)}}}}},
	}
	for _, p := range []Protocol{OpenCensus, OTLP} {
		e := NewMetricEncoder(p)
		for i, m := range bad {
			if _, _, err := e.Encode(m, maxInt); err == nil {
				t.Errorf("%v: metric %d accepted", p, i)
			}
		}
	}
	gd := &metricdata.Metric{Descriptor: metricdata.Descriptor{Type: metricdata.TypeGaugeDistribution}}
	if _, _, err := NewMetricEncoder(OTLP).Encode(gd, maxInt); err == nil {
		t.Error("OTLP accepted a gauge distribution")
	}
	if _, _, err := NewMetricEncoder(OpenCensus).Encode(gd, maxInt); err != nil {
		t.Errorf("OpenCensus refused a gauge distribution: %v", err)
	}
}

// TestMetricEncoderAllocs: encoding metrics of the same shapes again
// allocates nothing, in either protocol, however many points; alternating
// kinds through one encoder too.
func TestMetricEncoderAllocs(t *testing.T) {
	for _, p := range []Protocol{OpenCensus, OTLP} {
		for _, points := range []int{10, 1000} {
			e := NewMetricEncoder(p)
			ms := sampleMetricData(points)
			// OTLP carries a SpanContext attachment as ids, without
			// allocating; OpenCensus formats it as a string, as for views.
			if p == OTLP {
				ms[4].TimeSeries[0].Points[0].Value.(*metricdata.Distribution).Buckets[0].Exemplar = &metricdata.Exemplar{
					Value: 1, Timestamp: mEnd, Attachments: metricdata.Attachments{metricdata.AttachmentKeySpanContext: trace.SpanContext{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}}}}
			}
			run := func() {
				for _, m := range ms {
					if _, _, err := e.Encode(m, maxInt); err != nil {
						panic(err)
					}
				}
			}
			run()
			if got := testing.AllocsPerRun(20, run); got != 0 {
				t.Errorf("%v/%d points: %v allocs", p, points, got)
			}
		}
	}
}

// TestMetricEncoderSplits: a metric larger than a request goes in parts
// of its time series, each with the descriptor, every series once.
func TestMetricEncoderSplits(t *testing.T) {
	for _, p := range []Protocol{OpenCensus, OTLP} {
		e := NewMetricEncoder(p)
		m := sampleMetricData(500)[2]
		const max = 2000
		enc, size, err := e.Encode(m, max)
		if err != nil || enc != nil || size <= max {
			t.Fatalf("%v: enc %d bytes, size %d, %v", p, len(enc), size, err)
		}
		var values []int64
		for last := false; !last; {
			enc, last = e.Next(max)
			if enc == nil {
				t.Fatalf("%v: nil part", p)
			}
			if len(enc) > max {
				t.Fatalf("%v: part of %d bytes", p, len(enc))
			}
			if p == OpenCensus {
				var got upmetricspb.Metric
				if err := proto.Unmarshal(enc, &got); err != nil || got.MetricDescriptor.GetName() != "c/int" {
					t.Fatalf("part: %v %v", err, got.MetricDescriptor)
				}
				for _, ts := range got.Timeseries {
					values = append(values, ts.Points[0].GetInt64Value())
				}
			} else {
				var got otlpmetricspb.Metric
				if err := got.UnmarshalVT(enc); err != nil || got.Name != "c/int" || !got.GetSum().GetIsMonotonic() {
					t.Fatalf("part: %v %v", err, got.Name)
				}
				for _, dp := range got.GetSum().DataPoints {
					values = append(values, dp.GetAsInt())
				}
			}
		}
		if len(values) != 500 {
			t.Fatalf("%v: %d series arrived", p, len(values))
		}
		for i, v := range values {
			if v != int64(100+i) {
				t.Fatalf("%v: series %d = %d", p, i, v)
			}
		}
		if e.DroppedRows() != 0 {
			t.Errorf("%v: %d dropped", p, e.DroppedRows())
		}
	}
}
