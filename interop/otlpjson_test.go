//go:build unix

package interop

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The OTLP JSON the Collectors write, one object per line (v0.133.0: the
// contrib file exporter; otelcol-otlp: jsonl, the same marshaler).
// Only what the OpenCensus receiver can produce is declared, and lines are
// decoded with DisallowUnknownFields: a field the Collector writes that is
// not here fails the test. 64-bit integers (timestamps, intValue, asInt,
// counts) are declared as strings, as OTLP JSON writes them: a JSON number
// there fails the decoding too.

type jsonLine struct {
	ResourceSpans   []jsonResourceSpans   `json:"resourceSpans"`
	ResourceMetrics []jsonResourceMetrics `json:"resourceMetrics"`
}

type jsonResource struct {
	Attributes             []jsonKeyValue `json:"attributes"`
	DroppedAttributesCount uint32         `json:"droppedAttributesCount"`
}

type jsonScope struct {
	Name                   string         `json:"name"`
	Version                string         `json:"version"`
	Attributes             []jsonKeyValue `json:"attributes"`
	DroppedAttributesCount uint32         `json:"droppedAttributesCount"`
}

type jsonKeyValue struct {
	Key   string       `json:"key"`
	Value jsonAnyValue `json:"value"`
}

type jsonAnyValue struct {
	StringValue *string  `json:"stringValue"`
	BoolValue   *bool    `json:"boolValue"`
	IntValue    *string  `json:"intValue"`
	DoubleValue *float64 `json:"doubleValue"`
}

// String is the value with its type: "str:x", "bool:true", "int:42",
// "double:1.5"; anything but exactly one value is reported as invalid.
func (v jsonAnyValue) String() string {
	var vals []string
	if v.StringValue != nil {
		vals = append(vals, "str:"+*v.StringValue)
	}
	if v.BoolValue != nil {
		vals = append(vals, "bool:"+strconv.FormatBool(*v.BoolValue))
	}
	if v.IntValue != nil {
		vals = append(vals, "int:"+*v.IntValue)
	}
	if v.DoubleValue != nil {
		vals = append(vals, "double:"+strconv.FormatFloat(*v.DoubleValue, 'g', -1, 64))
	}
	if len(vals) != 1 {
		return fmt.Sprintf("invalid%q", vals)
	}
	return vals[0]
}

type jsonResourceSpans struct {
	Resource   jsonResource     `json:"resource"`
	ScopeSpans []jsonScopeSpans `json:"scopeSpans"`
	SchemaURL  string           `json:"schemaUrl"`
}

type jsonScopeSpans struct {
	Scope     jsonScope  `json:"scope"`
	Spans     []jsonSpan `json:"spans"`
	SchemaURL string     `json:"schemaUrl"`
}

type jsonSpan struct {
	TraceID                string         `json:"traceId"`
	SpanID                 string         `json:"spanId"`
	TraceState             string         `json:"traceState"`
	ParentSpanID           string         `json:"parentSpanId"`
	Flags                  uint32         `json:"flags"`
	Name                   string         `json:"name"`
	Kind                   int            `json:"kind"`
	StartTimeUnixNano      string         `json:"startTimeUnixNano"`
	EndTimeUnixNano        string         `json:"endTimeUnixNano"`
	Attributes             []jsonKeyValue `json:"attributes"`
	DroppedAttributesCount uint32         `json:"droppedAttributesCount"`
	Events                 []jsonEvent    `json:"events"`
	DroppedEventsCount     uint32         `json:"droppedEventsCount"`
	Links                  []jsonLink     `json:"links"`
	DroppedLinksCount      uint32         `json:"droppedLinksCount"`
	Status                 *jsonStatus    `json:"status"`
}

type jsonEvent struct {
	TimeUnixNano           string         `json:"timeUnixNano"`
	Name                   string         `json:"name"`
	Attributes             []jsonKeyValue `json:"attributes"`
	DroppedAttributesCount uint32         `json:"droppedAttributesCount"`
}

type jsonLink struct {
	TraceID                string         `json:"traceId"`
	SpanID                 string         `json:"spanId"`
	TraceState             string         `json:"traceState"`
	Attributes             []jsonKeyValue `json:"attributes"`
	DroppedAttributesCount uint32         `json:"droppedAttributesCount"`
	Flags                  uint32         `json:"flags"`
}

type jsonStatus struct {
	Message string `json:"message"`
	Code    int    `json:"code"`
}

type jsonResourceMetrics struct {
	Resource     jsonResource       `json:"resource"`
	ScopeMetrics []jsonScopeMetrics `json:"scopeMetrics"`
	SchemaURL    string             `json:"schemaUrl"`
}

type jsonScopeMetrics struct {
	Scope     jsonScope    `json:"scope"`
	Metrics   []jsonMetric `json:"metrics"`
	SchemaURL string       `json:"schemaUrl"`
}

type jsonMetric struct {
	Name        string         `json:"name"`
	Description string         `json:"description"`
	Unit        string         `json:"unit"`
	Gauge       *jsonGauge     `json:"gauge"`
	Sum         *jsonSum       `json:"sum"`
	Histogram   *jsonHistogram `json:"histogram"`
}

type jsonGauge struct {
	DataPoints []jsonNumberPoint `json:"dataPoints"`
}

type jsonSum struct {
	DataPoints             []jsonNumberPoint `json:"dataPoints"`
	AggregationTemporality int               `json:"aggregationTemporality"`
	IsMonotonic            bool              `json:"isMonotonic"`
}

type jsonNumberPoint struct {
	Attributes        []jsonKeyValue `json:"attributes"`
	StartTimeUnixNano string         `json:"startTimeUnixNano"`
	TimeUnixNano      string         `json:"timeUnixNano"`
	AsInt             *string        `json:"asInt"`
	AsDouble          *float64       `json:"asDouble"`
}

type jsonHistogram struct {
	DataPoints             []jsonHistogramPoint `json:"dataPoints"`
	AggregationTemporality int                  `json:"aggregationTemporality"`
}

type jsonHistogramPoint struct {
	Attributes        []jsonKeyValue `json:"attributes"`
	StartTimeUnixNano string         `json:"startTimeUnixNano"`
	TimeUnixNano      string         `json:"timeUnixNano"`
	Count             string         `json:"count"`
	Sum               *float64       `json:"sum"`
	BucketCounts      []string       `json:"bucketCounts"`
	ExplicitBounds    []float64      `json:"explicitBounds"`
	Exemplars         []jsonExemplar `json:"exemplars"`
	Min               *float64       `json:"min"`
	Max               *float64       `json:"max"`
}

type jsonExemplar struct {
	FilteredAttributes []jsonKeyValue `json:"filteredAttributes"`
	TimeUnixNano       string         `json:"timeUnixNano"`
	AsDouble           *float64       `json:"asDouble"`
	AsInt              *string        `json:"asInt"`
	SpanID             string         `json:"spanId"`
	TraceID            string         `json:"traceId"`
}

// output is what the Collector has written so far.
type output struct {
	lines    int
	nodeOnly []jsonResource // resourceSpans without scopeSpans: the Node-only first message of a trace stream
	spans    []spanAt
	metrics  []metricAt
	// emptyMetricLines counts resourceMetrics without scopeMetrics (expected: none).
	emptyMetricLines int
}

type spanAt struct {
	jsonSpan
	resource jsonResource
	scope    jsonScope
}

type metricAt struct {
	jsonMetric
	resource jsonResource
	scope    jsonScope
}

// spansNamed returns every span called name (at-least-once delivery may
// repeat one).
func (o *output) spansNamed(name string) []spanAt {
	var out []spanAt
	for _, s := range o.spans {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

func (o *output) metricsNamed(name string) []metricAt {
	var out []metricAt
	for _, m := range o.metrics {
		if m.Name == name {
			out = append(out, m)
		}
	}
	return out
}

// readOutput decodes the complete lines of path (a missing file is empty).
func readOutput(t *testing.T, path string) *output {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	o := new(output)
	// Only whole lines: the exporter may be halfway through the last one.
	if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
		data = data[:i+1]
	} else {
		data = nil
	}
	for n, line := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		o.lines++
		var l jsonLine
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("%s line %d: %v\n%s", path, n+1, err, line)
		}
		if len(l.ResourceSpans) == 0 && len(l.ResourceMetrics) == 0 {
			t.Fatalf("%s line %d: neither resourceSpans nor resourceMetrics:\n%s", path, n+1, line)
		}
		for _, rs := range l.ResourceSpans {
			if rs.SchemaURL != "" {
				t.Errorf("resourceSpans schemaUrl %q, want none", rs.SchemaURL)
			}
			if len(rs.ScopeSpans) == 0 {
				o.nodeOnly = append(o.nodeOnly, rs.Resource)
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					o.spans = append(o.spans, spanAt{s, rs.Resource, ss.Scope})
				}
			}
		}
		for _, rm := range l.ResourceMetrics {
			if len(rm.ScopeMetrics) == 0 {
				o.emptyMetricLines++
			}
			for _, sm := range rm.ScopeMetrics {
				for _, m := range sm.Metrics {
					o.metrics = append(o.metrics, metricAt{m, rm.Resource, sm.Scope})
				}
			}
		}
	}
	return o
}

// waitOutput polls path until done accepts what it holds, for at most
// timeout. On timeout the test fails with what the file holds and what diag
// (the exporter's Stats, say) reports.
func waitOutput(t *testing.T, path string, timeout time.Duration, done func(*output) bool, diag ...func() string) *output {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		o := readOutput(t, path)
		if done(o) {
			return o
		}
		if time.Now().After(deadline) {
			var names []string
			for _, s := range o.spans {
				names = append(names, "span "+s.Name)
			}
			for _, m := range o.metrics {
				names = append(names, "metric "+m.Name)
			}
			for _, d := range diag {
				t.Log(d())
			}
			t.Fatalf("after %v, %s holds %d lines (%d Node-only): %s", timeout, path, o.lines, len(o.nodeOnly), strings.Join(names, ", "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// hasAll reports whether o holds at least one span with each name and one
// metric with each metric name.
func (o *output) hasAll(spans, metrics []string) bool {
	for _, n := range spans {
		if len(o.spansNamed(n)) == 0 {
			return false
		}
	}
	for _, n := range metrics {
		if len(o.metricsNamed(n)) == 0 {
			return false
		}
	}
	return true
}

// attrs is a set of typed attribute values by key (see jsonAnyValue.String).
type attrs map[string]string

func str(s string) string      { return "str:" + s }
func boolean(b bool) string    { return "bool:" + strconv.FormatBool(b) }
func integer(i int64) string   { return "int:" + strconv.FormatInt(i, 10) }
func double(f float64) string  { return "double:" + strconv.FormatFloat(f, 'g', -1, 64) }
func nanos(t time.Time) string { return strconv.FormatInt(t.UnixNano(), 10) }

// attrSet turns key-value pairs into a set, reporting duplicate keys: the
// order the Collector writes them in is not fixed.
func attrSet(t *testing.T, what string, kvs []jsonKeyValue) attrs {
	t.Helper()
	m := make(attrs, len(kvs))
	for _, kv := range kvs {
		if _, dup := m[kv.Key]; dup {
			t.Errorf("%s: attribute %q twice", what, kv.Key)
		}
		m[kv.Key] = kv.Value.String()
	}
	return m
}

// checkAttrs compares a set of attributes with want, key by key.
func checkAttrs(t *testing.T, what string, kvs []jsonKeyValue, want attrs) {
	t.Helper()
	got := attrSet(t, what, kvs)
	var keys []string
	for k := range got {
		keys = append(keys, k)
	}
	for k := range want {
		if _, ok := got[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		g, inGot := got[k]
		w, inWant := want[k]
		switch {
		case !inWant:
			t.Errorf("%s: unexpected attribute %s = %s", what, k, g)
		case !inGot:
			t.Errorf("%s: missing attribute %s = %s", what, k, w)
		case g != w:
			t.Errorf("%s: attribute %s = %s, want %s", what, k, g, w)
		}
	}
}

func check[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// checkLen reports a length mismatch and whether the lengths are equal.
func checkLen(t *testing.T, what string, got, want int) bool {
	t.Helper()
	if got != want {
		t.Errorf("%s: %d, want %d", what, got, want)
		return false
	}
	return true
}
