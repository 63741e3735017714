package fastconv

import (
	"fmt"
	"slices"
	"strings"

	occommonpb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/common/v1"
	ocmetricspb "github.com/census-instrumentation/opencensus-proto/gen-go/metrics/v1"
	ocresourcepb "github.com/census-instrumentation/opencensus-proto/gen-go/resource/v1"
	octracepb "github.com/census-instrumentation/opencensus-proto/gen-go/trace/v1"
	"google.golang.org/protobuf/types/known/timestamppb"

	collmetricspb "github.com/zerocensus/ocagent/internal/otlpproto/collector/metrics/v1"
	colltracepb "github.com/zerocensus/ocagent/internal/otlpproto/collector/trace/v1"
	commonpb "github.com/zerocensus/ocagent/internal/otlpproto/common/v1"
	metricspb "github.com/zerocensus/ocagent/internal/otlpproto/metrics/v1"
	tracepb "github.com/zerocensus/ocagent/internal/otlpproto/trace/v1"
)

// The translation of caller-built OpenCensus requests
// (ExportTraceServiceRequest, ExportMetricsServiceRequest) into OTLP, by the
// rules of the Collector's translator: the request's spans (metrics) without
// a resource of their own share one ResourceSpans (ResourceMetrics) with the
// request's Node and Resource; each one with its own resource gets its own.
// Not a hot path: it allocates.

func tsOTLP(t *timestamppb.Timestamp) uint64 { return uint64(t.AsTime().UnixNano()) }

// id returns b as an id of n bytes: shorter ones padded with zeros, longer
// ones cut, as the translator's fixed-size ids; all zeros is no id.
func id(b []byte, n int) []byte {
	out := make([]byte, n)
	copy(out, b)
	for _, c := range out {
		if c != 0 {
			return out
		}
	}
	return nil
}

// Traces translates an OpenCensus trace request's parts: its Node and
// Resource (the exporter's own when the caller left them out, as an agent
// applies a stream's last ones) and its spans.
func otlpTraceRequest(node *occommonpb.Node, res *ocresourcepb.Resource, spans []*octracepb.Span) *colltracepb.ExportTraceServiceRequest {
	out := &colltracepb.ExportTraceServiceRequest{}
	shared := &tracepb.ResourceSpans{Resource: otlpResource(node, res), ScopeSpans: []*tracepb.ScopeSpans{{}}}
	out.ResourceSpans = append(out.ResourceSpans, shared)
	for _, s := range spans {
		if s == nil {
			continue
		}
		if s.Resource == nil {
			shared.ScopeSpans[0].Spans = append(shared.ScopeSpans[0].Spans, span(s))
			continue
		}
		out.ResourceSpans = append(out.ResourceSpans, &tracepb.ResourceSpans{
			Resource:   otlpResource(node, s.Resource),
			ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{span(s)}}},
		})
	}
	return out
}

func span(s *octracepb.Span) *tracepb.Span {
	attrs := s.GetAttributes().GetAttributeMap()
	out := &tracepb.Span{
		TraceId:                id(s.TraceId, 16),
		SpanId:                 id(s.SpanId, 8),
		ParentSpanId:           id(s.ParentSpanId, 8),
		Name:                   s.GetName().GetValue(),
		StartTimeUnixNano:      tsOTLP(s.StartTime),
		EndTimeUnixNano:        tsOTLP(s.EndTime),
		DroppedAttributesCount: uint32(s.GetAttributes().GetDroppedAttributesCount()),
	}
	skip := map[string]bool{}
	switch s.Kind {
	case octracepb.Span_SERVER:
		out.Kind = tracepb.Span_SPAN_KIND_SERVER
	case octracepb.Span_CLIENT:
		out.Kind = tracepb.Span_SPAN_KIND_CLIENT
	case octracepb.Span_SPAN_KIND_UNSPECIFIED:
		if v, ok := attrs[keySpanKind].GetValue().(*octracepb.AttributeValue_StringValue); ok && v != nil {
			switch v.StringValue.GetValue() {
			case "consumer":
				out.Kind, skip[keySpanKind] = tracepb.Span_SPAN_KIND_CONSUMER, true
			case "producer":
				out.Kind, skip[keySpanKind] = tracepb.Span_SPAN_KIND_PRODUCER, true
			case "internal":
				out.Kind, skip[keySpanKind] = tracepb.Span_SPAN_KIND_INTERNAL, true
			}
		}
	}
	if ts := s.GetTracestate(); ts != nil {
		parts := make([]string, 0, len(ts.Entries))
		for _, e := range ts.Entries {
			parts = append(parts, e.Key+"="+e.Value)
		}
		out.TraceState = strings.Join(parts, ",")
	}
	if st := s.Status; st != nil {
		code := tracepb.Status_STATUS_CODE_UNSET
		if st.Code != 0 {
			code = tracepb.Status_STATUS_CODE_ERROR
		}
		if a, ok := attrs[keyOtelStatusCode]; ok {
			code, skip[keyOtelStatusCode] = tracepb.Status_StatusCode(a.GetIntValue()), true
		}
		out.Status = &tracepb.Status{Code: code, Message: st.Message}
	}
	out.Attributes = ocAttributes(attrs, skip)
	if te := s.TimeEvents; te != nil {
		out.DroppedEventsCount = uint32(te.DroppedMessageEventsCount + te.DroppedAnnotationsCount)
		for _, e := range te.TimeEvent {
			if e == nil {
				continue
			}
			ev := &tracepb.Span_Event{TimeUnixNano: tsOTLP(e.Time)}
			switch v := e.Value.(type) {
			case *octracepb.Span_TimeEvent_Annotation_:
				if a := v.Annotation; a != nil {
					ev.Name = a.GetDescription().GetValue()
					ev.Attributes = ocAttributes(a.GetAttributes().GetAttributeMap(), nil)
					ev.DroppedAttributesCount = uint32(a.GetAttributes().GetDroppedAttributesCount())
				}
			case *octracepb.Span_TimeEvent_MessageEvent_:
				ev.Name = messageEventName
				if m := v.MessageEvent; m != nil {
					ev.Attributes = []*commonpb.KeyValue{
						strKV(keyMessageType, m.Type.String()),
						intKV(keyMessageID, int64(m.Id)),
						intKV(keyUncompressed, int64(m.UncompressedSize)),
						intKV(keyCompressed, int64(m.CompressedSize)),
					}
				}
			default:
				ev.Name = "An unknown OpenCensus TimeEvent type was detected when translating"
			}
			out.Events = append(out.Events, ev)
		}
	}
	if ls := s.Links; ls != nil {
		out.DroppedLinksCount = uint32(ls.DroppedLinksCount)
		for _, l := range ls.Link {
			if l == nil {
				continue
			}
			pl := &tracepb.Span_Link{TraceId: id(l.TraceId, 16), SpanId: id(l.SpanId, 8),
				Attributes:             ocAttributes(l.GetAttributes().GetAttributeMap(), nil),
				DroppedAttributesCount: uint32(l.GetAttributes().GetDroppedAttributesCount())}
			if ts := l.GetTracestate(); ts != nil {
				parts := make([]string, 0, len(ts.Entries))
				for _, e := range ts.Entries {
					parts = append(parts, e.Key+"="+e.Value)
				}
				pl.TraceState = strings.Join(parts, ",")
			}
			if l.Type != octracepb.Span_Link_TYPE_UNSPECIFIED {
				pl.Attributes = append(pl.Attributes, strKV(keyLinkType, l.Type.String()))
			}
			out.Links = append(out.Links, pl)
		}
	}
	if sp := s.SameProcessAsParentSpan; sp != nil {
		out.Attributes = append(out.Attributes, &commonpb.KeyValue{Key: keySameProcess,
			Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: sp.Value}}})
		if len(out.ParentSpanId) > 0 {
			out.Flags = flagHasIsRemote
			if !sp.Value {
				out.Flags |= flagIsRemote
			}
		}
	}
	return out
}

func strKV(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

func intKV(k string, v int64) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v}}}
}

func ocAttributes(m map[string]*octracepb.AttributeValue, skip map[string]bool) []*commonpb.KeyValue {
	var out []*commonpb.KeyValue
	for _, k := range sortedAttrKeys(m) {
		if skip[k] {
			continue
		}
		var v commonpb.AnyValue
		switch a := m[k].GetValue().(type) {
		case *octracepb.AttributeValue_StringValue:
			v.Value = &commonpb.AnyValue_StringValue{StringValue: a.StringValue.GetValue()}
		case *octracepb.AttributeValue_IntValue:
			v.Value = &commonpb.AnyValue_IntValue{IntValue: a.IntValue}
		case *octracepb.AttributeValue_BoolValue:
			v.Value = &commonpb.AnyValue_BoolValue{BoolValue: a.BoolValue}
		case *octracepb.AttributeValue_DoubleValue:
			v.Value = &commonpb.AnyValue_DoubleValue{DoubleValue: a.DoubleValue}
		default:
			v.Value = &commonpb.AnyValue_StringValue{StringValue: "<Unknown OpenCensus attribute value type>"}
		}
		out = append(out, &commonpb.KeyValue{Key: k, Value: &v})
	}
	return out
}

func sortedAttrKeys(m map[string]*octracepb.AttributeValue) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Metrics translates an OpenCensus metrics request's parts. A metric the
// translation cannot carry (no descriptor, an unspecified or gauge
// distribution type, which the Collector turned into an empty metric) is an
// error naming it: nothing is sent.
func otlpMetricsRequest(node *occommonpb.Node, res *ocresourcepb.Resource, metrics []*ocmetricspb.Metric) (*collmetricspb.ExportMetricsServiceRequest, error) {
	out := &collmetricspb.ExportMetricsServiceRequest{}
	var shared *metricspb.ResourceMetrics
	var own []*metricspb.ResourceMetrics
	for i, m := range metrics {
		if m == nil {
			continue
		}
		pm, err := metric(m)
		if err != nil {
			return nil, fmt.Errorf("metric %d (%q): %w", i, m.GetMetricDescriptor().GetName(), err)
		}
		if m.Resource != nil {
			own = append(own, &metricspb.ResourceMetrics{Resource: otlpResource(node, m.Resource),
				ScopeMetrics: []*metricspb.ScopeMetrics{{Metrics: []*metricspb.Metric{pm}}}})
			continue
		}
		if shared == nil {
			shared = &metricspb.ResourceMetrics{Resource: otlpResource(node, res), ScopeMetrics: []*metricspb.ScopeMetrics{{}}}
		}
		shared.ScopeMetrics[0].Metrics = append(shared.ScopeMetrics[0].Metrics, pm)
	}
	if shared != nil {
		out.ResourceMetrics = append(out.ResourceMetrics, shared)
	}
	out.ResourceMetrics = append(out.ResourceMetrics, own...)
	return out, nil
}

func metric(m *ocmetricspb.Metric) (*metricspb.Metric, error) {
	d := m.GetMetricDescriptor()
	if d == nil {
		return nil, fmt.Errorf("no metric descriptor")
	}
	out := &metricspb.Metric{Name: d.Name, Description: d.Description, Unit: d.Unit}
	keys := d.LabelKeys
	for _, series := range m.Timeseries {
		if series == nil {
			continue
		}
		start := tsOTLP(series.StartTimestamp)
		for _, p := range series.Points {
			if p == nil {
				continue
			}
			attrs := labels(keys, series.LabelValues)
			switch d.Type {
			case ocmetricspb.MetricDescriptor_GAUGE_INT64, ocmetricspb.MetricDescriptor_CUMULATIVE_INT64,
				ocmetricspb.MetricDescriptor_GAUGE_DOUBLE, ocmetricspb.MetricDescriptor_CUMULATIVE_DOUBLE:
				dp := &metricspb.NumberDataPoint{Attributes: attrs, StartTimeUnixNano: start, TimeUnixNano: tsOTLP(p.Timestamp)}
				if d.Type == ocmetricspb.MetricDescriptor_GAUGE_INT64 || d.Type == ocmetricspb.MetricDescriptor_CUMULATIVE_INT64 {
					dp.Value = &metricspb.NumberDataPoint_AsInt{AsInt: p.GetInt64Value()}
				} else {
					dp.Value = &metricspb.NumberDataPoint_AsDouble{AsDouble: p.GetDoubleValue()}
				}
				numberPoint(out, d.Type, dp)
			case ocmetricspb.MetricDescriptor_CUMULATIVE_DISTRIBUTION:
				dv := p.GetDistributionValue()
				sum := dv.GetSum()
				dp := &metricspb.HistogramDataPoint{Attributes: attrs, StartTimeUnixNano: start, TimeUnixNano: tsOTLP(p.Timestamp),
					Count: uint64(dv.GetCount()), Sum: &sum, ExplicitBounds: dv.GetBucketOptions().GetExplicit().GetBounds()}
				for _, b := range dv.GetBuckets() {
					dp.BucketCounts = append(dp.BucketCounts, uint64(b.GetCount()))
					if e := b.GetExemplar(); e != nil {
						ex := &metricspb.Exemplar{Value: &metricspb.Exemplar_AsDouble{AsDouble: e.Value}}
						if e.Timestamp != nil {
							ex.TimeUnixNano = tsOTLP(e.Timestamp)
						}
						for _, k := range sortedLabelKeys(e.Attachments) {
							ex.FilteredAttributes = append(ex.FilteredAttributes, strKV(k, e.Attachments[k]))
						}
						dp.Exemplars = append(dp.Exemplars, ex)
					}
				}
				h := out.GetHistogram()
				if h == nil {
					h = &metricspb.Histogram{AggregationTemporality: metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE}
					out.Data = &metricspb.Metric_Histogram{Histogram: h}
				}
				h.DataPoints = append(h.DataPoints, dp)
			case ocmetricspb.MetricDescriptor_SUMMARY:
				sv := p.GetSummaryValue()
				dp := &metricspb.SummaryDataPoint{Attributes: attrs, StartTimeUnixNano: start, TimeUnixNano: tsOTLP(p.Timestamp),
					Count: uint64(sv.GetCount().GetValue()), Sum: sv.GetSum().GetValue()}
				for _, q := range sv.GetSnapshot().GetPercentileValues() {
					dp.QuantileValues = append(dp.QuantileValues, &metricspb.SummaryDataPoint_ValueAtQuantile{Quantile: q.Percentile / 100, Value: q.Value})
				}
				s := out.GetSummary()
				if s == nil {
					s = &metricspb.Summary{}
					out.Data = &metricspb.Metric_Summary{Summary: s}
				}
				s.DataPoints = append(s.DataPoints, dp)
			default:
				return nil, fmt.Errorf("type %v has no OTLP translation", d.Type)
			}
		}
	}
	if out.Data == nil {
		// No points: the translation still makes the (empty) kind of data.
		switch d.Type {
		case ocmetricspb.MetricDescriptor_GAUGE_INT64, ocmetricspb.MetricDescriptor_GAUGE_DOUBLE:
			out.Data = &metricspb.Metric_Gauge{Gauge: &metricspb.Gauge{}}
		case ocmetricspb.MetricDescriptor_CUMULATIVE_INT64, ocmetricspb.MetricDescriptor_CUMULATIVE_DOUBLE:
			out.Data = &metricspb.Metric_Sum{Sum: cumulativeSum()}
		case ocmetricspb.MetricDescriptor_CUMULATIVE_DISTRIBUTION:
			out.Data = &metricspb.Metric_Histogram{Histogram: &metricspb.Histogram{AggregationTemporality: metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE}}
		case ocmetricspb.MetricDescriptor_SUMMARY:
			out.Data = &metricspb.Metric_Summary{Summary: &metricspb.Summary{}}
		default:
			return nil, fmt.Errorf("type %v has no OTLP translation", d.Type)
		}
	}
	return out, nil
}

func cumulativeSum() *metricspb.Sum {
	return &metricspb.Sum{IsMonotonic: true, AggregationTemporality: metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE}
}

func numberPoint(out *metricspb.Metric, t ocmetricspb.MetricDescriptor_Type, dp *metricspb.NumberDataPoint) {
	if t == ocmetricspb.MetricDescriptor_GAUGE_INT64 || t == ocmetricspb.MetricDescriptor_GAUGE_DOUBLE {
		g := out.GetGauge()
		if g == nil {
			g = &metricspb.Gauge{}
			out.Data = &metricspb.Metric_Gauge{Gauge: g}
		}
		g.DataPoints = append(g.DataPoints, dp)
		return
	}
	s := out.GetSum()
	if s == nil {
		s = cumulativeSum()
		out.Data = &metricspb.Metric_Sum{Sum: s}
	}
	s.DataPoints = append(s.DataPoints, dp)
}

// labels are the label values that have one, under their keys (values
// beyond the keys are ignored, as the translator does).
func labels(keys []*ocmetricspb.LabelKey, values []*ocmetricspb.LabelValue) []*commonpb.KeyValue {
	var out []*commonpb.KeyValue
	for i := 0; i < len(keys) && i < len(values); i++ {
		if values[i].GetHasValue() {
			out = append(out, strKV(keys[i].GetKey(), values[i].GetValue()))
		}
	}
	return out
}

func sortedLabelKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
