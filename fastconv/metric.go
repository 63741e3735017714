package fastconv

import (
	"errors"

	"go.opencensus.io/metric/metricdata"

	ocmetricspb "github.com/zerocensus/ocagent/internal/ocproto/metrics/v1"
	commonpb "github.com/zerocensus/ocagent/internal/otlpproto/common/v1"
	otlpmetricspb "github.com/zerocensus/ocagent/internal/otlpproto/metrics/v1"
)

// MetricEncoder converts and encodes OpenCensus metricdata metrics (what a
// metricproducer.Producer reads, what metricexport.Exporter is given), in
// either protocol. It shares the view encoder's messages, free lists and
// splitting: a metric of the same shape as the previous one converts with
// no allocation per point, and a metric larger than a request is sent in
// parts of its time series (stream.Splitter). The zero value is not usable;
// call NewMetricEncoder. See the package doc for ownership.
type MetricEncoder struct{ v *ViewEncoder }

// NewMetricEncoder returns an encoder of metricdata metrics in protocol p.
// Metric names are sent as they are (WithMetricNamePrefix is for views, as
// upstream).
func NewMetricEncoder(p Protocol) *MetricEncoder { return &MetricEncoder{v: NewViewEncoder(p, "")} }

// Encode converts m and returns its encoding and size, as ViewEncoder.Encode.
// err reports a metric that cannot be converted: nil, an unknown type, a
// nil time series, a point whose value does not match the metric's type, a
// summary (not supported), or (OTLP) a gauge distribution, which the
// Collector's OpenCensus translation has no OTLP form for.
func (e *MetricEncoder) Encode(m *metricdata.Metric, max int) (enc []byte, size int, err error) {
	v := e.v
	v.split.active, v.split.pending, v.split.measured = false, false, false
	if err := checkMetric(m, v.otlp != nil); err != nil {
		v.points = Points(m)
		return nil, 0, err
	}
	if v.otlp != nil {
		v.otlp.convertMetric(v.otm, m)
	} else {
		v.oc.convertMetric(v.ocm, m)
	}
	enc, size = v.finish(m.Descriptor.Name, max)
	return enc, size, nil
}

// Next encodes the next part of a metric too large for a request (it
// implements stream.Splitter), as ViewEncoder.Next.
func (e *MetricEncoder) Next(max int) (enc []byte, last bool) { return e.v.Next(max) }

// Append appends the encoding of m to dst.
func (e *MetricEncoder) Append(dst []byte, m *metricdata.Metric) ([]byte, error) {
	enc, _, err := e.Encode(m, maxInt)
	if err != nil {
		return dst, err
	}
	return append(dst, enc...), nil
}

// DroppedRows counts the time series dropped because one alone was larger
// than a request may carry. Safe from any goroutine.
func (e *MetricEncoder) DroppedRows() uint64 { return e.v.DroppedRows() }

// DroppedPoints counts the data points of those time series. Safe from any
// goroutine.
func (e *MetricEncoder) DroppedPoints() uint64 { return e.v.DroppedPoints() }

// Points is the number of data points in what the last Encode or Next
// returned, or in the metric a failed Encode was given (stream.Weigher).
func (e *MetricEncoder) Points() int { return e.v.Points() }

// LastDrop is the error of the last such drop, or nil. Safe from any
// goroutine.
func (e *MetricEncoder) LastDrop() error { return e.v.LastDrop() }

// Points is the number of data points in m (every point of every time
// series), what the metric_data_point self-metrics count.
func Points(m *metricdata.Metric) int {
	if m == nil {
		return 0
	}
	n := 0
	for _, ts := range m.TimeSeries {
		if ts != nil {
			n += len(ts.Points)
		}
	}
	return n
}

var (
	errNilMetricData   = errors.New("fastconv: nil metric")
	errNilTimeSeries   = errors.New("fastconv: nil time series")
	errSummary         = errors.New("fastconv: summary metrics are not supported")
	errGaugeDistOTLP   = errors.New("fastconv: a gauge distribution has no OTLP translation")
	errMetricType      = errors.New("fastconv: unknown metric type")
	errPointType       = errors.New("fastconv: a point's value does not match the metric's type")
	errNilDistribution = errors.New("fastconv: nil distribution")
)

// checkMetric validates m completely before a converter touches its
// message.
func checkMetric(m *metricdata.Metric, otlp bool) error {
	if m == nil {
		return errNilMetricData
	}
	t := m.Descriptor.Type
	switch t {
	case metricdata.TypeGaugeInt64, metricdata.TypeGaugeFloat64, metricdata.TypeCumulativeInt64,
		metricdata.TypeCumulativeFloat64, metricdata.TypeCumulativeDistribution:
	case metricdata.TypeGaugeDistribution:
		if otlp {
			return errGaugeDistOTLP
		}
	case metricdata.TypeSummary:
		return errSummary
	default:
		return errMetricType
	}
	for _, ts := range m.TimeSeries {
		if ts == nil {
			return errNilTimeSeries
		}
		for i := range ts.Points {
			switch v := ts.Points[i].Value.(type) {
			case int64:
				if t != metricdata.TypeGaugeInt64 && t != metricdata.TypeCumulativeInt64 {
					return errPointType
				}
			case float64:
				if t != metricdata.TypeGaugeFloat64 && t != metricdata.TypeCumulativeFloat64 {
					return errPointType
				}
			case *metricdata.Distribution:
				if t != metricdata.TypeGaugeDistribution && t != metricdata.TypeCumulativeDistribution {
					return errPointType
				}
				if v == nil {
					return errNilDistribution
				}
			default:
				return errPointType
			}
		}
	}
	return nil
}

var metricType = [...]ocmetricspb.MetricDescriptor_Type{
	metricdata.TypeGaugeInt64:             ocmetricspb.MetricDescriptor_GAUGE_INT64,
	metricdata.TypeGaugeFloat64:           ocmetricspb.MetricDescriptor_GAUGE_DOUBLE,
	metricdata.TypeGaugeDistribution:      ocmetricspb.MetricDescriptor_GAUGE_DISTRIBUTION,
	metricdata.TypeCumulativeInt64:        ocmetricspb.MetricDescriptor_CUMULATIVE_INT64,
	metricdata.TypeCumulativeFloat64:      ocmetricspb.MetricDescriptor_CUMULATIVE_DOUBLE,
	metricdata.TypeCumulativeDistribution: ocmetricspb.MetricDescriptor_CUMULATIVE_DISTRIBUTION,
}

// convertMetric overwrites dst with the OpenCensus form of m, which
// checkMetric accepted: the metricdata model is the protocol's, field for
// field. A time series without a start time (a gauge's, usually) has no
// start timestamp; the metric's own Resource is not sent (the exporter's
// is, as for views).
func (c *ocViews) convertMetric(dst *ocmetricspb.Metric, m *metricdata.Metric) {
	md := dst.MetricDescriptor
	if md == nil {
		md = ocmetricspb.MetricDescriptorFromVTPool()
		dst.MetricDescriptor = md
	}
	d := &m.Descriptor
	md.Name = validUTF8(d.Name)
	md.Description = validUTF8(d.Description)
	md.Unit = validUTF8(string(d.Unit))
	md.Type = metricType[d.Type]
	md.LabelKeys = grow(md.LabelKeys, len(d.LabelKeys), ocmetricspb.LabelKeyFromVTPool)
	for i := range d.LabelKeys {
		md.LabelKeys[i].Key = validUTF8(d.LabelKeys[i].Key)
		md.LabelKeys[i].Description = validUTF8(d.LabelKeys[i].Description)
	}
	dst.Timeseries = grow(dst.Timeseries, len(m.TimeSeries), ocmetricspb.TimeSeriesFromVTPool)
	for i, src := range m.TimeSeries {
		ts := dst.Timeseries[i]
		if src.StartTime.IsZero() {
			if ts.StartTimestamp != nil { // kept for the next series with one
				c.stamps.Put(ts.StartTimestamp)
				ts.StartTimestamp = nil
			}
		} else {
			if ts.StartTimestamp == nil {
				ts.StartTimestamp = c.stamps.Get()
			}
			setTime(&ts.StartTimestamp, src.StartTime)
		}
		ts.LabelValues = grow(ts.LabelValues, len(src.LabelValues), ocmetricspb.LabelValueFromVTPool)
		for j := range src.LabelValues {
			lv := ts.LabelValues[j]
			lv.Value, lv.HasValue = validUTF8(src.LabelValues[j].Value), src.LabelValues[j].Present
		}
		ts.Points = grow(ts.Points, len(src.Points), ocmetricspb.PointFromVTPool)
		for j := range src.Points {
			p, pt := &src.Points[j], ts.Points[j]
			setTime(&pt.Timestamp, p.Time)
			switch v := p.Value.(type) {
			case int64:
				c.setInt64(pt, v)
			case float64:
				c.setDouble(pt, v)
			case *metricdata.Distribution:
				c.metricDistribution(c.distributionValue(pt), v)
			}
		}
	}
	dst.Resource = nil
}

func (c *ocViews) metricDistribution(dv *ocmetricspb.DistributionValue, d *metricdata.Distribution) {
	dv.Count, dv.Sum, dv.SumOfSquaredDeviation = d.Count, d.Sum, d.SumOfSquaredDeviation
	bo := dv.BucketOptions
	if bo == nil {
		bo = ocmetricspb.DistributionValue_BucketOptionsFromVTPool()
		dv.BucketOptions = bo
	}
	ex, ok := bo.Type.(*ocmetricspb.DistributionValue_BucketOptions_Explicit_)
	if !ok {
		ex = new(ocmetricspb.DistributionValue_BucketOptions_Explicit_)
		bo.Type = ex
	}
	if ex.Explicit == nil {
		ex.Explicit = ocmetricspb.DistributionValue_BucketOptions_ExplicitFromVTPool()
	}
	var bounds []float64
	if d.BucketOptions != nil {
		bounds = d.BucketOptions.Bounds
	}
	ex.Explicit.Bounds = append(ex.Explicit.Bounds[:0], bounds...)
	dv.Buckets = grow(dv.Buckets, len(d.Buckets), ocmetricspb.DistributionValue_BucketFromVTPool)
	for i := range d.Buckets {
		b, src := dv.Buckets[i], &d.Buckets[i]
		b.Count = src.Count
		if src.Exemplar == nil {
			if b.Exemplar != nil {
				c.exemplars.Put(b.Exemplar)
				b.Exemplar = nil
			}
			continue
		}
		if b.Exemplar == nil {
			b.Exemplar = c.exemplars.Get()
		}
		exemplar(b.Exemplar, src.Exemplar)
	}
}

// convertMetric overwrites dst with the OTLP form of m, which checkMetric
// accepted, as the Collector's OpenCensus translation maps the OpenCensus
// metric: gauges a Gauge, cumulative int64 and float64 a monotonic
// cumulative Sum, a cumulative distribution a cumulative Histogram with
// explicit bounds; one data point per point of each time series, with the
// series' start time and its label values that are present as string
// attributes under their keys. Exemplars as for views (the SpanContext
// attachment as trace_id and span_id).
func (c *otlpViews) convertMetric(dst *otlpmetricspb.Metric, m *metricdata.Metric) {
	d := &m.Descriptor
	dst.Name = validUTF8(d.Name)
	dst.Description = validUTF8(d.Description)
	dst.Unit = validUTF8(string(d.Unit))
	dst.Metadata = dst.Metadata[:0]
	n := Points(m)
	switch d.Type {
	case metricdata.TypeGaugeInt64, metricdata.TypeGaugeFloat64:
		g := c.gauge(dst)
		g.DataPoints = c.metricNumbers(g.DataPoints, m, n)
	case metricdata.TypeCumulativeInt64, metricdata.TypeCumulativeFloat64:
		s := c.sum(dst)
		s.IsMonotonic = true
		s.AggregationTemporality = otlpmetricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE
		s.DataPoints = c.metricNumbers(s.DataPoints, m, n)
	case metricdata.TypeCumulativeDistribution:
		h := c.histogram(dst)
		h.AggregationTemporality = otlpmetricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE
		h.DataPoints = grow(h.DataPoints, n, otlpmetricspb.HistogramDataPointFromVTPool)
		k := 0
		for _, ts := range m.TimeSeries {
			start := startNano(ts)
			for j := range ts.Points {
				dp := h.DataPoints[k]
				k++
				dp.StartTimeUnixNano, dp.TimeUnixNano, dp.Flags = start, unixNano(ts.Points[j].Time), 0
				dp.Attributes = c.labels(dp.Attributes, d.LabelKeys, ts.LabelValues)
				c.metricDistribution(dp, ts.Points[j].Value.(*metricdata.Distribution))
			}
		}
	}
}

// startNano is a time series' start time, 0 when it has none.
func startNano(ts *metricdata.TimeSeries) uint64 {
	if ts.StartTime.IsZero() {
		return 0
	}
	return unixNano(ts.StartTime)
}

func (c *otlpViews) metricNumbers(dps []*otlpmetricspb.NumberDataPoint, m *metricdata.Metric, n int) []*otlpmetricspb.NumberDataPoint {
	dps = grow(dps, n, otlpmetricspb.NumberDataPointFromVTPool)
	k := 0
	for _, ts := range m.TimeSeries {
		start := startNano(ts)
		for j := range ts.Points {
			dp := dps[k]
			k++
			dp.StartTimeUnixNano, dp.TimeUnixNano, dp.Flags = start, unixNano(ts.Points[j].Time), 0
			dp.Attributes = c.labels(dp.Attributes, m.Descriptor.LabelKeys, ts.LabelValues)
			dp.Exemplars = dp.Exemplars[:0]
			switch v := ts.Points[j].Value.(type) {
			case int64:
				c.setInt(dp, v)
			case float64:
				c.setDouble(dp, v)
			}
		}
	}
	return dps
}

// labels are the label values that are present, under their keys (values
// beyond the keys are ignored, as the translation does).
func (c *otlpViews) labels(dst []*commonpb.KeyValue, keys []metricdata.LabelKey, vals []metricdata.LabelValue) []*commonpb.KeyValue {
	n := min(len(keys), len(vals))
	dst = grow(dst, n, commonpb.KeyValueFromVTPool)
	k := 0
	for i := range n {
		if !vals[i].Present {
			continue
		}
		c.v.setStr(dst[k], validUTF8(keys[i].Key), validUTF8(vals[i].Value))
		k++
	}
	return dst[:k]
}

func (c *otlpViews) metricDistribution(dp *otlpmetricspb.HistogramDataPoint, d *metricdata.Distribution) {
	dp.Count = uint64(d.Count)
	dp.Sum = setFloat(dp.Sum, d.Sum, true)
	dp.Min, dp.Max = nil, nil
	var bounds []float64
	if d.BucketOptions != nil {
		bounds = d.BucketOptions.Bounds
	}
	dp.ExplicitBounds = append(dp.ExplicitBounds[:0], bounds...)
	dp.BucketCounts = dp.BucketCounts[:0]
	n := 0
	for i := range d.Buckets {
		if d.Buckets[i].Exemplar != nil {
			n++
		}
	}
	dp.Exemplars = grow(dp.Exemplars, n, otlpmetricspb.ExemplarFromVTPool)
	n = 0
	for i := range d.Buckets {
		dp.BucketCounts = append(dp.BucketCounts, uint64(d.Buckets[i].Count))
		if e := d.Buckets[i].Exemplar; e != nil {
			c.exemplar(dp.Exemplars[n], e)
			n++
		}
	}
}

// finish encodes the metric just converted (a view's or a metricdata
// metric's) and prepares a split, as Encode describes.
func (e *ViewEncoder) finish(name string, max int) (enc []byte, size int) {
	e.points = 0
	if e.split.large {
		if size = e.measure(); size > max {
			e.split.pending, e.split.name = true, name
			return nil, size
		}
	}
	enc, size = e.tail.marshal(e.msg(), max)
	e.split.large = enc == nil
	e.split.pending, e.split.name = true, name
	if enc != nil {
		r := e.rows()
		e.points = r.points(0, r.n())
	}
	return enc, size
}
