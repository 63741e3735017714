package fastconv

import (
	"errors"
	"fmt"
	"math"

	"go.opencensus.io/metric/metricdata"
	"go.opencensus.io/stats/view"
	"go.opencensus.io/tag"
	"go.opencensus.io/trace"

	commonpb "github.com/zerocensus/ocagent/internal/otlpproto/common/v1"
	metricspb "github.com/zerocensus/ocagent/internal/otlpproto/metrics/v1"
	"github.com/zerocensus/ocagent/pool"
)

var errNilMetricOTLP = errors.New("fastconv: expecting a non-nil destination metric")

// otlpViews converts *view.Data into OTLP *metricspb.Metric in place.
// Converting views of the same shape into the same destination allocates
// nothing, except for exemplar attachments whose values are neither strings
// nor span contexts (formatted with fmt.Sprint). The zero value is not
// usable; call newOTLPViews.
type otlpViews struct {
	v      values
	names  nameCache
	gauges pool.FreeList[metricspb.Metric_Gauge]
	sums   pool.FreeList[metricspb.Metric_Sum]
	histos pool.FreeList[metricspb.Metric_Histogram]
	ints   pool.FreeList[metricspb.NumberDataPoint_AsInt]
	dbls   pool.FreeList[metricspb.NumberDataPoint_AsDouble]
	exDbls pool.FreeList[metricspb.Exemplar_AsDouble]
}

// newOTLPViews returns a ViewConverter.
func newOTLPViews() *otlpViews { return new(otlpViews) }

// Convert overwrites every field of dst with the conversion of vd, its name
// prefixed by prefix + "/" when prefix is not empty. It checks vd completely
// before it touches dst: on error (nil view, measure or aggregation, an
// unknown aggregation, a row not matching it) dst is left as it was.
//
// The metric is what the Collector v0.133.0 made of this exporter's
// OpenCensus metric (fastconv's): count and int64 sum a monotonic cumulative
// sum of ints, float64 sum of doubles, last value a gauge, distribution a
// cumulative histogram with explicit bounds; one data point per row, with
// the view's start and end times (gauges too) and the row's tags as
// attributes by key (a missing tag absent). In addition, which OTLP has
// fields for and the translation dropped:
//   - a distribution's min and max (left out when no sample set them);
//   - an exemplar's SpanContext attachment as the exemplar's trace_id and
//     span_id (the translation had it as a "traceid/spanid" string
//     attribute); other attachments are filtered attributes, as there.
func (c *otlpViews) Convert(dst *metricspb.Metric, vd *view.Data, prefix string) error {
	if dst == nil {
		return errNilMetricOTLP
	}
	kind, err := kindOf(vd)
	if err != nil {
		return fmt.Errorf("fastconv: %w", err)
	}
	v := vd.View
	dst.Name = c.names.Metric(dst.Name, prefix, v)
	dst.Description = viewDescription(v)
	dst.Unit = validUTF8(v.Measure.Unit())
	dst.Metadata = dst.Metadata[:0]
	start, end := unixNano(vd.Start), unixNano(vd.End)

	switch kind {
	case kindLastInt, kindLastDouble:
		g := c.gauge(dst)
		g.DataPoints = c.numberPoints(g.DataPoints, vd, kind, start, end)
	case kindCount, kindSumInt, kindSumDouble:
		s := c.sum(dst)
		s.IsMonotonic = true
		s.AggregationTemporality = metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE
		s.DataPoints = c.numberPoints(s.DataPoints, vd, kind, start, end)
	case kindDistribution:
		h := c.histogram(dst)
		h.AggregationTemporality = metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE
		h.DataPoints = grow(h.DataPoints, len(vd.Rows), metricspb.HistogramDataPointFromVTPool)
		for i, row := range vd.Rows {
			dp := h.DataPoints[i]
			dp.StartTimeUnixNano, dp.TimeUnixNano, dp.Flags = start, end, 0
			dp.Attributes = c.tags(dp.Attributes, v.TagKeys, row.Tags)
			c.distribution(dp, row.Data.(*view.DistributionData), v.Aggregation.Buckets)
		}
	}
	return nil
}

// gauge, sum and histogram install the data kind in dst, reusing the one
// there or a spare.
func (c *otlpViews) gauge(dst *metricspb.Metric) *metricspb.Gauge {
	w, ok := dst.Data.(*metricspb.Metric_Gauge)
	if !ok {
		c.releaseData(dst)
		w = c.gauges.Get()
		dst.Data = w
	}
	if w.Gauge == nil {
		w.Gauge = metricspb.GaugeFromVTPool()
	}
	return w.Gauge
}

func (c *otlpViews) sum(dst *metricspb.Metric) *metricspb.Sum {
	w, ok := dst.Data.(*metricspb.Metric_Sum)
	if !ok {
		c.releaseData(dst)
		w = c.sums.Get()
		dst.Data = w
	}
	if w.Sum == nil {
		w.Sum = metricspb.SumFromVTPool()
	}
	return w.Sum
}

func (c *otlpViews) histogram(dst *metricspb.Metric) *metricspb.Histogram {
	w, ok := dst.Data.(*metricspb.Metric_Histogram)
	if !ok {
		c.releaseData(dst)
		w = c.histos.Get()
		dst.Data = w
	}
	if w.Histogram == nil {
		w.Histogram = metricspb.HistogramFromVTPool()
	}
	return w.Histogram
}

// releaseData keeps dst's data wrapper (with its points) for reuse.
func (c *otlpViews) releaseData(dst *metricspb.Metric) {
	switch w := dst.Data.(type) {
	case *metricspb.Metric_Gauge:
		c.gauges.Put(w)
	case *metricspb.Metric_Sum:
		c.sums.Put(w)
	case *metricspb.Metric_Histogram:
		c.histos.Put(w)
	case nil:
	default:
		dst.ReturnToVTPool() // a kind this package never makes: start afresh
		return
	}
	dst.Data = nil
}

func (c *otlpViews) numberPoints(dps []*metricspb.NumberDataPoint, vd *view.Data, kind viewKind, start, end uint64) []*metricspb.NumberDataPoint {
	dps = grow(dps, len(vd.Rows), metricspb.NumberDataPointFromVTPool)
	for i, row := range vd.Rows {
		dp := dps[i]
		dp.StartTimeUnixNano, dp.TimeUnixNano, dp.Flags = start, end, 0
		dp.Attributes = c.tags(dp.Attributes, vd.View.TagKeys, row.Tags)
		dp.Exemplars = dp.Exemplars[:0]
		// The types were checked by KindOf.
		switch kind {
		case kindCount:
			c.setInt(dp, row.Data.(*view.CountData).Value)
		case kindSumInt:
			c.setInt(dp, int64(row.Data.(*view.SumData).Value))
		case kindSumDouble:
			c.setDouble(dp, row.Data.(*view.SumData).Value)
		case kindLastInt:
			c.setInt(dp, int64(row.Data.(*view.LastValueData).Value))
		case kindLastDouble:
			c.setDouble(dp, row.Data.(*view.LastValueData).Value)
		}
	}
	return dps
}

func (c *otlpViews) setInt(dp *metricspb.NumberDataPoint, v int64) {
	w, ok := dp.Value.(*metricspb.NumberDataPoint_AsInt)
	if !ok {
		c.releaseValue(dp)
		w = c.ints.Get()
		dp.Value = w
	}
	w.AsInt = v
}

func (c *otlpViews) setDouble(dp *metricspb.NumberDataPoint, v float64) {
	w, ok := dp.Value.(*metricspb.NumberDataPoint_AsDouble)
	if !ok {
		c.releaseValue(dp)
		w = c.dbls.Get()
		dp.Value = w
	}
	w.AsDouble = v
}

func (c *otlpViews) releaseValue(dp *metricspb.NumberDataPoint) {
	switch w := dp.Value.(type) {
	case *metricspb.NumberDataPoint_AsInt:
		c.ints.Put(w)
	case *metricspb.NumberDataPoint_AsDouble:
		c.dbls.Put(w)
	}
	dp.Value = nil
}

// tags fills dst with the row's tag values by the view's keys: the
// translation puts a label value under its key when it has a value.
func (c *otlpViews) tags(dst []*commonpb.KeyValue, keys []tag.Key, tags []tag.Tag) []*commonpb.KeyValue {
	dst = grow(dst, len(keys), commonpb.KeyValueFromVTPool)
	n := 0
	for i, k := range keys {
		// Rows usually hold every key in the keys' order: try that place first.
		j := -1
		if i < len(tags) && tags[i].Key == k {
			j = i
		} else {
			for t := range tags {
				if tags[t].Key == k {
					j = t
					break
				}
			}
		}
		if j < 0 {
			continue
		}
		c.v.setStr(dst[n], validUTF8(k.Name()), validUTF8(tags[j].Value))
		n++
	}
	return dst[:n]
}

func (c *otlpViews) distribution(dp *metricspb.HistogramDataPoint, d *view.DistributionData, bounds []float64) {
	dp.Count = uint64(d.Count)
	dp.Sum = setFloat(dp.Sum, float64(d.Count)*d.Mean, true)
	// OpenCensus starts Min at MaxFloat64 and Max at SmallestNonzeroFloat64
	// and only moves them when a sample is beyond: a value still there was
	// never set (Max stays there when every sample is negative).
	dp.Min = setFloat(dp.Min, d.Min, d.Count > 0 && d.Min != math.MaxFloat64)
	dp.Max = setFloat(dp.Max, d.Max, d.Count > 0 && d.Max != math.SmallestNonzeroFloat64)
	dp.ExplicitBounds = append(dp.ExplicitBounds[:0], bounds...)
	dp.BucketCounts = dp.BucketCounts[:0]
	n := 0
	for _, e := range d.ExemplarsPerBucket {
		if e != nil {
			n++
		}
	}
	dp.Exemplars = grow(dp.Exemplars, n, metricspb.ExemplarFromVTPool)
	n = 0
	for i, count := range d.CountPerBucket {
		dp.BucketCounts = append(dp.BucketCounts, uint64(count))
		if i < len(d.ExemplarsPerBucket) && d.ExemplarsPerBucket[i] != nil {
			c.exemplar(dp.Exemplars[n], d.ExemplarsPerBucket[i])
			n++
		}
	}
}

// setFloat sets an optional double, reusing its pointer, or clears it.
func setFloat(p *float64, v float64, set bool) *float64 {
	if !set {
		return nil
	}
	if p == nil {
		p = new(float64)
	}
	*p = v
	return p
}

func (c *otlpViews) exemplar(dst *metricspb.Exemplar, e *metricdata.Exemplar) {
	dst.TimeUnixNano = unixNano(e.Timestamp)
	w, ok := dst.Value.(*metricspb.Exemplar_AsDouble)
	if !ok {
		dst.Value = nil
		w = c.exDbls.Get()
		dst.Value = w
	}
	w.AsDouble = e.Value
	dst.TraceId, dst.SpanId = dst.TraceId[:0], dst.SpanId[:0]
	dst.FilteredAttributes = grow(dst.FilteredAttributes, len(e.Attachments), commonpb.KeyValueFromVTPool)
	n := 0
	for k, v := range e.Attachments {
		switch v := v.(type) {
		case trace.SpanContext:
			if k == metricdata.AttachmentKeySpanContext {
				dst.TraceId = append(dst.TraceId, v.TraceID[:]...)
				dst.SpanId = append(dst.SpanId, v.SpanID[:]...)
				continue
			}
			c.v.setStr(dst.FilteredAttributes[n], validUTF8(k), v.TraceID.String()+"/"+v.SpanID.String())
		case string:
			c.v.setStr(dst.FilteredAttributes[n], validUTF8(k), validUTF8(v))
		default:
			c.v.setStr(dst.FilteredAttributes[n], validUTF8(k), validUTF8(fmt.Sprint(v)))
		}
		n++
	}
	dst.FilteredAttributes = dst.FilteredAttributes[:n]
}
