package fastconv

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"go.opencensus.io/metric/metricdata"
	"go.opencensus.io/stats"
	"go.opencensus.io/stats/view"
	"go.opencensus.io/tag"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	upmetricspb "github.com/census-instrumentation/opencensus-proto/gen-go/metrics/v1"
	resourcepb "github.com/zerocensus/ocagent/internal/ocproto/resource/v1"

	metricspb "github.com/zerocensus/ocagent/internal/ocproto/metrics/v1"
)

var (
	vtKeyA = tag.MustNewKey("a_key")
	vtKeyB = tag.MustNewKey("b_key")

	vtInt   = stats.Int64("fastconv_test/bytes", "bytes measure", stats.UnitBytes)
	vtFloat = stats.Float64("fastconv_test/latency", "latency measure", stats.UnitMilliseconds)

	vtStart = time.Date(2024, 3, 1, 12, 0, 0, 123456789, time.UTC)
	vtEnd   = vtStart.Add(90*time.Second + 5)
	vtExTS  = vtStart.Add(30*time.Second + 7)
)

// vtRows returns one row per aggregation value, with the tag sets used by
// every table case: both tags, only the second key's tag (the first is
// missing), both tags in reverse order, and no tags.
func vtRows(data ...view.AggregationData) []*view.Row {
	tagSets := [][]tag.Tag{
		{{Key: vtKeyA, Value: "x"}, {Key: vtKeyB, Value: "y"}},
		{{Key: vtKeyB, Value: "only-b"}},
		{{Key: vtKeyB, Value: "y2"}, {Key: vtKeyA, Value: "x2"}},
		nil,
	}
	rows := make([]*view.Row, len(data))
	for i, d := range data {
		rows[i] = &view.Row{Tags: tagSets[i%len(tagSets)], Data: d}
	}
	return rows
}

// vtWantLabels are the label values expected for the rows of vtRows with the
// tag keys [a_key, b_key]: each value sits at its key's position whatever the
// row's tag order, and a missing tag is {Value: "", HasValue: false}.
func vtWantLabels(i int) []*upmetricspb.LabelValue {
	lv := func(v string, has bool) *upmetricspb.LabelValue {
		return &upmetricspb.LabelValue{Value: v, HasValue: has}
	}
	switch i % 4 {
	case 0:
		return []*upmetricspb.LabelValue{lv("x", true), lv("y", true)}
	case 1:
		return []*upmetricspb.LabelValue{lv("", false), lv("only-b", true)}
	case 2:
		return []*upmetricspb.LabelValue{lv("x2", true), lv("y2", true)}
	default:
		return []*upmetricspb.LabelValue{lv("", false), lv("", false)}
	}
}

func vtData(name, desc string, m stats.Measure, agg *view.Aggregation, keys []tag.Key, rows []*view.Row) *view.Data {
	return &view.Data{
		View:  &view.View{Name: name, Description: desc, Measure: m, Aggregation: agg, TagKeys: keys},
		Start: vtStart,
		End:   vtEnd,
		Rows:  rows,
	}
}

func vtUpStamp(t time.Time) *timestamppb.Timestamp {
	return &timestamppb.Timestamp{Seconds: t.Unix(), Nanos: int32(t.Nanosecond())}
}

func vtUpDesc(name, desc, unit string, typ upmetricspb.MetricDescriptor_Type, keys ...string) *upmetricspb.MetricDescriptor {
	d := &upmetricspb.MetricDescriptor{Name: name, Description: desc, Unit: unit, Type: typ}
	for _, k := range keys {
		d.LabelKeys = append(d.LabelKeys, &upmetricspb.LabelKey{Key: k})
	}
	return d
}

// vtUpSeries builds the expected time series: start timestamp vd.Start (for
// gauges too, as upstream), one point at vd.End, labels from vtWantLabels.
func vtUpSeries(values ...*upmetricspb.Point) []*upmetricspb.TimeSeries {
	ts := make([]*upmetricspb.TimeSeries, len(values))
	for i, p := range values {
		p.Timestamp = vtUpStamp(vtEnd)
		ts[i] = &upmetricspb.TimeSeries{
			StartTimestamp: vtUpStamp(vtStart),
			LabelValues:    vtWantLabels(i),
			Points:         []*upmetricspb.Point{p},
		}
	}
	return ts
}

func vtUpInt(v int64) *upmetricspb.Point {
	return &upmetricspb.Point{Value: &upmetricspb.Point_Int64Value{Int64Value: v}}
}

func vtUpDouble(v float64) *upmetricspb.Point {
	return &upmetricspb.Point{Value: &upmetricspb.Point_DoubleValue{DoubleValue: v}}
}

func vtUpDist(count int64, sum, ssd float64, bounds []float64, buckets ...*upmetricspb.DistributionValue_Bucket) *upmetricspb.Point {
	return &upmetricspb.Point{Value: &upmetricspb.Point_DistributionValue{DistributionValue: &upmetricspb.DistributionValue{
		Count:                 count,
		Sum:                   sum,
		SumOfSquaredDeviation: ssd,
		BucketOptions: &upmetricspb.DistributionValue_BucketOptions{
			Type: &upmetricspb.DistributionValue_BucketOptions_Explicit_{
				Explicit: &upmetricspb.DistributionValue_BucketOptions_Explicit{Bounds: bounds},
			},
		},
		Buckets: buckets,
	}}}
}

func vtUpBucket(n int64) *upmetricspb.DistributionValue_Bucket {
	return &upmetricspb.DistributionValue_Bucket{Count: n}
}

// vtRoundTrip encodes m with vtprotobuf and decodes it with protobuf-go into the
// upstream opencensus-proto message, as the agent would.
func vtRoundTrip(t testing.TB, m *metricspb.Metric) *upmetricspb.Metric {
	t.Helper()
	b, err := m.MarshalVT()
	if err != nil {
		t.Fatalf("MarshalVT: %v", err)
	}
	up := new(upmetricspb.Metric)
	if err := proto.Unmarshal(b, up); err != nil {
		t.Fatalf("upstream proto.Unmarshal: %v", err)
	}
	return up
}

type viewCase struct {
	name   string
	vd     *view.Data
	prefix string
	want   *upmetricspb.Metric
}

var vtBounds = []float64{1, 5, 10}

func viewCases() []viewCase {
	keys := []tag.Key{vtKeyA, vtKeyB}
	intDesc := func(typ upmetricspb.MetricDescriptor_Type) *upmetricspb.MetricDescriptor {
		return vtUpDesc("v", "view desc", "By", typ, "a_key", "b_key")
	}
	floatDesc := func(typ upmetricspb.MetricDescriptor_Type) *upmetricspb.MetricDescriptor {
		return vtUpDesc("v", "view desc", "ms", typ, "a_key", "b_key")
	}
	exemplars := []*metricdata.Exemplar{
		nil,
		{Value: 3.5, Timestamp: vtExTS, Attachments: metricdata.Attachments{"trace": "abc", "n": 42, "b": "second"}},
		nil,
		{Value: 12, Timestamp: vtExTS.Add(time.Second)}, // no attachments
	}
	return []viewCase{
		{
			name: "count/int",
			vd: vtData("v", "view desc", vtInt, view.Count(), keys, vtRows(
				&view.CountData{Value: 5}, &view.CountData{Value: 0}, &view.CountData{Value: 1 << 40}, &view.CountData{Value: 7})),
			want: &upmetricspb.Metric{
				MetricDescriptor: intDesc(upmetricspb.MetricDescriptor_CUMULATIVE_INT64),
				Timeseries:       vtUpSeries(vtUpInt(5), vtUpInt(0), vtUpInt(1<<40), vtUpInt(7)),
			},
		},
		{
			// Count is int64 whatever the measure.
			name: "count/float",
			vd:   vtData("v", "view desc", vtFloat, view.Count(), keys, vtRows(&view.CountData{Value: 3})),
			want: &upmetricspb.Metric{
				MetricDescriptor: floatDesc(upmetricspb.MetricDescriptor_CUMULATIVE_INT64),
				Timeseries:       vtUpSeries(vtUpInt(3)),
			},
		},
		{
			name:   "count/prefix",
			prefix: "my/app",
			vd:     vtData("v", "view desc", vtInt, view.Count(), keys, vtRows(&view.CountData{Value: 1})),
			want: &upmetricspb.Metric{
				MetricDescriptor: vtUpDesc("my/app/v", "view desc", "By", upmetricspb.MetricDescriptor_CUMULATIVE_INT64, "a_key", "b_key"),
				Timeseries:       vtUpSeries(vtUpInt(1)),
			},
		},
		{
			// Sum of an int measure: int64 of the float sum (truncated).
			name: "sum/int",
			vd: vtData("v", "view desc", vtInt, view.Sum(), keys, vtRows(
				&view.SumData{Value: 3.7}, &view.SumData{Value: -2.5}, &view.SumData{Value: 1e12})),
			want: &upmetricspb.Metric{
				MetricDescriptor: intDesc(upmetricspb.MetricDescriptor_CUMULATIVE_INT64),
				Timeseries:       vtUpSeries(vtUpInt(3), vtUpInt(-2), vtUpInt(1e12)),
			},
		},
		{
			name: "sum/float",
			vd: vtData("v", "view desc", vtFloat, view.Sum(), keys, vtRows(
				&view.SumData{Value: 3.7}, &view.SumData{Value: -2.5}, &view.SumData{Value: 0}, &view.SumData{Value: 1e-9})),
			want: &upmetricspb.Metric{
				MetricDescriptor: floatDesc(upmetricspb.MetricDescriptor_CUMULATIVE_DOUBLE),
				Timeseries:       vtUpSeries(vtUpDouble(3.7), vtUpDouble(-2.5), vtUpDouble(0), vtUpDouble(1e-9)),
			},
		},
		{
			// Gauges keep vd.Start as the start timestamp, as upstream.
			name: "lastvalue/int",
			vd: vtData("v", "view desc", vtInt, view.LastValue(), keys, vtRows(
				&view.LastValueData{Value: 9.9}, &view.LastValueData{Value: -1})),
			want: &upmetricspb.Metric{
				MetricDescriptor: intDesc(upmetricspb.MetricDescriptor_GAUGE_INT64),
				Timeseries:       vtUpSeries(vtUpInt(9), vtUpInt(-1)),
			},
		},
		{
			name: "lastvalue/float",
			vd: vtData("v", "view desc", vtFloat, view.LastValue(), keys, vtRows(
				&view.LastValueData{Value: 9.9}, &view.LastValueData{Value: -1}, &view.LastValueData{Value: 0.25})),
			want: &upmetricspb.Metric{
				MetricDescriptor: floatDesc(upmetricspb.MetricDescriptor_GAUGE_DOUBLE),
				Timeseries:       vtUpSeries(vtUpDouble(9.9), vtUpDouble(-1), vtUpDouble(0.25)),
			},
		},
		{
			// Sum = Count * Mean; bounds from the aggregation; one bucket per count.
			name: "distribution/float",
			vd: vtData("v", "view desc", vtFloat, view.Distribution(vtBounds...), keys, vtRows(
				&view.DistributionData{Count: 4, Mean: 2.5, SumOfSquaredDev: 5, Min: 1, Max: 4, CountPerBucket: []int64{1, 3, 0, 0}},
				&view.DistributionData{Count: 0, CountPerBucket: []int64{0, 0, 0, 0}},
			)),
			want: &upmetricspb.Metric{
				MetricDescriptor: floatDesc(upmetricspb.MetricDescriptor_CUMULATIVE_DISTRIBUTION),
				Timeseries: vtUpSeries(
					vtUpDist(4, 10, 5, vtBounds, vtUpBucket(1), vtUpBucket(3), vtUpBucket(0), vtUpBucket(0)),
					vtUpDist(0, 0, 0, vtBounds, vtUpBucket(0), vtUpBucket(0), vtUpBucket(0), vtUpBucket(0)),
				),
			},
		},
		{
			// Exemplars (upstream drops them): value, timestamp, attachments as
			// strings (string values as is, others through fmt.Sprint).
			name: "distribution/int/exemplars",
			vd: vtData("v", "view desc", vtInt, view.Distribution(vtBounds...), keys, vtRows(
				&view.DistributionData{Count: 3, Mean: 7, SumOfSquaredDev: 2, CountPerBucket: []int64{0, 2, 0, 1}, ExemplarsPerBucket: exemplars},
				// Fewer exemplars than buckets.
				&view.DistributionData{Count: 1, Mean: 3.5, CountPerBucket: []int64{0, 1, 0, 0}, ExemplarsPerBucket: exemplars[:2]},
				&view.DistributionData{Count: 1, Mean: 0.5, CountPerBucket: []int64{1, 0, 0, 0}},
			)),
			want: &upmetricspb.Metric{
				MetricDescriptor: intDesc(upmetricspb.MetricDescriptor_CUMULATIVE_DISTRIBUTION),
				Timeseries: vtUpSeries(
					vtUpDist(3, 21, 2, vtBounds,
						vtUpBucket(0),
						&upmetricspb.DistributionValue_Bucket{Count: 2, Exemplar: &upmetricspb.DistributionValue_Exemplar{
							Value: 3.5, Timestamp: vtUpStamp(vtExTS),
							Attachments: map[string]string{"trace": "abc", "n": "42", "b": "second"},
						}},
						vtUpBucket(0),
						&upmetricspb.DistributionValue_Bucket{Count: 1, Exemplar: &upmetricspb.DistributionValue_Exemplar{
							Value: 12, Timestamp: vtUpStamp(vtExTS.Add(time.Second)),
						}},
					),
					vtUpDist(1, 3.5, 0, vtBounds,
						vtUpBucket(0),
						&upmetricspb.DistributionValue_Bucket{Count: 1, Exemplar: &upmetricspb.DistributionValue_Exemplar{
							Value: 3.5, Timestamp: vtUpStamp(vtExTS),
							Attachments: map[string]string{"trace": "abc", "n": "42", "b": "second"},
						}},
						vtUpBucket(0), vtUpBucket(0),
					),
					vtUpDist(1, 0.5, 0, vtBounds, vtUpBucket(1), vtUpBucket(0), vtUpBucket(0), vtUpBucket(0)),
				),
			},
		},
		{
			// A distribution without bounds has one bucket and an empty
			// explicit bucket option (as upstream).
			name: "distribution/nobounds",
			vd: vtData("v", "view desc", vtFloat, view.Distribution(), keys, vtRows(
				&view.DistributionData{Count: 2, Mean: 1, CountPerBucket: []int64{2}})),
			want: &upmetricspb.Metric{
				MetricDescriptor: floatDesc(upmetricspb.MetricDescriptor_CUMULATIVE_DISTRIBUTION),
				Timeseries:       vtUpSeries(vtUpDist(2, 2, 0, nil, vtUpBucket(2))),
			},
		},
		{
			// No rows: a descriptor and no time series.
			name: "empty",
			vd:   vtData("v", "view desc", vtInt, view.Sum(), keys, nil),
			want: &upmetricspb.Metric{MetricDescriptor: intDesc(upmetricspb.MetricDescriptor_CUMULATIVE_INT64)},
		},
		{
			// View name and description default to the measure's.
			name:   "measure-name",
			prefix: "p",
			vd:     vtData("", "", vtFloat, view.Count(), nil, []*view.Row{{Data: &view.CountData{Value: 2}}}),
			want: &upmetricspb.Metric{
				MetricDescriptor: vtUpDesc("p/fastconv_test/latency", "latency measure", "ms", upmetricspb.MetricDescriptor_CUMULATIVE_INT64),
				Timeseries: []*upmetricspb.TimeSeries{{
					StartTimestamp: vtUpStamp(vtStart),
					Points:         []*upmetricspb.Point{{Timestamp: vtUpStamp(vtEnd), Value: &upmetricspb.Point_Int64Value{Int64Value: 2}}},
				}},
			},
		},
		{
			// Unsorted tag keys: values follow the view's key order, although
			// the rows' tags are sorted by name (as OpenCensus makes them).
			name: "unsorted-keys",
			vd: vtData("v", "", vtInt, view.Count(), []tag.Key{vtKeyB, vtKeyA}, []*view.Row{
				{Tags: []tag.Tag{{Key: vtKeyA, Value: "x"}, {Key: vtKeyB, Value: "y"}}, Data: &view.CountData{Value: 1}},
				{Tags: []tag.Tag{{Key: vtKeyA, Value: "x"}}, Data: &view.CountData{Value: 2}},
			}),
			want: &upmetricspb.Metric{
				MetricDescriptor: vtUpDesc("v", "bytes measure", "By", upmetricspb.MetricDescriptor_CUMULATIVE_INT64, "b_key", "a_key"),
				Timeseries: []*upmetricspb.TimeSeries{
					{
						StartTimestamp: vtUpStamp(vtStart),
						LabelValues:    []*upmetricspb.LabelValue{{Value: "y", HasValue: true}, {Value: "x", HasValue: true}},
						Points:         []*upmetricspb.Point{{Timestamp: vtUpStamp(vtEnd), Value: &upmetricspb.Point_Int64Value{Int64Value: 1}}},
					},
					{
						StartTimestamp: vtUpStamp(vtStart),
						LabelValues:    []*upmetricspb.LabelValue{{}, {Value: "x", HasValue: true}},
						Points:         []*upmetricspb.Point{{Timestamp: vtUpStamp(vtEnd), Value: &upmetricspb.Point_Int64Value{Int64Value: 2}}},
					},
				},
			},
		},
	}
}

func TestConvertViewUpstream(t *testing.T) {
	for _, tc := range viewCases() {
		t.Run(tc.name, func(t *testing.T) {
			c := newOCViews()
			dst := new(metricspb.Metric)
			for pass := range 2 { // the second pass reuses everything
				if err := c.Convert(dst, tc.vd, tc.prefix); err != nil {
					t.Fatalf("pass %d: Convert: %v", pass, err)
				}
				if got := vtRoundTrip(t, dst); !proto.Equal(got, tc.want) {
					t.Fatalf("pass %d: got\n%v\nwant\n%v", pass, got, tc.want)
				}
			}
		})
	}
}

// TestConvertViewReuse converts every case after every other one into the same
// destination, and checks the result is encoded exactly as a fresh conversion.
func TestConvertViewReuse(t *testing.T) {
	cases := viewCases()
	big := vtBigView(200)
	for _, a := range append(cases, viewCase{name: "big", vd: big, prefix: "pfx"}) {
		for _, b := range cases {
			c := newOCViews()
			dst := new(metricspb.Metric)
			vtMustConvert(t, c, dst, a.vd, a.prefix)
			vtMustConvert(t, c, dst, b.vd, b.prefix)
			got, _ := dst.MarshalVT()
			fresh := new(metricspb.Metric)
			vtMustConvert(t, newOCViews(), fresh, b.vd, b.prefix)
			want, _ := fresh.MarshalVT()
			if !bytes.Equal(got, want) || !dst.EqualVT(fresh) {
				t.Errorf("%s then %s: reused dst differs from fresh conversion\ngot  %v\nwant %v", a.name, b.name, dst, fresh)
			}
		}
	}
}

// vtBigView is a distribution view with n rows, two keys and exemplars on
// every other row, each with several attachments.
func vtBigView(n int) *view.Data {
	rows := make([]*view.Row, n)
	for i := range rows {
		d := &view.DistributionData{Count: int64(i), Mean: 2, SumOfSquaredDev: 1, CountPerBucket: []int64{1, 2, 3, 4, 5, 6}}
		if i%2 == 0 {
			d.ExemplarsPerBucket = make([]*metricdata.Exemplar, 6)
			for j := range 6 {
				d.ExemplarsPerBucket[j] = &metricdata.Exemplar{Value: float64(j), Timestamp: vtExTS,
					Attachments: metricdata.Attachments{"k1": "v1", "k2": "v2", "k3": j}}
			}
		}
		rows[i] = &view.Row{Tags: []tag.Tag{{Key: vtKeyA, Value: fmt.Sprint("a", i)}, {Key: vtKeyB, Value: "b"}}, Data: d}
	}
	return vtData("big/view", "big", vtFloat, view.Distribution(1, 2, 3, 4, 5), []tag.Key{vtKeyA, vtKeyB}, rows)
}

func vtMustConvert(t testing.TB, c *ocViews, dst *metricspb.Metric, vd *view.Data, prefix string) {
	t.Helper()
	if err := c.Convert(dst, vd, prefix); err != nil {
		t.Fatalf("Convert: %v", err)
	}
}

func TestConvertViewBigThenSmall(t *testing.T) {
	c := newOCViews()
	dst := new(metricspb.Metric)
	vtMustConvert(t, c, dst, vtBigView(50), "pfx")
	small := vtData("small", "", vtInt, view.Sum(), []tag.Key{vtKeyB}, []*view.Row{
		{Tags: []tag.Tag{{Key: vtKeyB, Value: "z"}}, Data: &view.SumData{Value: 4}},
	})
	vtMustConvert(t, c, dst, small, "")
	fresh := new(metricspb.Metric)
	vtMustConvert(t, newOCViews(), fresh, small, "")
	got, _ := dst.MarshalVT()
	want, _ := fresh.MarshalVT()
	if !bytes.Equal(got, want) {
		t.Fatalf("big then small:\ngot  %v\nwant %v", dst, fresh)
	}
	// And back: the spares kept by the converter refill the big view exactly.
	vtMustConvert(t, c, dst, vtBigView(50), "pfx")
	fresh = new(metricspb.Metric)
	vtMustConvert(t, newOCViews(), fresh, vtBigView(50), "pfx")
	if !dst.EqualVT(fresh) {
		t.Fatal("small then big differs from a fresh conversion")
	}
}

// TestConvertViewForeignFields fills a dst with what Convert never produces
// (a resource, a summary point, label key descriptions) and checks none of it
// survives.
func TestConvertViewForeignFields(t *testing.T) {
	dst := &metricspb.Metric{
		MetricDescriptor: &metricspb.MetricDescriptor{
			Name:      "old",
			LabelKeys: []*metricspb.LabelKey{{Key: "k", Description: "stale"}},
		},
		Resource: &resourcepb.Resource{Type: "host"},
		Timeseries: []*metricspb.TimeSeries{{
			LabelValues: []*metricspb.LabelValue{{Value: "stale", HasValue: true}},
			Points: []*metricspb.Point{{Value: &metricspb.Point_SummaryValue{SummaryValue: &metricspb.SummaryValue{}}},
				{Value: &metricspb.Point_Int64Value{Int64Value: 3}}},
		}},
	}
	vd := vtData("v", "d", vtInt, view.Count(), []tag.Key{vtKeyA}, []*view.Row{{Data: &view.CountData{Value: 1}}})
	vtMustConvert(t, newOCViews(), dst, vd, "")
	fresh := new(metricspb.Metric)
	vtMustConvert(t, newOCViews(), fresh, vd, "")
	if !dst.EqualVT(fresh) {
		t.Fatalf("got  %v\nwant %v", dst, fresh)
	}
}

func TestConvertViewErrors(t *testing.T) {
	good := func() *view.Data {
		return vtData("v", "", vtInt, view.Count(), nil, []*view.Row{{Data: &view.CountData{Value: 1}}})
	}
	var nilFloat *stats.Float64Measure
	cases := map[string]*view.Data{
		"nil data":        nil,
		"nil view":        {Start: vtStart, End: vtEnd},
		"nil measure":     vtData("v", "", nil, view.Count(), nil, nil),
		"typed nil":       vtData("v", "", nilFloat, view.Count(), nil, nil),
		"nil aggregation": vtData("v", "", vtInt, nil, nil, nil),
		"agg none":        vtData("v", "", vtInt, &view.Aggregation{Type: view.AggTypeNone}, nil, nil),
		"agg unknown":     vtData("v", "", vtInt, &view.Aggregation{Type: 42}, nil, nil),
		"nil row":         vtData("v", "", vtInt, view.Count(), nil, []*view.Row{nil}),
		"nil row data":    vtData("v", "", vtInt, view.Count(), nil, []*view.Row{{}}),
		"typed nil data":  vtData("v", "", vtInt, view.Count(), nil, []*view.Row{{Data: (*view.CountData)(nil)}}),
		"mismatched data": vtData("v", "", vtInt, view.Count(), nil, []*view.Row{{Data: &view.CountData{}}, {Data: &view.SumData{Value: 1}}}),
		"sum of count":    vtData("v", "", vtInt, view.Sum(), nil, []*view.Row{{Data: &view.CountData{}}}),
		"lv of dist":      vtData("v", "", vtInt, view.LastValue(), nil, []*view.Row{{Data: &view.DistributionData{}}}),
		"dist of lv":      vtData("v", "", vtInt, view.Distribution(1), nil, []*view.Row{{Data: &view.LastValueData{}}}),
	}
	for name, vd := range cases {
		t.Run(name, func(t *testing.T) {
			c := newOCViews()
			dst := new(metricspb.Metric)
			vtMustConvert(t, c, dst, good(), "p")
			before, _ := dst.MarshalVT()
			if err := c.Convert(dst, vd, "p"); err == nil {
				t.Fatal("Convert: no error")
			}
			after, _ := dst.MarshalVT()
			if !bytes.Equal(before, after) {
				t.Fatal("Convert changed dst on error")
			}
		})
	}
	if err := newOCViews().Convert(nil, good(), ""); err == nil {
		t.Error("Convert(nil dst): no error")
	}
}

func TestConvertViewInvalidUTF8(t *testing.T) {
	bad := "a\xffb"
	m := stats.Float64("fastconv_test/utf8", "d\xfe", "u\xfd")
	vd := vtData(bad, "", m, view.Distribution(1), []tag.Key{vtKeyA}, []*view.Row{{
		Tags: []tag.Tag{{Key: vtKeyA, Value: bad}},
		Data: &view.DistributionData{Count: 1, Mean: 1, CountPerBucket: []int64{0, 1},
			ExemplarsPerBucket: []*metricdata.Exemplar{nil, {Value: 1, Timestamp: vtExTS, Attachments: metricdata.Attachments{bad: bad}}}},
	}})
	for _, prefix := range []string{"", "p\xff"} {
		dst := new(metricspb.Metric)
		vtMustConvert(t, newOCViews(), dst, vd, prefix)
		up := vtRoundTrip(t, dst) // protobuf-go rejects invalid UTF-8
		want := "a\uFFFDb"
		if prefix != "" {
			want = "p\uFFFD/" + want
		}
		d := up.GetMetricDescriptor()
		if d.GetName() != want || d.GetDescription() != "d\uFFFD" || d.GetUnit() != "u\uFFFD" {
			t.Errorf("descriptor %v", d)
		}
		ts := up.GetTimeseries()[0]
		if ts.GetLabelValues()[0].GetValue() != "a\uFFFDb" {
			t.Errorf("label value %q", ts.GetLabelValues()[0].GetValue())
		}
		att := ts.GetPoints()[0].GetDistributionValue().GetBuckets()[1].GetExemplar().GetAttachments()
		if att["a\uFFFDb"] != "a\uFFFDb" {
			t.Errorf("attachments %q", att)
		}
	}
}

// TestConvertViewDeterministic checks exemplar attachments (a map) are encoded
// in one order.
func TestConvertViewDeterministic(t *testing.T) {
	vd := vtBigView(4)
	dst := new(metricspb.Metric)
	c := newOCViews()
	vtMustConvert(t, c, dst, vd, "")
	first, _ := dst.MarshalVT()
	for range 20 {
		vtMustConvert(t, c, dst, vd, "")
		again, _ := dst.MarshalVT()
		if !bytes.Equal(first, again) {
			t.Fatal("encoding changed between conversions of the same view")
		}
	}
}

// TestConvertViewBoundsNotAliased checks the bounds are copied: reusing the
// message must never write into the view's aggregation.
func TestConvertViewBoundsNotAliased(t *testing.T) {
	bounds := []float64{1, 2, 3}
	vd := vtData("v", "", vtFloat, view.Distribution(bounds...), nil, []*view.Row{
		{Data: &view.DistributionData{CountPerBucket: []int64{0, 0, 0, 0}}}})
	dst := new(metricspb.Metric)
	vtMustConvert(t, newOCViews(), dst, vd, "")
	ex := dst.Timeseries[0].Points[0].GetDistributionValue().BucketOptions.GetExplicit()
	ex.Bounds[0] = 99
	if vd.View.Aggregation.Buckets[0] != 1 {
		t.Fatal("dst bounds alias the view's buckets")
	}
}

// vtCountView is a count view with n rows and two tags per row.
func vtCountView(n int) *view.Data {
	rows := make([]*view.Row, n)
	for i := range rows {
		rows[i] = &view.Row{
			Tags: []tag.Tag{{Key: vtKeyA, Value: fmt.Sprint("method", i%17)}, {Key: vtKeyB, Value: fmt.Sprint("status", i)}},
			Data: &view.CountData{Value: int64(i)},
		}
	}
	return vtData("count/view", "count", vtInt, view.Count(), []tag.Key{vtKeyA, vtKeyB}, rows)
}

// vtDistView is a distribution view with n rows, 10 bounds, and, when
// exemplars, exemplars with string attachments on some buckets.
func vtDistView(n int, exemplars bool) *view.Data {
	bounds := []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000}
	rows := make([]*view.Row, n)
	for i := range rows {
		d := &view.DistributionData{Count: 100, Min: 0.5, Max: 900, Mean: 42, SumOfSquaredDev: 1234.5,
			CountPerBucket: make([]int64, len(bounds)+1)}
		for j := range d.CountPerBucket {
			d.CountPerBucket[j] = int64(i + j)
		}
		if exemplars {
			d.ExemplarsPerBucket = make([]*metricdata.Exemplar, len(bounds)+1)
			for j := 0; j < len(d.ExemplarsPerBucket); j += 3 {
				d.ExemplarsPerBucket[j] = &metricdata.Exemplar{Value: float64(j), Timestamp: vtExTS,
					Attachments: metricdata.Attachments{"trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "b7ad6b7169203331"}}
			}
		}
		rows[i] = &view.Row{
			Tags: []tag.Tag{{Key: vtKeyA, Value: fmt.Sprint("method", i)}, {Key: vtKeyB, Value: "ok"}},
			Data: d,
		}
	}
	return vtData("dist/view", "latency", vtFloat, view.Distribution(bounds...), []tag.Key{vtKeyA, vtKeyB}, rows)
}

func TestConvertViewAllocs(t *testing.T) {
	cases := []struct {
		name   string
		views  []*view.Data // converted in turn into the same dst
		prefix string
	}{
		{"distribution/rows=10", []*view.Data{vtDistView(10, true)}, ""},
		{"distribution/rows=10/prefix", []*view.Data{vtDistView(10, true)}, "my/prefix"},
		{"count/rows=1000", []*view.Data{vtCountView(1000)}, ""},
		{"count/rows=1000/prefix", []*view.Data{vtCountView(1000)}, "my/prefix"},
		// Alternating shapes swap point values through the free lists.
		{"alternating", []*view.Data{vtDistView(10, true), vtCountView(20), vtDistView(5, false)}, "p"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newOCViews()
			dst := new(metricspb.Metric)
			var buf []byte
			run := func() {
				for _, vd := range tc.views {
					if err := c.Convert(dst, vd, tc.prefix); err != nil {
						panic(err)
					}
					n := dst.SizeVT()
					if cap(buf) < n {
						buf = make([]byte, n)
					}
					buf = buf[:n]
					if _, err := dst.MarshalToSizedBufferVT(buf); err != nil {
						panic(err)
					}
				}
			}
			run() // grow the buffer to the largest view
			if allocs := testing.AllocsPerRun(100, run); allocs != 0 {
				t.Fatalf("%v allocations per conversion, want 0", allocs)
			}
			// The steady state is still correct.
			last := tc.views[len(tc.views)-1]
			fresh := new(metricspb.Metric)
			vtMustConvert(t, newOCViews(), fresh, last, tc.prefix)
			if !dst.EqualVT(fresh) {
				t.Fatal("steady-state dst differs from a fresh conversion")
			}
		})
	}
}
