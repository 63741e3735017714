package ocagent

import (
	"context"
	"testing"
	"time"

	upmetricspb "github.com/census-instrumentation/opencensus-proto/gen-go/metrics/v1"
	"go.opencensus.io/metric"
	"go.opencensus.io/metric/metricdata"
	"go.opencensus.io/metric/metricexport"
	"go.opencensus.io/metric/metricproducer"

	"github.com/zerocensus/ocagent/internal/otlpagent"
	collmetricspb "github.com/zerocensus/ocagent/internal/otlpproto/collector/metrics/v1"
	commonpb "github.com/zerocensus/ocagent/internal/otlpproto/common/v1"
	otlpmetricspb "github.com/zerocensus/ocagent/internal/otlpproto/metrics/v1"
)

var (
	mdStart = time.Unix(1700000000, 0)
	mdEnd   = time.Unix(1700000030, 0)
)

// metricdataSample is one metric of each type, two series each, the second
// with its second label value absent.
func metricdataSample() []*metricdata.Metric {
	keys := []metricdata.LabelKey{{Key: "host"}, {Key: "code"}}
	lv := [][]metricdata.LabelValue{
		{metricdata.NewLabelValue("a"), metricdata.NewLabelValue("OK")},
		{metricdata.NewLabelValue("b"), {}},
	}
	mk := func(name, unit string, typ metricdata.Type, start time.Time, v func(i int) any) *metricdata.Metric {
		m := &metricdata.Metric{Descriptor: metricdata.Descriptor{Name: name, Description: name + " desc", Unit: metricdata.Unit(unit), Type: typ, LabelKeys: keys}}
		for i := range 2 {
			m.TimeSeries = append(m.TimeSeries, &metricdata.TimeSeries{LabelValues: lv[i], StartTime: start,
				Points: []metricdata.Point{{Time: mdEnd, Value: v(i)}}})
		}
		return m
	}
	return []*metricdata.Metric{
		mk("md/gauge_int", "By", metricdata.TypeGaugeInt64, time.Time{}, func(i int) any { return int64(10 + i) }),
		mk("md/gauge_float", "1", metricdata.TypeGaugeFloat64, time.Time{}, func(i int) any { return 0.5 + float64(i) }),
		mk("md/count", "{call}", metricdata.TypeCumulativeInt64, mdStart, func(i int) any { return int64(100 + i) }),
		mk("md/sum", "s", metricdata.TypeCumulativeFloat64, mdStart, func(i int) any { return 2.5 * float64(i+1) }),
		mk("md/latency", "ms", metricdata.TypeCumulativeDistribution, mdStart, func(i int) any {
			return &metricdata.Distribution{Count: int64(3 + i), Sum: 30, BucketOptions: &metricdata.BucketOptions{Bounds: []float64{5, 50}},
				Buckets: []metricdata.Bucket{{Count: 1}, {Count: int64(1 + i)}, {Count: 1}}}
		}),
	}
}

var sampleTypes = map[string]upmetricspb.MetricDescriptor_Type{
	"md/gauge_int": upmetricspb.MetricDescriptor_GAUGE_INT64, "md/gauge_float": upmetricspb.MetricDescriptor_GAUGE_DOUBLE,
	"md/count": upmetricspb.MetricDescriptor_CUMULATIVE_INT64, "md/sum": upmetricspb.MetricDescriptor_CUMULATIVE_DOUBLE,
	"md/latency": upmetricspb.MetricDescriptor_CUMULATIVE_DISTRIBUTION,
}

// TestExportMetricsOpenCensus: ExportMetrics' metrics arrive at the agent
// as OpenCensus metrics: names, units, types, label keys and values, start
// times, values.
func TestExportMetricsOpenCensus(t *testing.T) {
	a := startAgent(t)
	e := newExporter(t, a)
	var _ metricexport.Exporter = e
	if err := e.ExportMetrics(context.Background(), metricdataSample()); err != nil {
		t.Fatal(err)
	}
	e.Flush()
	if err := a.WaitMetrics(5, wait); err != nil {
		t.Fatal(err)
	}
	if st := e.Stats(); st.MetricsExported != 5 || st.MetricsQueued != 0 {
		t.Fatalf("stats %+v", st)
	}
	for _, m := range a.Metrics() {
		d := m.MetricDescriptor
		if want, ok := sampleTypes[d.Name]; !ok || d.Type != want || d.Description != d.Name+" desc" || len(d.LabelKeys) != 2 || d.LabelKeys[1].Key != "code" {
			t.Fatalf("descriptor %v", d)
		}
		if len(m.Timeseries) != 2 {
			t.Fatalf("%s: %d series", d.Name, len(m.Timeseries))
		}
		for i, ts := range m.Timeseries {
			if ts.LabelValues[0].Value != []string{"a", "b"}[i] || ts.LabelValues[1].HasValue != (i == 0) {
				t.Errorf("%s/%d: labels %v", d.Name, i, ts.LabelValues)
			}
			gauge := d.Type == upmetricspb.MetricDescriptor_GAUGE_INT64 || d.Type == upmetricspb.MetricDescriptor_GAUGE_DOUBLE
			if gauge != (ts.StartTimestamp == nil) || (!gauge && !ts.StartTimestamp.AsTime().Equal(mdStart)) {
				t.Errorf("%s/%d: start %v", d.Name, i, ts.StartTimestamp)
			}
			p := ts.Points[0]
			if !p.Timestamp.AsTime().Equal(mdEnd) {
				t.Errorf("%s/%d: time %v", d.Name, i, p.Timestamp)
			}
			var ok bool
			switch d.Name {
			case "md/gauge_int":
				ok = p.GetInt64Value() == int64(10+i)
			case "md/gauge_float":
				ok = p.GetDoubleValue() == 0.5+float64(i)
			case "md/count":
				ok = p.GetInt64Value() == int64(100+i)
			case "md/sum":
				ok = p.GetDoubleValue() == 2.5*float64(i+1)
			case "md/latency":
				dv := p.GetDistributionValue()
				ok = dv.Count == int64(3+i) && dv.Sum == 30 && len(dv.Buckets) == 3 && dv.Buckets[1].Count == int64(1+i) &&
					len(dv.BucketOptions.GetExplicit().GetBounds()) == 2
			}
			if !ok {
				t.Errorf("%s/%d: point %v", d.Name, i, p)
			}
		}
	}
}

// TestExportMetricsOTLP: the same metrics arrive as OTLP metrics, mapped as
// the Collector's OpenCensus translation does.
func TestExportMetricsOTLP(t *testing.T) {
	a := startOTLPAgent(t)
	e := newOTLPExporter(t, a)
	if err := e.ExportMetrics(context.Background(), metricdataSample()); err != nil {
		t.Fatal(err)
	}
	e.Flush()
	if st := e.Stats(); st.MetricsExported != 5 {
		t.Fatalf("stats %+v", st)
	}
	if c := a.Counts(); c.Metrics != 5 || c.Points != 10 {
		t.Fatalf("agent counts %+v", c)
	}
	seen := 0
	for _, r := range a.Requests() {
		if r.Method != otlpagent.MetricsMethod {
			continue
		}
		req := new(collmetricspb.ExportMetricsServiceRequest)
		if err := req.UnmarshalVT(r.Body); err != nil {
			t.Fatal(err)
		}
		for _, m := range req.ResourceMetrics[0].ScopeMetrics[0].Metrics {
			seen++
			if m.Description != m.Name+" desc" {
				t.Errorf("%s: description %q", m.Name, m.Description)
			}
			var attrs [][]string
			var starts []uint64
			var ok bool
			switch m.Name {
			case "md/gauge_int", "md/gauge_float":
				g := m.GetGauge()
				for i, dp := range g.GetDataPoints() {
					attrs, starts = append(attrs, kvs(dp.Attributes)), append(starts, dp.StartTimeUnixNano)
					if m.Name == "md/gauge_int" {
						ok = dp.GetAsInt() == int64(10+i) && m.Unit == "By"
					} else {
						ok = dp.GetAsDouble() == 0.5+float64(i) && m.Unit == "1"
					}
					if !ok {
						break
					}
				}
				ok = ok && len(g.GetDataPoints()) == 2 && starts[0] == 0
			case "md/count", "md/sum":
				s := m.GetSum()
				ok = s.GetIsMonotonic() && s.GetAggregationTemporality() == otlpmetricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE &&
					len(s.GetDataPoints()) == 2
				for i, dp := range s.GetDataPoints() {
					attrs, starts = append(attrs, kvs(dp.Attributes)), append(starts, dp.StartTimeUnixNano)
					if m.Name == "md/count" {
						ok = ok && dp.GetAsInt() == int64(100+i)
					} else {
						ok = ok && dp.GetAsDouble() == 2.5*float64(i+1)
					}
				}
				ok = ok && starts[0] == uint64(mdStart.UnixNano())
			case "md/latency":
				h := m.GetHistogram()
				ok = h.GetAggregationTemporality() == otlpmetricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE && len(h.GetDataPoints()) == 2
				for i, dp := range h.GetDataPoints() {
					attrs = append(attrs, kvs(dp.Attributes))
					ok = ok && dp.Count == uint64(3+i) && dp.GetSum() == 30 && len(dp.ExplicitBounds) == 2 && len(dp.BucketCounts) == 3 &&
						dp.BucketCounts[1] == uint64(1+i) && dp.TimeUnixNano == uint64(mdEnd.UnixNano())
				}
			}
			if !ok {
				t.Errorf("%s: %v", m.Name, m)
			}
			// Present label values only, under their keys.
			if len(attrs) != 2 || len(attrs[0]) != 4 || attrs[0][0] != "host" || attrs[0][1] != "a" || attrs[0][2] != "code" ||
				attrs[0][3] != "OK" || len(attrs[1]) != 2 || attrs[1][1] != "b" {
				t.Errorf("%s: attributes %v", m.Name, attrs)
			}
		}
	}
	if seen != 5 {
		t.Errorf("%d metrics", seen)
	}
}

// TestIntervalReaderExportsRegistry: OpenCensus's metricexport reader exports
// a metric.Registry's gauges, registered with the global manager, through
// the exporter.
func TestIntervalReaderExportsRegistry(t *testing.T) {
	a := startAgent(t)
	e := newExporter(t, a, WithDataBundlerOptions(10*time.Millisecond, 10))
	r := metric.NewRegistry()
	g, err := r.AddInt64Gauge("reg/queue_depth", metric.WithUnit("{item}"), metric.WithLabelKeys("shard"))
	if err != nil {
		t.Fatal(err)
	}
	entry, err := g.GetEntry(metricdata.NewLabelValue("s1"))
	if err != nil {
		t.Fatal(err)
	}
	entry.Set(42)
	metricproducer.GlobalManager().AddProducer(r)
	defer metricproducer.GlobalManager().DeleteProducer(r)
	// What an IntervalReader does every ReportingInterval (at least 1 s),
	// here once, without waiting for its ticker.
	metricexport.NewReader().ReadAndExport(e)
	e.Flush()
	waitFor(t, nil, "the condition of metricexport_test.go:224", func() bool {
		for _, m := range a.Metrics() {
			d := m.MetricDescriptor
			if d.Name == "reg/queue_depth" && d.Unit == "{item}" && d.Type == upmetricspb.MetricDescriptor_GAUGE_INT64 &&
				m.Timeseries[0].LabelValues[0].Value == "s1" && m.Timeseries[0].Points[0].GetInt64Value() == 42 {
				return true
			}
		}
		return false
	})
}

// TestExportMetricsRefusedAndDropped: invalid metrics are counted, a full
// ring and a stopped exporter are errors.
func TestExportMetricsRefusedAndDropped(t *testing.T) {
	a := startAgent(t)
	e := newExporter(t, a)
	bad := &metricdata.Metric{Descriptor: metricdata.Descriptor{Name: "bad", Type: metricdata.TypeSummary}}
	if err := e.ExportMetrics(context.Background(), []*metricdata.Metric{bad, nil}); err != nil {
		t.Fatal(err)
	}
	e.Flush()
	if st := e.Stats(); st.MetricsDroppedInvalid != 1 || st.MetricsExported != 0 {
		t.Errorf("stats %+v", st)
	}
	_ = e.Stop()
	if err := e.ExportMetrics(context.Background(), metricdataSample()); err == nil {
		t.Error("ExportMetrics after Stop: no error")
	}
	if st := e.Stats(); st.MetricsDroppedNotRunning != 5 {
		t.Errorf("stats %+v", st)
	}
}

func TestExportMetricsAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are gated without the race detector")
	}
	e, err := NewExporter(WithInsecure(), WithAddress(discardAgent(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	ms := metricdataSample()
	ctx := context.Background()
	if got := testing.AllocsPerRun(200, func() { _ = e.ExportMetrics(ctx, ms) }); got != 0 {
		t.Errorf("ExportMetrics: %v allocs, want 0", got)
	}
}

// kvs flattens string attributes into key, value, key, value...
func kvs(attrs []*commonpb.KeyValue) []string {
	var out []string
	for _, kv := range attrs {
		out = append(out, kv.Key, kv.GetValue().GetStringValue())
	}
	return out
}
