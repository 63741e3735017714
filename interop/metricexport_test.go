//go:build unix

package interop

import (
	"context"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"go.opencensus.io/metric/metricdata"
	"go.opencensus.io/trace"

	ocagent "github.com/zerocensus/ocagent"
)

// TestMetricExportAtCollectors: metricdata given to ExportMetrics (a gauge,
// a cumulative float64, a cumulative distribution) and the exporter's
// self-metrics (read from its producer, as an IntervalReader does) reach
// both real Collectors with their names, units, kinds, attributes and
// values; the self-metrics' values are Stats' at the moment of the read.
func TestMetricExportAtCollectors(t *testing.T) {
	start, end := time.Unix(1700000000, 0), time.Unix(1700000060, 0)
	keys := []metricdata.LabelKey{{Key: "shard"}}
	series := func(v any, st time.Time) []*metricdata.TimeSeries {
		return []*metricdata.TimeSeries{{LabelValues: []metricdata.LabelValue{metricdata.NewLabelValue("s1")}, StartTime: st,
			Points: []metricdata.Point{{Time: end, Value: v}}}}
	}
	sample := []*metricdata.Metric{
		{Descriptor: metricdata.Descriptor{Name: "interop/md_gauge", Description: "depth", Unit: "{item}", Type: metricdata.TypeGaugeInt64, LabelKeys: keys},
			TimeSeries: series(int64(42), time.Time{})},
		{Descriptor: metricdata.Descriptor{Name: "interop/md_seconds", Unit: "s", Type: metricdata.TypeCumulativeFloat64, LabelKeys: keys},
			TimeSeries: series(2.5, start)},
		{Descriptor: metricdata.Descriptor{Name: "interop/md_latency", Unit: "ms", Type: metricdata.TypeCumulativeDistribution, LabelKeys: keys},
			TimeSeries: series(&metricdata.Distribution{Count: 3, Sum: 30, BucketOptions: &metricdata.BucketOptions{Bounds: []float64{5, 50}},
				Buckets: []metricdata.Bucket{{Count: 1}, {Count: 2}, {Count: 0}}}, start)},
	}
	const points = 3 // one series of one point each
	dir := t.TempDir()
	for _, c := range []struct {
		name, spanType string
		col            collectorKind
		proto          ocagent.Protocol
	}{{"opencensus", "opencensus_grpc_span_exporter", ocCollector, ocagent.ProtocolOpenCensus},
		{"otlp", "otlp_grpc_span_exporter", otlpCollector, ocagent.ProtocolOTLP}} {
		t.Run(c.name, func(t *testing.T) {
			addr, out := freeAddr(t), filepath.Join(dir, c.name+".jsonl")
			startCollectorOf(t, c.col, addr, out, nil)
			exp, err := ocagent.NewExporter(ocagent.WithProtocol(c.proto), ocagent.WithInsecure(), ocagent.WithAddress(addr),
				ocagent.WithServiceName("zerocensus-interop"), ocagent.WithSelfMetrics(0))
			if err != nil {
				t.Fatal(err)
			}
			defer exp.Stop()
			for i := range 10 {
				exp.ExportSpan(&trace.SpanData{SpanContext: trace.SpanContext{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{byte(i + 1)}},
					Name: "interop/md_span", StartTime: start, EndTime: end})
			}
			exp.Flush()
			if err := exp.ExportMetrics(context.Background(), sample); err != nil {
				t.Fatal(err)
			}
			exp.Flush()
			st := exp.Stats()
			if err := exp.ExportMetrics(context.Background(), exp.SelfMetrics().Read()); err != nil {
				t.Fatal(err)
			}
			exp.Flush()
			names := []string{"interop/md_gauge", "interop/md_seconds", "interop/md_latency",
				"otel.sdk.exporter.span.exported", "otel.sdk.processor.span.queue.capacity",
				"otel.sdk.exporter.metric_data_point.exported", "otel.sdk.exporter.operation.duration"}
			o := waitOutput(t, out, outputTimeout, func(o *output) bool { return o.hasAll(nil, names) }, statsOf(exp))

			g := o.metricsNamed("interop/md_gauge")[0]
			if g.Unit != "{item}" || g.Description != "depth" || g.Gauge == nil || len(g.Gauge.DataPoints) != 1 ||
				*g.Gauge.DataPoints[0].AsInt != "42" || g.Gauge.DataPoints[0].TimeUnixNano != nanos(end) {
				t.Errorf("gauge: %+v", g.jsonMetric)
			} else {
				checkAttrs(t, "gauge", g.Gauge.DataPoints[0].Attributes, attrs{"shard": str("s1")})
			}
			s := o.metricsNamed("interop/md_seconds")[0]
			if s.Unit != "s" || s.Sum == nil || !s.Sum.IsMonotonic || s.Sum.AggregationTemporality != 2 || len(s.Sum.DataPoints) != 1 ||
				*s.Sum.DataPoints[0].AsDouble != 2.5 || s.Sum.DataPoints[0].StartTimeUnixNano != nanos(start) {
				t.Errorf("sum: %+v", s.jsonMetric)
			}
			h := o.metricsNamed("interop/md_latency")[0]
			if h.Unit != "ms" || h.Histogram == nil || h.Histogram.AggregationTemporality != 2 || len(h.Histogram.DataPoints) != 1 {
				t.Fatalf("histogram: %+v", h.jsonMetric)
			}
			hp := h.Histogram.DataPoints[0]
			if hp.Count != "3" || *hp.Sum != 30 || len(hp.ExplicitBounds) != 2 || len(hp.BucketCounts) != 3 || hp.BucketCounts[1] != "2" ||
				hp.StartTimeUnixNano != nanos(start) {
				t.Errorf("histogram point: %+v", hp)
			}
			checkAttrs(t, "histogram", hp.Attributes, attrs{"shard": str("s1")})

			se := o.metricsNamed("otel.sdk.exporter.span.exported")[0]
			if se.Unit != "{span}" || se.Sum == nil || !se.Sum.IsMonotonic {
				t.Fatalf("span.exported: %+v", se.jsonMetric)
			}
			found := false
			for _, p := range se.Sum.DataPoints {
				a := attrSet(t, "span.exported", p.Attributes)
				if _, failed := a["error.type"]; failed {
					continue
				}
				found = true
				host, port, _ := net.SplitHostPort(addr)
				checkAttrs(t, "span.exported", p.Attributes, attrs{"otel.component.type": str(c.spanType), "otel.component.name": a["otel.component.name"],
					"server.address": str(host), "server.port": str(port)})
				if *p.AsInt != strconv.FormatUint(st.SpansExported, 10) || st.SpansExported != 10 {
					t.Errorf("span.exported = %s, Stats say %d", *p.AsInt, st.SpansExported)
				}
			}
			if !found {
				t.Error("no span.exported success series")
			}
			// Data points, not metrics: what ExportMetrics sent, point by
			// point, as Stats counted them.
			pe := o.metricsNamed("otel.sdk.exporter.metric_data_point.exported")[0]
			found = false
			for _, p := range pe.Sum.DataPoints {
				a := attrSet(t, "metric_data_point.exported", p.Attributes)
				if _, failed := a["error.type"]; failed {
					continue
				}
				found = true
				if *p.AsInt != strconv.FormatUint(st.PointsExported, 10) || st.PointsExported != uint64(points) {
					t.Errorf("metric_data_point.exported = %s, Stats say %d, sent %d", *p.AsInt, st.PointsExported, points)
				}
			}
			if !found {
				t.Error("no metric_data_point.exported success series")
			}
			// One duration per span batch, in the span exporter's success
			// series.
			od := o.metricsNamed("otel.sdk.exporter.operation.duration")[0]
			if od.Unit != "s" || od.Histogram == nil {
				t.Fatalf("operation.duration: %+v", od.jsonMetric)
			}
			found = false
			for _, p := range od.Histogram.DataPoints {
				a := attrSet(t, "operation.duration", p.Attributes)
				_, failed := a["error.type"]
				if failed || a["otel.component.type"] != str(c.spanType) {
					continue
				}
				found = true
				if p.Count == "0" || len(p.ExplicitBounds) != 14 {
					t.Errorf("operation.duration point: %+v", p)
				}
			}
			if !found {
				t.Error("no operation.duration success series of the span exporter")
			}
			qc := o.metricsNamed("otel.sdk.processor.span.queue.capacity")[0]
			if qc.Gauge == nil || *qc.Gauge.DataPoints[0].AsInt != strconv.Itoa(ocagent.DefaultSpanRingCapacity) {
				t.Errorf("queue.capacity: %+v", qc.jsonMetric)
			}
		})
	}
}
