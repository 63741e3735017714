package fastconv

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.opencensus.io/metric/metricdata"
	"go.opencensus.io/stats"
	"go.opencensus.io/stats/view"
	"go.opencensus.io/tag"
	"go.opencensus.io/trace"
	"google.golang.org/protobuf/types/known/timestamppb"

	metricspb "github.com/zerocensus/ocagent/internal/ocproto/metrics/v1"
	"github.com/zerocensus/ocagent/internal/pool"
)

// Errors returned by ViewConverter.Convert. Upstream returns the first three
// too; it converts the other cases into a metric it should not send.
var (
	errNilViewData    = errors.New("fastconv: expecting a non-nil view.Data")
	errNilView        = errors.New("fastconv: expecting a non-nil view.View")
	errNilMeasure     = errors.New("fastconv: expecting a non-nil stats.Measure")
	errNilAggregation = errors.New("fastconv: expecting a non-nil view.Aggregation")
	errNilMetric      = errors.New("fastconv: expecting a non-nil destination metric")
)

// maxCachedNames bounds the prefixed-name cache; past it the cache starts
// afresh (a process exports a fixed, small set of views).
const maxCachedNames = 4096

// viewKind is what a view's rows become: the aggregation and, for sum and last
// value, whether the measure is a float64 one.
type viewKind uint8

const (
	kindCount viewKind = iota
	kindSumInt
	kindSumDouble
	kindLastInt
	kindLastDouble
	kindDistribution
)

var kindType = [...]metricspb.MetricDescriptor_Type{
	kindCount:        metricspb.MetricDescriptor_CUMULATIVE_INT64,
	kindSumInt:       metricspb.MetricDescriptor_CUMULATIVE_INT64,
	kindSumDouble:    metricspb.MetricDescriptor_CUMULATIVE_DOUBLE,
	kindLastInt:      metricspb.MetricDescriptor_GAUGE_INT64,
	kindLastDouble:   metricspb.MetricDescriptor_GAUGE_DOUBLE,
	kindDistribution: metricspb.MetricDescriptor_CUMULATIVE_DISTRIBUTION,
}

type nameKey struct{ prefix, name string }

// ViewConverter converts *view.Data into *metricspb.Metric in place, reusing
// the descriptor, label keys, time series, points, label values, distribution
// values, buckets and exemplars already in the destination. Converting views of
// the same shape into the same destination allocates nothing, except for
// exemplar attachments whose values are not strings (formatted with fmt.Sprint).
// The zero value is not usable; call NewViewConverter.
//
// Like SpanConverter it belongs to one goroutine, together with the messages
// it fills, and keeps no reference to its input other than cached names.
type ViewConverter struct {
	// Spare oneof wrappers released when a point changed value type, kept for
	// the next point that needs one. A spare distribution wrapper keeps its
	// DistributionValue, buckets and exemplars for reuse.
	int64Vals pool.FreeList[metricspb.Point_Int64Value]
	dblVals   pool.FreeList[metricspb.Point_DoubleValue]
	distVals  pool.FreeList[metricspb.Point_DistributionValue]
	exemplars pool.FreeList[metricspb.DistributionValue_Exemplar]

	// names caches prefix + "/" + name, so that a prefixed view name costs
	// one allocation per view for the life of the converter.
	names map[nameKey]string
}

// NewViewConverter returns a ViewConverter.
func NewViewConverter() *ViewConverter {
	return &ViewConverter{names: make(map[nameKey]string)}
}

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
func (c *ViewConverter) Convert(dst *metricspb.Metric, vd *view.Data, prefix string) error {
	if dst == nil {
		return errNilMetric
	}
	kind, err := viewKindOf(vd)
	if err != nil {
		return err
	}
	v := vd.View

	md := dst.MetricDescriptor
	if md == nil {
		md = metricspb.MetricDescriptorFromVTPool()
		dst.MetricDescriptor = md
	}
	name := v.Name
	if name == "" {
		name = v.Measure.Name()
	}
	md.Name = c.metricName(md.Name, prefix, name)
	desc := v.Description
	if desc == "" {
		desc = v.Measure.Description()
	}
	md.Description = validUTF8(desc)
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

// viewKindOf validates vd and returns what its rows convert to.
func viewKindOf(vd *view.Data) (viewKind, error) {
	if vd == nil {
		return 0, errNilViewData
	}
	v := vd.View
	if v == nil {
		return 0, errNilView
	}
	// Only an int64 measure makes int64 sums and last values: any other
	// measure (float64, or a user's own type) keeps its fraction as a double.
	double := true
	switch m := v.Measure.(type) {
	case nil:
		return 0, errNilMeasure
	case *stats.Float64Measure:
		if m == nil {
			return 0, errNilMeasure
		}
	case *stats.Int64Measure:
		if m == nil {
			return 0, errNilMeasure
		}
		double = false
	}
	if v.Aggregation == nil {
		return 0, errNilAggregation
	}
	var kind viewKind
	switch v.Aggregation.Type {
	case view.AggTypeCount:
		kind = kindCount
	case view.AggTypeSum:
		kind = kindSumInt
		if double {
			kind = kindSumDouble
		}
	case view.AggTypeLastValue:
		kind = kindLastInt
		if double {
			kind = kindLastDouble
		}
	case view.AggTypeDistribution:
		kind = kindDistribution
	default:
		return 0, fmt.Errorf("fastconv: view %q: unsupported aggregation type %v", v.Name, v.Aggregation.Type)
	}
	for i, row := range vd.Rows {
		var ok bool
		if row != nil {
			switch kind {
			case kindCount:
				d, is := row.Data.(*view.CountData)
				ok = is && d != nil
			case kindSumInt, kindSumDouble:
				d, is := row.Data.(*view.SumData)
				ok = is && d != nil
			case kindLastInt, kindLastDouble:
				d, is := row.Data.(*view.LastValueData)
				ok = is && d != nil
			case kindDistribution:
				d, is := row.Data.(*view.DistributionData)
				ok = is && d != nil
			}
		}
		if !ok {
			return 0, fmt.Errorf("fastconv: view %q: row %d: want %v aggregation data", v.Name, i, v.Aggregation.Type)
		}
	}
	return kind, nil
}

// metricName returns validUTF8(prefix + "/" + name), or validUTF8(name) when
// prefix is empty, without allocating when old already holds the result or the
// converter has built it before.
func (c *ViewConverter) metricName(old, prefix, name string) string {
	if prefix == "" {
		return validUTF8(name)
	}
	if len(old) == len(prefix)+1+len(name) && old[len(prefix)] == '/' &&
		strings.HasPrefix(old, prefix) && strings.HasSuffix(old, name) {
		return old
	}
	k := nameKey{prefix, name}
	if s, ok := c.names[k]; ok {
		return s
	}
	s := validUTF8(prefix + "/" + name)
	if len(c.names) >= maxCachedNames {
		clear(c.names)
	}
	c.names[k] = s
	return s
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

func (c *ViewConverter) setInt64(pt *metricspb.Point, v int64) {
	w, ok := pt.Value.(*metricspb.Point_Int64Value)
	if !ok {
		c.releaseValue(pt)
		w = c.int64Vals.Get()
		pt.Value = w
	}
	w.Int64Value = v
}

func (c *ViewConverter) setDouble(pt *metricspb.Point, v float64) {
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
func (c *ViewConverter) distributionValue(pt *metricspb.Point) *metricspb.DistributionValue {
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

func (c *ViewConverter) releaseValue(pt *metricspb.Point) {
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

func (c *ViewConverter) distribution(dv *metricspb.DistributionValue, d *view.DistributionData, bounds []float64) {
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
