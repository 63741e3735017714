package difftest

// The differential test of views: the same *view.Data values go through
// upstream's ExportView and ours, and the metrics the two agents receive are
// matched by name and walked like the spans of diff_test.go.
//
// Upstream v0.7.0 has neither WithDataBundlerOptions nor WithMetricNamePrefix
// (both came later, on its master branch), so both exporters keep their
// default view batching (2 s or 500 views), Flush sends the views, and metric
// name prefixes are not compared.

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	agentmetricspb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/metrics/v1"
	metricspb "github.com/census-instrumentation/opencensus-proto/gen-go/metrics/v1"
	"go.opencensus.io/metric/metricdata"
	"go.opencensus.io/stats"
	"go.opencensus.io/stats/view"
	"go.opencensus.io/tag"
	"go.opencensus.io/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// ---- inputs ----

// otherMeasure is a stats.Measure that is neither a *stats.Int64Measure nor a
// *stats.Float64Measure, which the interface allows.
type otherMeasure struct{ name string }

func (m otherMeasure) Name() string        { return m.name }
func (m otherMeasure) Description() string { return "a measure of another type" }
func (m otherMeasure) Unit() string        { return stats.UnitDimensionless }

var (
	mInt   = stats.Int64("difftest/int", "an int64 measure", stats.UnitBytes)
	mFloat = stats.Float64("difftest/float", "a float64 measure", stats.UnitMilliseconds)
	mNamed = stats.Int64("difftest/named_by_the_measure", "described by the measure", stats.UnitDimensionless)
	mOther = otherMeasure{"difftest/other"}

	keyA = tag.MustNewKey("a")
	keyB = tag.MustNewKey("b")
	keyC = tag.MustNewKey("c")
	keyZ = tag.MustNewKey("z") // in rows of a view without it
)

// viewInput is one view.Data given to both exporters.
type viewInput struct {
	name string
	vd   *view.Data
	// invalid is why our converter refuses the view (as computed by
	// invalidReason), "" for a valid view.
	invalid string
	// upstreamSkips: upstream's conversion returns an error too, so neither
	// exporter sends anything.
	upstreamSkips bool
}

func tg(k tag.Key, v string) tag.Tag { return tag.Tag{Key: k, Value: v} }

func row(data view.AggregationData, tags ...tag.Tag) *view.Row {
	return &view.Row{Tags: tags, Data: data}
}

func viewData(v *view.View, rows ...*view.Row) *view.Data {
	return &view.Data{View: v, Start: at(0), End: at(90*time.Second + 123), Rows: rows}
}

func newView(name string, m stats.Measure, agg *view.Aggregation, keys ...tag.Key) *view.View {
	return &view.View{Name: name, Description: "view " + name, Measure: m, Aggregation: agg, TagKeys: keys}
}

func count(n int64) *view.CountData           { return &view.CountData{Value: n} }
func sum(x float64) *view.SumData             { return &view.SumData{Value: x} }
func lastValue(x float64) *view.LastValueData { return &view.LastValueData{Value: x} }
func exemplar(v float64, d time.Duration, att metricdata.Attachments) *metricdata.Exemplar {
	return &metricdata.Exemplar{Value: v, Timestamp: at(d), Attachments: att}
}

// dist is a distribution over the bounds 0, 10, 100.
func dist(counts [4]int64, exemplars ...*metricdata.Exemplar) *view.DistributionData {
	var n int64
	for _, c := range counts {
		n += c
	}
	return &view.DistributionData{
		Count: n, Min: -1, Max: 250, Mean: 12.5, SumOfSquaredDev: 1234.5,
		CountPerBucket: counts[:], ExemplarsPerBucket: exemplars,
	}
}

var bounds = []float64{0, 10, 100}

func viewInputs() []viewInput {
	abc := []tag.Key{keyA, keyB, keyC}
	sc := trace.SpanContext{TraceID: traceID(50), SpanID: spanID(50), TraceOptions: 1}
	withExemplars := dist([4]int64{1, 2, 3, 4},
		nil,
		exemplar(5, 3*time.Second+17, metricdata.Attachments{
			metricdata.AttachmentKeySpanContext: sc, "user": "alice", "n": 42, "ok": true, "empty": "",
		}),
		exemplar(55.5, 4*time.Second, nil),
		exemplar(1000, 5*time.Second, metricdata.Attachments{"only": "one"}),
	)
	// OpenCensus gives one exemplar slot per bucket; a shorter slice must not
	// be read past its end.
	shortExemplars := dist([4]int64{0, 1, 0, 0}, nil, exemplar(7, time.Second, metricdata.Attachments{"k": "v"}))

	old := viewData(newView("difftest/view/times", mInt, view.Count(), keyA), row(count(1), tg(keyA, "x")))
	old.Start = time.Unix(-1, 500_000_000) // 1969-12-31T23:59:59.5Z
	old.End = time.Date(2300, 1, 1, 0, 0, 0, 1, time.UTC)

	return []viewInput{
		// Count.
		{name: "count, every row has every tag", vd: viewData(newView("difftest/view/count", mInt, view.Count(), abc...),
			row(count(5), tg(keyA, "a1"), tg(keyB, "b1"), tg(keyC, "c1")),
			row(count(7), tg(keyA, "a2"), tg(keyB, ""), tg(keyC, "c2")))}, // an empty value is a value
		{name: "count, rows missing tags", vd: viewData(newView("difftest/view/count_missing", mInt, view.Count(), abc...),
			row(count(1), tg(keyA, "a1"), tg(keyC, "c1")),
			row(count(2), tg(keyB, "b2")),
			row(count(3)),
			row(count(4), tg(keyA, "a4"), tg(keyB, "b4"), tg(keyC, "c4")))},
		{name: "count, keys not sorted", vd: viewData(newView("difftest/view/count_unsorted", mInt, view.Count(), keyC, keyA),
			row(count(1), tg(keyA, "a1"), tg(keyC, "c1")),
			row(count(2), tg(keyA, "a2")))},
		{name: "count, a tag outside the keys", vd: viewData(newView("difftest/view/count_outside", mInt, view.Count(), keyA),
			row(count(1), tg(keyA, "a1"), tg(keyZ, "z1")),
			row(count(2), tg(keyZ, "z2")))},
		{name: "count of a float64 measure", vd: viewData(newView("difftest/view/count_float", mFloat, view.Count(), keyA),
			row(count(1<<40), tg(keyA, "a1")))},

		// Sum.
		{name: "sum, int64 measure", vd: viewData(newView("difftest/view/sum_int", mInt, view.Sum(), keyA, keyB),
			row(sum(1234), tg(keyA, "a1"), tg(keyB, "b1")),
			row(sum(-5), tg(keyA, "a2")))},
		{name: "sum, float64 measure", vd: viewData(newView("difftest/view/sum_float", mFloat, view.Sum(), keyA),
			row(sum(1.25), tg(keyA, "a1")),
			row(sum(-0.5), tg(keyA, "")),
			row(sum(1e300)))},

		// Last value.
		{name: "last value, int64 measure", vd: viewData(newView("difftest/view/last_int", mInt, view.LastValue(), keyA),
			row(lastValue(42), tg(keyA, "a1")),
			row(lastValue(-7)))},
		{name: "last value, float64 measure", vd: viewData(newView("difftest/view/last_float", mFloat, view.LastValue(), keyA, keyB),
			row(lastValue(3.5), tg(keyA, "a1"), tg(keyB, "b1")),
			row(lastValue(-0.25), tg(keyB, "b2")))},

		// Distribution.
		{name: "distribution with bounds", vd: viewData(newView("difftest/view/dist", mFloat, view.Distribution(bounds...), keyA, keyB),
			row(dist([4]int64{1, 0, 5, 2}), tg(keyA, "a1"), tg(keyB, "b1")),
			row(dist([4]int64{0, 0, 0, 0}), tg(keyB, "b2")))},
		{name: "distribution with exemplars", vd: viewData(newView("difftest/view/dist_exemplars", mFloat, view.Distribution(bounds...), keyA),
			row(withExemplars, tg(keyA, "a1")),
			row(shortExemplars, tg(keyA, "a2")))},
		{name: "distribution without bounds", vd: viewData(newView("difftest/view/dist_nobounds", mInt, view.Distribution(), keyA),
			row(&view.DistributionData{Count: 3, Min: 1, Max: 3, Mean: 2, SumOfSquaredDev: 2, CountPerBucket: []int64{3}}, tg(keyA, "a1")))},

		// Empty views.
		{name: "empty count view", vd: viewData(newView("difftest/view/empty_count", mInt, view.Count(), abc...))},
		{name: "empty sum view", vd: viewData(newView("difftest/view/empty_sum", mFloat, view.Sum(), keyA))},
		{name: "empty last value view", vd: viewData(newView("difftest/view/empty_last", mInt, view.LastValue(), keyA))},
		{name: "empty distribution view", vd: viewData(newView("difftest/view/empty_dist", mFloat, view.Distribution(bounds...), keyA))},
		{name: "empty view without keys", vd: viewData(newView("difftest/view/empty_nokeys", mInt, view.Count()))},

		// Name, description and measures.
		{name: "name and description from the measure", vd: viewData(&view.View{Measure: mNamed, Aggregation: view.Count(), TagKeys: []tag.Key{keyA}},
			row(count(9), tg(keyA, "a1")))},
		{name: "count of a measure of another type", vd: viewData(newView("difftest/view/other_count", mOther, view.Count(), keyA),
			row(count(3), tg(keyA, "a1")))},
		{name: "sum of a measure of another type", vd: viewData(newView("difftest/view/other_sum", mOther, view.Sum(), keyA),
			row(sum(12), tg(keyA, "a1")),
			row(sum(2.75), tg(keyA, "a2")))},
		{name: "last value of a measure of another type", vd: viewData(newView("difftest/view/other_last", mOther, view.LastValue(), keyA),
			row(lastValue(-3.5), tg(keyA, "a1")))},
		{name: "distribution of a measure of another type", vd: viewData(newView("difftest/view/other_dist", mOther, view.Distribution(bounds...), keyA),
			row(dist([4]int64{0, 1, 1, 0}), tg(keyA, "a1")))},

		// Times.
		{name: "times before 1970 and after 2262", vd: old},

		// Invalid views: upstream sends a malformed metric, ours nothing.
		{name: "nil aggregation", invalid: "nil aggregation",
			vd: viewData(newView("difftest/view/nil_agg", mInt, nil, keyA), row(count(1), tg(keyA, "a1")))},
		{name: "aggregation type None", invalid: "unsupported aggregation type None",
			vd: viewData(newView("difftest/view/agg_none", mFloat, &view.Aggregation{Type: view.AggTypeNone}, keyA), row(sum(1.5), tg(keyA, "a1")))},
		{name: "row data not of the aggregation", invalid: "row 1 holds *view.DistributionData, not *view.CountData",
			vd: viewData(newView("difftest/view/mismatch", mFloat, view.Count(), keyA),
				row(count(1), tg(keyA, "a1")),
				row(dist([4]int64{1, 0, 0, 0}), tg(keyA, "a2")))},

		// Neither sends these.
		{name: "nil view", invalid: "nil view", upstreamSkips: true,
			vd: &view.Data{Start: at(0), End: at(time.Second), Rows: []*view.Row{row(count(1))}}},
		{name: "nil measure", invalid: "nil measure", upstreamSkips: true,
			vd: viewData(newView("difftest/view/nil_measure", nil, view.Count()), row(count(1)))},
	}
}

// metricName is the name both exporters give the view's metric.
func metricName(v *view.View) string {
	if v.Name != "" {
		return v.Name
	}
	return v.Measure.Name()
}

// dataType is the row data type of each aggregation.
var dataType = map[view.AggType]string{
	view.AggTypeCount:        "*view.CountData",
	view.AggTypeSum:          "*view.SumData",
	view.AggTypeLastValue:    "*view.LastValueData",
	view.AggTypeDistribution: "*view.DistributionData",
}

// invalidReason is why a view cannot be converted into a well-formed metric,
// "" when it can.
func invalidReason(vd *view.Data) string {
	v := vd.View
	switch {
	case v == nil:
		return "nil view"
	case v.Measure == nil:
		return "nil measure"
	case v.Aggregation == nil:
		return "nil aggregation"
	}
	want, ok := dataType[v.Aggregation.Type]
	if !ok {
		return "unsupported aggregation type " + v.Aggregation.Type.String()
	}
	for i, r := range vd.Rows {
		if got := fmt.Sprintf("%T", r.Data); got != want {
			return fmt.Sprintf("row %d holds %s, not %s", i, got, want)
		}
	}
	return ""
}

// ---- what ours claims to send ----

func isFloat(m stats.Measure) bool { _, ok := m.(*stats.Float64Measure); return ok }

func isInt(m stats.Measure) bool { _, ok := m.(*stats.Int64Measure); return ok }

func isIntOrFloat(m stats.Measure) bool {
	switch m.(type) {
	case *stats.Int64Measure, *stats.Float64Measure:
		return true
	}
	return false
}

// wantType is the descriptor type ours claims: int64 for every measure that is
// not a *stats.Float64Measure.
func wantType(v *view.View) metricspb.MetricDescriptor_Type {
	switch v.Aggregation.Type {
	case view.AggTypeCount:
		return metricspb.MetricDescriptor_CUMULATIVE_INT64
	case view.AggTypeSum:
		if isInt(v.Measure) {
			return metricspb.MetricDescriptor_CUMULATIVE_INT64
		}
		return metricspb.MetricDescriptor_CUMULATIVE_DOUBLE
	case view.AggTypeLastValue:
		if isInt(v.Measure) {
			return metricspb.MetricDescriptor_GAUGE_INT64
		}
		return metricspb.MetricDescriptor_GAUGE_DOUBLE
	case view.AggTypeDistribution:
		return metricspb.MetricDescriptor_CUMULATIVE_DISTRIBUTION
	}
	return metricspb.MetricDescriptor_UNSPECIFIED
}

// wantLabelValues is what ours claims: one value per key, in the keys' order,
// {"", false} for a key the row has no tag for; tags outside the keys ignored.
func wantLabelValues(keys []tag.Key, tags []tag.Tag) []*metricspb.LabelValue {
	out := make([]*metricspb.LabelValue, len(keys))
	for i, k := range keys {
		out[i] = &metricspb.LabelValue{}
		for _, t := range tags {
			if t.Key == k {
				out[i] = &metricspb.LabelValue{Value: t.Value, HasValue: true}
				break
			}
		}
	}
	return out
}

// upstreamLabelValues is what upstream sends: the row's tags in the row's
// order, whatever the keys.
func upstreamLabelValues(tags []tag.Tag) []*metricspb.LabelValue {
	var out []*metricspb.LabelValue
	for _, t := range tags {
		out = append(out, &metricspb.LabelValue{Value: t.Value, HasValue: t.Key.Name() != ""})
	}
	return out
}

func equalLabelValues(a, b []*metricspb.LabelValue) bool {
	return slices.EqualFunc(a, b, func(x, y *metricspb.LabelValue) bool { return proto.Equal(x, y) })
}

func showLabelValues(lvs []*metricspb.LabelValue) string {
	var s []string
	for _, lv := range lvs {
		if lv.GetHasValue() {
			s = append(s, fmt.Sprintf("%q", lv.GetValue()))
		} else {
			s = append(s, fmt.Sprintf("<none %q>", lv.GetValue()))
		}
	}
	return "[" + strings.Join(s, " ") + "]"
}

// wantExemplar is what ours claims for an exemplar: its value, its time, and
// its attachments: strings as they are, a SpanContext as "traceid/spanid" in
// hex, other values through fmt.Sprint.
func wantExemplar(e *metricdata.Exemplar) *metricspb.DistributionValue_Exemplar {
	x := &metricspb.DistributionValue_Exemplar{Value: e.Value, Timestamp: timestamppb.New(e.Timestamp)}
	for k, v := range e.Attachments {
		if x.Attachments == nil {
			x.Attachments = map[string]string{}
		}
		switch v := v.(type) {
		case string:
			x.Attachments[k] = v
		case trace.SpanContext:
			x.Attachments[k] = v.TraceID.String() + "/" + v.SpanID.String()
		default:
			x.Attachments[k] = fmt.Sprint(v)
		}
	}
	return x
}

// wantMetric is the metric ours claims to send for a valid view, built from
// the input alone.
func wantMetric(vd *view.Data) *metricspb.Metric {
	v := vd.View
	md := &metricspb.MetricDescriptor{
		Name:        metricName(v),
		Description: cmp.Or(v.Description, v.Measure.Description()),
		Unit:        v.Measure.Unit(),
		Type:        wantType(v),
	}
	for _, k := range v.TagKeys {
		md.LabelKeys = append(md.LabelKeys, &metricspb.LabelKey{Key: k.Name()})
	}
	m := &metricspb.Metric{MetricDescriptor: md}
	float := !isInt(v.Measure)
	number := func(pt *metricspb.Point, x float64) {
		if float {
			pt.Value = &metricspb.Point_DoubleValue{DoubleValue: x}
		} else {
			pt.Value = &metricspb.Point_Int64Value{Int64Value: int64(x)}
		}
	}
	for _, r := range vd.Rows {
		pt := &metricspb.Point{Timestamp: timestamppb.New(vd.End)}
		switch d := r.Data.(type) {
		case *view.CountData:
			pt.Value = &metricspb.Point_Int64Value{Int64Value: d.Value}
		case *view.SumData:
			number(pt, d.Value)
		case *view.LastValueData:
			number(pt, d.Value)
		case *view.DistributionData:
			dv := &metricspb.DistributionValue{
				Count: d.Count, Sum: float64(d.Count) * d.Mean, SumOfSquaredDeviation: d.SumOfSquaredDev,
				BucketOptions: &metricspb.DistributionValue_BucketOptions{Type: &metricspb.DistributionValue_BucketOptions_Explicit_{
					Explicit: &metricspb.DistributionValue_BucketOptions_Explicit{Bounds: v.Aggregation.Buckets},
				}},
			}
			for i, n := range d.CountPerBucket {
				b := &metricspb.DistributionValue_Bucket{Count: n}
				if i < len(d.ExemplarsPerBucket) && d.ExemplarsPerBucket[i] != nil {
					b.Exemplar = wantExemplar(d.ExemplarsPerBucket[i])
				}
				dv.Buckets = append(dv.Buckets, b)
			}
			pt.Value = &metricspb.Point_DistributionValue{DistributionValue: dv}
		}
		m.Timeseries = append(m.Timeseries, &metricspb.TimeSeries{
			StartTimestamp: timestamppb.New(vd.Start),
			LabelValues:    wantLabelValues(v.TagKeys, r.Tags),
			Points:         []*metricspb.Point{pt},
		})
	}
	return m
}

// rowNumber is the value of a sum or last value row.
func rowNumber(r *view.Row) (float64, bool) {
	switch d := r.Data.(type) {
	case *view.SumData:
		return d.Value, true
	case *view.LastValueData:
		return d.Value, true
	}
	return 0, false
}

// malformed says why upstream's metric does not describe its points: an
// unspecified type, or a point whose value is not of the descriptor's type.
func malformed(m *metricspb.Metric) string {
	typ := m.GetMetricDescriptor().GetType()
	if typ == metricspb.MetricDescriptor_UNSPECIFIED {
		return "type UNSPECIFIED"
	}
	for i, ts := range m.GetTimeseries() {
		for j, pt := range ts.GetPoints() {
			var ok bool
			switch pt.GetValue().(type) {
			case *metricspb.Point_Int64Value:
				ok = typ == metricspb.MetricDescriptor_CUMULATIVE_INT64 || typ == metricspb.MetricDescriptor_GAUGE_INT64
			case *metricspb.Point_DoubleValue:
				ok = typ == metricspb.MetricDescriptor_CUMULATIVE_DOUBLE || typ == metricspb.MetricDescriptor_GAUGE_DOUBLE
			case *metricspb.Point_DistributionValue:
				ok = typ == metricspb.MetricDescriptor_CUMULATIVE_DISTRIBUTION || typ == metricspb.MetricDescriptor_GAUGE_DISTRIBUTION
			}
			if !ok {
				return fmt.Sprintf("timeseries[%d].points[%d] holds %T under type %v", i, j, pt.GetValue(), typ)
			}
		}
	}
	return ""
}

// ---- the documented differences ----

// viewCase is what the documented differences of views are verified
// against: the input and both metrics as the agents received them (ours nil
// when ours sent none).
type viewCase struct {
	in       viewInput
	up, ours *metricspb.Metric
}

// rowAt is the input row of the time series at d's path.
func rowAt(d diff, c viewCase) (*view.Row, error) {
	if len(d.idx) == 0 || d.idx[0] >= len(c.in.vd.Rows) {
		return nil, fmt.Errorf("no input row for %s", d.path)
	}
	return c.in.vd.Rows[d.idx[0]], nil
}

// The schema of the whole metric, for a metric one exporter sent and the
// other did not.
const wholeMetric = "metric"

const whereViews = "fastconv/view.go, ViewConverter.Convert; docs/differences.md, Views"

var viewDifferences = []documented[viewCase]{
	{
		name: "label values stand at the position of their key, {\"\", false} for a missing tag, tags outside the keys ignored " +
			"(upstream sends the row's tags in the row's order, shifting values)",
		where: whereViews + " and labelValues",
		matches: func(d diff) bool {
			return d.schema == "timeseries[].label_values" || strings.HasPrefix(d.schema, "timeseries[].label_values[]")
		},
		verify: func(d diff, c viewCase) error {
			r, err := rowAt(d, c)
			if err != nil {
				return err
			}
			i := d.idx[0]
			want, upWant := wantLabelValues(c.in.vd.View.TagKeys, r.Tags), upstreamLabelValues(r.Tags)
			if equalLabelValues(want, upWant) {
				return fmt.Errorf("row %d has every key's tag, in the keys' order, and no other: nothing to place differently", i)
			}
			if got := c.ours.GetTimeseries()[i].GetLabelValues(); !equalLabelValues(got, want) {
				return fmt.Errorf("ours %s, want %s", showLabelValues(got), showLabelValues(want))
			}
			if got := c.up.GetTimeseries()[i].GetLabelValues(); !equalLabelValues(got, upWant) {
				return fmt.Errorf("upstream %s, expected %s", showLabelValues(got), showLabelValues(upWant))
			}
			return nil
		},
	},
	{
		name:    "distribution buckets carry their exemplars, attachments included (upstream drops them)",
		where:   whereViews + " and exemplar",
		matches: is(extraInOurs, "timeseries[].points[].distribution_value.buckets[].exemplar"),
		verify: func(d diff, c viewCase) error {
			r, err := rowAt(d, c)
			if err != nil {
				return err
			}
			dd, ok := r.Data.(*view.DistributionData)
			if !ok {
				return fmt.Errorf("row %d holds %T", d.idx[0], r.Data)
			}
			b := d.idx[2]
			if b >= len(dd.ExemplarsPerBucket) || dd.ExemplarsPerBucket[b] == nil {
				return fmt.Errorf("bucket %d of row %d has no exemplar", b, d.idx[0])
			}
			want := wantExemplar(dd.ExemplarsPerBucket[b])
			if got := ourMsg[*metricspb.DistributionValue_Exemplar](d); !proto.Equal(got, want) {
				return fmt.Errorf("got {%v}, want {%v}", got, want)
			}
			return nil
		},
	},
	{
		name: "sum and last value of a measure neither *stats.Int64Measure nor *stats.Float64Measure are typed " +
			"CUMULATIVE_DOUBLE / GAUGE_DOUBLE (upstream: type UNSPECIFIED; the double values are the same)",
		where:   "fastconv/view.go, viewKindOf",
		matches: is(extraInOurs, "metric_descriptor.type"),
		verify: func(d diff, c viewCase) error {
			v := c.in.vd.View
			if isIntOrFloat(v.Measure) {
				return fmt.Errorf("the measure is a %T", v.Measure)
			}
			if t := v.Aggregation.Type; t != view.AggTypeSum && t != view.AggTypeLastValue {
				return fmt.Errorf("the aggregation is %v", t)
			}
			if got, want := metricspb.MetricDescriptor_Type(d.ours.Enum()), wantType(v); got != want {
				return fmt.Errorf("ours %v, want %v", got, want)
			}
			return nil // upstream's is unset: UNSPECIFIED
		},
	},
	{
		name:    "times before 1970 or after 2262 are right (upstream's UnixNano division gives negative nanos or overflows)",
		where:   "fastconv/view.go, ViewConverter.Convert; fastconv/fastconv.go, setTime",
		matches: is(valueDiffers, "timeseries[].start_timestamp", "timeseries[].points[].timestamp"),
		verify: func(d diff, c viewCase) error {
			if d.schema == "timeseries[].start_timestamp" {
				return checkTime(d, c.in.vd.Start)
			}
			return checkTime(d, c.in.vd.End)
		},
	},
	{
		name: "an invalid view is not sent but counted in Stats.ViewsDroppedInvalid (upstream sends a malformed metric)",
		where: "fastconv/view.go, the errors of ViewConverter.Convert; docs/differences.md, Views; " +
			"exporter.go, Stats.ViewsDroppedInvalid",
		matches: is(missingInOurs, wholeMetric),
		verify: func(d diff, c viewCase) error {
			why := invalidReason(c.in.vd)
			if why == "" {
				return fmt.Errorf("the view is valid")
			}
			if why != c.in.invalid {
				return fmt.Errorf("the view is invalid for %q, the test input says %q", why, c.in.invalid)
			}
			if malformed(c.up) == "" {
				return fmt.Errorf("upstream's metric is well formed: {%v}", c.up)
			}
			return nil
		},
	},
}

// ---- the test ----

func metricsByName(t *testing.T, who string, ms []*metricspb.Metric) map[string]*metricspb.Metric {
	t.Helper()
	out := make(map[string]*metricspb.Metric, len(ms))
	for _, m := range ms {
		n := m.GetMetricDescriptor().GetName()
		if _, dup := out[n]; dup {
			t.Errorf("%s: metric %q received twice", who, n)
		}
		out[n] = m
	}
	return out
}

func TestDifferentialViews(t *testing.T) {
	up, ours, upAgent, ourAgent := startPair(t)

	in := viewInputs()
	nUp, nOurs, nInvalid := 0, 0, 0
	for _, v := range in {
		if !v.upstreamSkips {
			nUp++
		}
		if v.invalid == "" {
			nOurs++
		} else {
			nInvalid++
		}
		up.ExportView(v.vd)
		ours.ExportView(v.vd)
	}
	up.Flush()
	ours.Flush()
	if err := upAgent.WaitMetrics(nUp, wait); err != nil {
		t.Fatalf("upstream: %v", err)
	}
	if err := ourAgent.WaitMetrics(nOurs, wait); err != nil {
		t.Fatalf("ours: %v", err)
	}

	// The envelope: Node in the first message only, the Resource in every one.
	um, om := compareMetricsStreamHeads(t, upAgent, ourAgent)
	t.Logf("metrics messages after the first: upstream %d, ours %d", len(um), len(om))
	for who, msgs := range map[string][]*agentmetricspb.ExportMetricsServiceRequest{"upstream": um, "ours": om} {
		for i, m := range msgs {
			if m.GetNode() != nil {
				t.Errorf("%s: metrics message %d carries a Node (upstream sends it in the first message only)", who, i+1)
			}
			compareResources(t, fmt.Sprintf("%s: metrics message %d", who, i+1), m.GetResource(), m.GetResource())
		}
	}

	upMetrics := metricsByName(t, "upstream", upAgent.Metrics())
	ourMetrics := metricsByName(t, "ours", ourAgent.Metrics())
	exercised := make(map[string]int)
	names := map[string]bool{}
	for _, v := range in {
		if v.invalid != invalidReason(v.vd) {
			t.Fatalf("input %q: invalid %q, but invalidReason says %q", v.name, v.invalid, invalidReason(v.vd))
		}
		if v.upstreamSkips {
			continue
		}
		name := metricName(v.vd.View)
		names[name] = true
		u, o := upMetrics[name], ourMetrics[name]
		what := fmt.Sprintf("view %q (%s)", v.name, name)
		if u == nil {
			t.Errorf("%s: upstream sent no metric", what)
			continue
		}
		c := viewCase{in: v, up: u, ours: o}
		if o == nil {
			d := diff{kind: missingInOurs, path: wholeMetric, schema: wholeMetric, up: protoreflect.ValueOfMessage(u.ProtoReflect())}
			judge(t, what, viewDifferences, []diff{d}, c, exercised)
			continue
		}
		var w walker
		w.message(pos{}, u.ProtoReflect(), o.ProtoReflect())
		judge(t, what, viewDifferences, w.diffs, c, exercised)
		if want := wantMetric(v.vd); !proto.Equal(o, want) {
			t.Errorf("%s: ours is not the conversion we claim:\n\tgot  {%v}\n\twant {%v}", what, o, want)
		}
	}
	for who, ms := range map[string]map[string]*metricspb.Metric{"upstream": upMetrics, "ours": ourMetrics} {
		for n := range ms {
			if !names[n] {
				t.Errorf("%s sent a metric %q from no input", who, n)
			}
		}
	}
	requireObserved(t, viewDifferences, exercised)

	s := ours.Stats()
	if s.ViewsDroppedInvalid != uint64(nInvalid) {
		t.Errorf("ours: Stats.ViewsDroppedInvalid = %d, want %d", s.ViewsDroppedInvalid, nInvalid)
	}
	if s.ViewsExported != uint64(nOurs) {
		t.Errorf("ours: Stats.ViewsExported = %d, want %d", s.ViewsExported, nOurs)
	}

	if err := up.Stop(); err != nil {
		t.Errorf("upstream Stop: %v", err)
	}
	if err := ours.Stop(); err != nil {
		t.Errorf("our Stop: %v", err)
	}
	if n := upAgent.MetricCount(); n != int64(nUp) {
		t.Errorf("upstream's agent received %d metrics, want %d", n, nUp)
	}
	if n := ourAgent.MetricCount(); n != int64(nOurs) {
		t.Errorf("our agent received %d metrics, want %d", n, nOurs)
	}
}

// TestViewWalkerCatchesDifferences checks the checker for views: differences
// outside viewDifferences, and documented ones with the wrong value, are
// caught.
func TestViewWalkerCatchesDifferences(t *testing.T) {
	v := viewInput{name: "checker", vd: viewData(newView("difftest/view/checker", mFloat, view.Distribution(bounds...), keyA, keyB),
		row(dist([4]int64{1, 2, 3, 4}, nil, exemplar(5, time.Second, metricdata.Attachments{"k": "v"}), nil, nil), tg(keyB, "b1")))}
	good := wantMetric(v.vd)

	// Upstream: the row's tags in its order, no exemplars.
	up := proto.Clone(good).(*metricspb.Metric)
	up.Timeseries[0].LabelValues = upstreamLabelValues(v.vd.Rows[0].Tags)
	up.Timeseries[0].Points[0].GetDistributionValue().Buckets[1].Exemplar = nil

	// Ours, wrong: b's value at a's place, a wrong exemplar value, another
	// description and bucket count.
	ours := proto.Clone(good).(*metricspb.Metric)
	ours.Timeseries[0].LabelValues = []*metricspb.LabelValue{{Value: "b1", HasValue: true}, {}}
	ours.Timeseries[0].Points[0].GetDistributionValue().Buckets[1].Exemplar.Value = 6
	ours.Timeseries[0].Points[0].GetDistributionValue().Buckets[2].Count = 99
	ours.MetricDescriptor.Description = "changed"

	c := viewCase{in: v, up: up, ours: ours}
	var w walker
	w.message(pos{}, up.ProtoReflect(), ours.ProtoReflect())
	got := map[string]string{}
	for _, d := range w.diffs {
		doc, err := explain(viewDifferences, d, c)
		switch {
		case doc == nil:
			got[d.path] = "undocumented " + d.kind.String()
		case err != nil:
			got[d.path] = "wrong documented value"
		default:
			got[d.path] = "documented"
		}
	}
	want := map[string]string{
		"metric_descriptor.description": "undocumented value differs",
		// Lengths 1 and 2; the first value is {"b1", true} in both.
		"timeseries[0].label_values":                                     "wrong documented value",
		"timeseries[0].points[0].distribution_value.buckets[1].exemplar": "wrong documented value",
		"timeseries[0].points[0].distribution_value.buckets[2].count":    "undocumented value differs",
	}
	for p, w := range want {
		if got[p] != w {
			t.Errorf("%s: got %q, want %q", p, got[p], w)
		}
	}
	for p, g := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("unexpected finding at %s: %s", p, g)
		}
	}

	// The right conversion passes: the documented differences only.
	ours = proto.Clone(good).(*metricspb.Metric)
	c.ours = ours
	w = walker{}
	w.message(pos{}, up.ProtoReflect(), ours.ProtoReflect())
	if len(w.diffs) == 0 {
		t.Fatal("no differences between upstream's conversion and ours")
	}
	for _, d := range w.diffs {
		if doc, err := explain(viewDifferences, d, c); doc == nil || err != nil {
			t.Errorf("%s: documented=%v err=%v", d, doc != nil, err)
		}
	}

	// A valid view that ours did not send is not the documented omission.
	d := diff{kind: missingInOurs, path: wholeMetric, schema: wholeMetric, up: protoreflect.ValueOfMessage(up.ProtoReflect())}
	if doc, err := explain(viewDifferences, d, viewCase{in: v, up: up}); doc == nil || err == nil {
		t.Errorf("a valid view missing in ours: documented=%v err=%v, want a verification error", doc != nil, err)
	}
	// A metric of type UNSPECIFIED, sent by ours, is not documented.
	ours = proto.Clone(good).(*metricspb.Metric)
	ours.MetricDescriptor.Type = metricspb.MetricDescriptor_UNSPECIFIED
	w = walker{}
	w.message(pos{}, good.ProtoReflect(), ours.ProtoReflect())
	for _, d := range w.diffs {
		if doc, _ := explain(viewDifferences, d, viewCase{in: v, up: good, ours: ours}); doc != nil {
			t.Errorf("%s: explained by %q", d, doc.name)
		}
	}
	if len(w.diffs) != 1 {
		t.Errorf("type UNSPECIFIED in ours: %d differences, want 1", len(w.diffs))
	}
}
