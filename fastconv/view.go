package fastconv

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.opencensus.io/metric/metricdata"
	"go.opencensus.io/stats/view"
	"go.opencensus.io/tag"
	"go.opencensus.io/trace"
	"google.golang.org/protobuf/types/known/timestamppb"

	metricspb "github.com/zerocensus/ocagent/internal/ocproto/metrics/v1"
	"github.com/zerocensus/ocagent/pool"
)

// errNilMetric is Convert's own error; the others come from kindOf.
var errNilMetric = errors.New("fastconv: expecting a non-nil destination metric")

var kindType = [...]metricspb.MetricDescriptor_Type{
	kindCount:        metricspb.MetricDescriptor_CUMULATIVE_INT64,
	kindSumInt:       metricspb.MetricDescriptor_CUMULATIVE_INT64,
	kindSumDouble:    metricspb.MetricDescriptor_CUMULATIVE_DOUBLE,
	kindLastInt:      metricspb.MetricDescriptor_GAUGE_INT64,
	kindLastDouble:   metricspb.MetricDescriptor_GAUGE_DOUBLE,
	kindDistribution: metricspb.MetricDescriptor_CUMULATIVE_DISTRIBUTION,
}

// ocViews converts *view.Data into *metricspb.Metric in place, reusing
// the descriptor, label keys, time series, points, label values, distribution
// values, buckets and exemplars already in the destination. Converting views of
// the same shape into the same destination allocates nothing, except for
// exemplar attachments whose values are not strings (formatted with fmt.Sprint).
// The zero value is not usable; call newOCViews.
//
// Like SpanConverter it belongs to one goroutine, together with the messages
// it fills, and keeps no reference to its input other than cached names.
type ocViews struct {
	// Spare oneof wrappers released when a point changed value type, kept for
	// the next point that needs one. A spare distribution wrapper keeps its
	// DistributionValue, buckets and exemplars for reuse.
	int64Vals pool.FreeList[metricspb.Point_Int64Value]
	dblVals   pool.FreeList[metricspb.Point_DoubleValue]
	distVals  pool.FreeList[metricspb.Point_DistributionValue]
	exemplars pool.FreeList[metricspb.DistributionValue_Exemplar]
	stamps    pool.FreeList[timestamppb.Timestamp] // start timestamps of metricdata series that have none

	names nameCache
}

// newOCViews returns a ViewConverter.
func newOCViews() *ocViews { return new(ocViews) }

// Convert overwrites every field of dst with the conversion of vd, with the
// metric name prefixed by prefix + "/" when prefix is not empty. dst may be a
// message previously filled by Convert with any other view; what vd does not
// need is cleared, and dst.Resource is set to nil (without returning it to a
// pool: the caller may share it between metrics).
//
// Convert checks vd completely before it touches dst: on error (nil vd, view,
// measure or aggregation, an unknown aggregation type, a nil row or a row whose
// data does not match the aggregation) dst is left as it was.
//
// The metric is what upstream ocagent sends, except that
//   - label values are placed by tag key, as the protocol requires: the i-th
//     value of every time series belongs to View.TagKeys[i], and a row without
//     that tag gets {Value: "", HasValue: false}. Upstream sends the row's tags
//     in the row's order (OpenCensus sorts them by key name) and skips missing
//     ones, which misplaces values when TagKeys are not sorted or a tag is
//     missing;
//   - sum and last value of a measure that is neither a *stats.Int64Measure
//     nor a *stats.Float64Measure are typed CUMULATIVE_DOUBLE / GAUGE_DOUBLE
//     (upstream sends the same double values with type UNSPECIFIED);
//   - distribution buckets carry their exemplars (upstream drops them), with
//     the attachments sorted by key;
//   - timestamps are correct before 1970 and after 2262 (see setTime).
//
// As upstream, every time series of every type (gauges included) has the
// start timestamp vd.Start, and a single point at vd.End.
func (c *ocViews) Convert(dst *metricspb.Metric, vd *view.Data, prefix string) error {
	if dst == nil {
		return errNilMetric
	}
	kind, err := kindOf(vd)
	if err != nil {
		return fmt.Errorf("fastconv: %w", err)
	}
	v := vd.View

	md := dst.MetricDescriptor
	if md == nil {
		md = metricspb.MetricDescriptorFromVTPool()
		dst.MetricDescriptor = md
	}
	md.Name = c.names.Metric(md.Name, prefix, v)
	md.Description = viewDescription(v)
	md.Unit = validUTF8(v.Measure.Unit())
	md.Type = kindType[kind]
	md.LabelKeys = grow(md.LabelKeys, len(v.TagKeys), metricspb.LabelKeyFromVTPool)
	for i, k := range v.TagKeys {
		lk := md.LabelKeys[i]
		lk.Key = validUTF8(k.Name())
		lk.Description = ""
	}

	startS, startN := vd.Start.Unix(), int32(vd.Start.Nanosecond())
	endS, endN := vd.End.Unix(), int32(vd.End.Nanosecond())
	var bounds []float64
	if kind == kindDistribution {
		bounds = v.Aggregation.Buckets
	}

	dst.Timeseries = grow(dst.Timeseries, len(vd.Rows), metricspb.TimeSeriesFromVTPool)
	for i, row := range vd.Rows {
		ts := dst.Timeseries[i]
		setStamp(&ts.StartTimestamp, startS, startN)
		ts.LabelValues = labelValues(ts.LabelValues, v.TagKeys, row.Tags)
		ts.Points = grow(ts.Points, 1, metricspb.PointFromVTPool)
		pt := ts.Points[0]
		setStamp(&pt.Timestamp, endS, endN)
		// The types were checked by viewKindOf.
		switch kind {
		case kindCount:
			c.setInt64(pt, row.Data.(*view.CountData).Value)
		case kindSumInt:
			c.setInt64(pt, int64(row.Data.(*view.SumData).Value))
		case kindSumDouble:
			c.setDouble(pt, row.Data.(*view.SumData).Value)
		case kindLastInt:
			c.setInt64(pt, int64(row.Data.(*view.LastValueData).Value))
		case kindLastDouble:
			c.setDouble(pt, row.Data.(*view.LastValueData).Value)
		case kindDistribution:
			c.distribution(c.distributionValue(pt), row.Data.(*view.DistributionData), bounds)
		}
	}

	dst.Resource = nil
	return nil
}

// setStamp is setTime for a time already split into seconds and nanoseconds.
func setStamp(dst **timestamppb.Timestamp, s int64, n int32) {
	ts := *dst
	if ts == nil {
		ts = new(timestamppb.Timestamp)
		*dst = ts
	}
	ts.Seconds = s
	ts.Nanos = n
}

// labelValues returns dst filled with one value per key, in the keys' order.
func labelValues(dst []*metricspb.LabelValue, keys []tag.Key, tags []tag.Tag) []*metricspb.LabelValue {
	dst = grow(dst, len(keys), metricspb.LabelValueFromVTPool)
	for i, k := range keys {
		lv := dst[i]
		lv.Value, lv.HasValue = "", false
		// Rows usually hold every key in the keys' order: try that place first.
		if i < len(tags) && tags[i].Key == k {
			lv.Value, lv.HasValue = validUTF8(tags[i].Value), true
			continue
		}
		for j := range tags {
			if tags[j].Key == k {
				lv.Value, lv.HasValue = validUTF8(tags[j].Value), true
				break
			}
		}
	}
	return dst
}

func (c *ocViews) setInt64(pt *metricspb.Point, v int64) {
	w, ok := pt.Value.(*metricspb.Point_Int64Value)
	if !ok {
		c.releaseValue(pt)
		w = c.int64Vals.Get()
		pt.Value = w
	}
	w.Int64Value = v
}

func (c *ocViews) setDouble(pt *metricspb.Point, v float64) {
	w, ok := pt.Value.(*metricspb.Point_DoubleValue)
	if !ok {
		c.releaseValue(pt)
		w = c.dblVals.Get()
		pt.Value = w
	}
	w.DoubleValue = v
}

// distributionValue returns pt's DistributionValue, installing one first when
// pt holds another type of value.
func (c *ocViews) distributionValue(pt *metricspb.Point) *metricspb.DistributionValue {
	w, ok := pt.Value.(*metricspb.Point_DistributionValue)
	if !ok {
		c.releaseValue(pt)
		w = c.distVals.Get()
		pt.Value = w
	}
	if w.DistributionValue == nil {
		w.DistributionValue = metricspb.DistributionValueFromVTPool()
	}
	return w.DistributionValue
}

func (c *ocViews) releaseValue(pt *metricspb.Point) {
	switch w := pt.Value.(type) {
	case *metricspb.Point_Int64Value:
		c.int64Vals.Put(w)
	case *metricspb.Point_DoubleValue:
		c.dblVals.Put(w)
	case *metricspb.Point_DistributionValue:
		c.distVals.Put(w) // keeps its DistributionValue for the next one
	case *metricspb.Point_SummaryValue:
		// Never produced here; only a dst filled elsewhere has one.
		w.SummaryValue.ReturnToVTPool()
	}
	pt.Value = nil
}

func (c *ocViews) distribution(dv *metricspb.DistributionValue, d *view.DistributionData, bounds []float64) {
	dv.Count = d.Count
	dv.Sum = float64(d.Count) * d.Mean // Mean = Sum / Count
	dv.SumOfSquaredDeviation = d.SumOfSquaredDev

	bo := dv.BucketOptions
	if bo == nil {
		bo = metricspb.DistributionValue_BucketOptionsFromVTPool()
		dv.BucketOptions = bo
	}
	ex, ok := bo.Type.(*metricspb.DistributionValue_BucketOptions_Explicit_)
	if !ok {
		// Explicit is the only bucket option, so nothing else can be there.
		ex = new(metricspb.DistributionValue_BucketOptions_Explicit_)
		bo.Type = ex
	}
	if ex.Explicit == nil {
		ex.Explicit = metricspb.DistributionValue_BucketOptions_ExplicitFromVTPool()
	}
	// Copied, not aliased: ResetVT keeps and later appends to Bounds, which
	// must not write into the view's aggregation.
	ex.Explicit.Bounds = append(ex.Explicit.Bounds[:0], bounds...)

	dv.Buckets = grow(dv.Buckets, len(d.CountPerBucket), metricspb.DistributionValue_BucketFromVTPool)
	for i, n := range d.CountPerBucket {
		b := dv.Buckets[i]
		b.Count = n
		var e *metricdata.Exemplar
		if i < len(d.ExemplarsPerBucket) {
			e = d.ExemplarsPerBucket[i]
		}
		if e == nil {
			if b.Exemplar != nil {
				c.exemplars.Put(b.Exemplar) // keeps its attachments for reuse
				b.Exemplar = nil
			}
			continue
		}
		if b.Exemplar == nil {
			b.Exemplar = c.exemplars.Get()
		}
		exemplar(b.Exemplar, e)
	}
}

func exemplar(dst *metricspb.DistributionValue_Exemplar, e *metricdata.Exemplar) {
	dst.Value = e.Value
	setTime(&dst.Timestamp, e.Timestamp)
	dst.Attachments = grow(dst.Attachments, len(e.Attachments), metricspb.DistributionValue_Exemplar_AttachmentsEntryFromVTPool)
	i := 0
	for k, v := range e.Attachments {
		a := dst.Attachments[i]
		a.Key = validUTF8(k)
		switch v := v.(type) {
		case string:
			a.Value = validUTF8(v)
		case trace.SpanContext:
			// OpenCensus's own attachment ("SpanContext"): the ids in hex,
			// which a reader can parse, rather than a Go struct dump.
			a.Value = v.TraceID.String() + "/" + v.SpanID.String()
		default:
			a.Value = validUTF8(fmt.Sprint(v))
		}
		i++
	}
	// A map has no order; sorting makes the encoding deterministic.
	if len(dst.Attachments) > 1 {
		slices.SortFunc(dst.Attachments, compareAttachments)
	}
}

func compareAttachments(a, b *metricspb.DistributionValue_Exemplar_AttachmentsEntry) int {
	return strings.Compare(a.Key, b.Key)
}
