//go:build unix

// Package interop proves that what github.com/zerocensus/ocagent sends is
// understood by a real OpenCensus receiver: the OpenTelemetry Collector's
// opencensusreceiver (v0.133.0, the last release that has it), built from
// cmd/otelcol-oc and run as a separate process on 127.0.0.1. Every test
// reads back what the Collector wrote with its file exporter (OTLP JSON) and
// checks it field by field.
package interop

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"maps"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	agenttracepb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/trace/v1"
	opencensus "go.opencensus.io"
	"go.opencensus.io/metric/metricdata"
	"go.opencensus.io/resource"
	"go.opencensus.io/stats"
	"go.opencensus.io/stats/view"
	"go.opencensus.io/tag"
	"go.opencensus.io/trace"
	"go.opencensus.io/trace/tracestate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/encoding/gzip" // registers the "gzip" compressor for UseCompressor
	"google.golang.org/grpc/status"

	ocagent "github.com/zerocensus/ocagent"
)

// outputTimeout bounds every wait for the Collector's output.
const outputTimeout = 60 * time.Second

// OTLP span kinds and status codes as the JSON writes them.
const (
	kindUnspecified = 0
	kindServer      = 2
	kindClient      = 3
	statusError     = 2
)

var (
	// Upper-case-looking bytes, so that the lower-case hex is a real check.
	traceID     = trace.TraceID{0xAB, 0xCD, 0xEF, 0x01, 0x23, 0x45, 0x67, 0x89, 0xFE, 0xDC, 0xBA, 0x98, 0x76, 0x54, 0x32, 0x10}
	linkTraceID = trace.TraceID{0xF0, 0xE1, 0xD2, 0xC3, 0xB4, 0xA5, 0x96, 0x87, 0x78, 0x69, 0x5A, 0x4B, 0x3C, 0x2D, 0x1E, 0x0F}
	rootID      = trace.SpanID{0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6, 0x07, 0x18}
	clientID    = trace.SpanID{0xC1, 0x1E, 0x17, 0xC1, 0x1E, 0x17, 0xC1, 0x1E}
	serverID    = trace.SpanID{0x5E, 0x7F, 0x5E, 0x7F, 0x5E, 0x7F, 0x5E, 0x7F}
	okMsgID     = trace.SpanID{0x0C, 0x0C, 0x0C, 0x0C, 0x0C, 0x0C, 0x0C, 0x0C}
	errID       = trace.SpanID{0xEE, 0xEE, 0xEE, 0xEE, 0xEE, 0xEE, 0xEE, 0x01}
	linkSpanA   = trace.SpanID{0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0x0A}
	linkSpanB   = trace.SpanID{0xBB, 0xBB, 0xBB, 0xBB, 0xBB, 0xBB, 0xBB, 0x0B}

	// Nanoseconds that a float64 of Unix seconds could not carry.
	t0 = time.Date(2026, time.November, 21, 12, 0, 0, 123456789, time.UTC)
)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func hexID(b []byte) string { return hex.EncodeToString(b) } // lower case

// testSpans covers every SpanData field the exporter converts.
func testSpans(t *testing.T) []*trace.SpanData {
	ts, err := tracestate.New(nil,
		tracestate.Entry{Key: "zerocensus", Value: "v1"},
		tracestate.Entry{Key: "vendor@tenant", Value: "x-y"})
	if err != nil {
		t.Fatal(err)
	}
	sampled := trace.TraceOptions(1)
	return []*trace.SpanData{
		{ // A root: no parent, no kind, nothing optional.
			SpanContext:    trace.SpanContext{TraceID: traceID, SpanID: rootID, TraceOptions: sampled},
			Name:           "interop.root",
			StartTime:      at(0),
			EndTime:        at(1000),
			Status:         trace.Status{Code: trace.StatusCodeOK},
			ChildSpanCount: 2,
		},
		{ // A client span with every optional field.
			SpanContext:  trace.SpanContext{TraceID: traceID, SpanID: clientID, TraceOptions: sampled, Tracestate: ts},
			ParentSpanID: rootID,
			SpanKind:     trace.SpanKindClient,
			Name:         "interop.client",
			StartTime:    at(10),
			EndTime:      at(900),
			Attributes: map[string]any{
				"str":     "value",
				"empty":   "",
				"bool":    true,
				"int64":   int64(-42),
				"int":     7,
				"float64": 3.25,
				"bad":     "a\xffb", // invalid UTF-8, repaired by the exporter
			},
			DroppedAttributeCount: 3,
			Annotations: []trace.Annotation{
				{Time: at(20), Message: "cache miss", Attributes: map[string]any{"key": "k1", "hit": false, "tries": int64(2), "ratio": 0.5}},
				{Time: at(30), Message: ""},
			},
			MessageEvents: []trace.MessageEvent{
				{Time: at(40), EventType: trace.MessageEventTypeSent, MessageID: 1, UncompressedByteSize: 100, CompressedByteSize: 60},
				{Time: at(50), EventType: trace.MessageEventTypeRecv, MessageID: 2, UncompressedByteSize: 200},
			},
			Links: []trace.Link{
				{TraceID: linkTraceID, SpanID: linkSpanA, Type: trace.LinkTypeChild,
					Attributes: map[string]any{"link.str": "x", "link.int": int64(5), "link.float": 1.5, "link.bool": true}},
				{TraceID: linkTraceID, SpanID: linkSpanB, Type: trace.LinkTypeParent},
			},
			DroppedAnnotationCount:   1,
			DroppedMessageEventCount: 2,
			DroppedLinkCount:         4,
			Status:                   trace.Status{Code: trace.StatusCodeOK},
			HasRemoteParent:          false,
			ChildSpanCount:           0,
		},
		{ // A server span with a remote parent, an error and more annotations than the SpanConfig cap.
			SpanContext:  trace.SpanContext{TraceID: traceID, SpanID: serverID, TraceOptions: sampled},
			ParentSpanID: clientID,
			SpanKind:     trace.SpanKindServer,
			Name:         "interop.server",
			StartTime:    at(100),
			EndTime:      at(800),
			Annotations: []trace.Annotation{
				{Time: at(110), Message: "a1"},
				{Time: at(120), Message: "a2"},
				{Time: at(130), Message: "a3"}, // over the cap of 2
			},
			Status:          trace.Status{Code: trace.StatusCodeNotFound, Message: "no such thing"},
			HasRemoteParent: true,
			ChildSpanCount:  1,
		},
		{ // OK with a message.
			SpanContext:  trace.SpanContext{TraceID: traceID, SpanID: okMsgID},
			ParentSpanID: rootID,
			Name:         "interop.ok-with-message",
			StartTime:    at(200),
			EndTime:      at(300),
			Status:       trace.Status{Code: trace.StatusCodeOK, Message: "fine"},
		},
		{ // An error code without a message.
			SpanContext:  trace.SpanContext{TraceID: traceID, SpanID: errID},
			ParentSpanID: rootID,
			Name:         "interop.error-no-message",
			StartTime:    at(300),
			EndTime:      at(400),
			Status:       trace.Status{Code: trace.StatusCodeUnknown},
		},
	}
}

var (
	keyMethod = tag.MustNewKey("method")
	keyZone   = tag.MustNewKey("zone")

	mRequests    = stats.Int64("interop/requests", "requests served", stats.UnitDimensionless)
	mBytes       = stats.Int64("interop/bytes", "bytes sent", stats.UnitBytes)
	mLatency     = stats.Float64("interop/latency", "request latency", stats.UnitMilliseconds)
	mQueue       = stats.Int64("interop/queue", "queue depth", stats.UnitDimensionless)
	mTemperature = stats.Float64("interop/temperature", "temperature", "Cel")

	viewStart = t0.Add(-time.Minute)
	viewEnd   = t0
)

// exemplarSpanContext is the span context attached to an exemplar, as
// OpenCensus's stats recording attaches it.
var exemplarSpanContext = trace.SpanContext{TraceID: traceID, SpanID: serverID, TraceOptions: 1}

// testViews has one view of every aggregation, built directly.
func testViews() []*view.Data {
	data := func(v *view.View, rows ...*view.Row) *view.Data {
		return &view.Data{View: v, Start: viewStart, End: viewEnd, Rows: rows}
	}
	return []*view.Data{
		data(&view.View{Name: "interop/requests_count", Description: "requests by zone and method",
			Measure: mRequests, Aggregation: view.Count(), TagKeys: []tag.Key{keyZone, keyMethod}}, // keys not sorted
			&view.Row{Tags: []tag.Tag{{Key: keyMethod, Value: "GET"}, {Key: keyZone, Value: "eu"}}, Data: &view.CountData{Value: 7}},
			&view.Row{Tags: []tag.Tag{{Key: keyMethod, Value: "POST"}}, Data: &view.CountData{Value: 3}}, // no zone
		),
		data(&view.View{Name: "interop/bytes_sum", Measure: mBytes, Aggregation: view.Sum()},
			&view.Row{Data: &view.SumData{Value: 4096}}),
		data(&view.View{Name: "interop/latency_sum", Measure: mLatency, Aggregation: view.Sum()},
			&view.Row{Data: &view.SumData{Value: 12.5}}),
		data(&view.View{Name: "interop/queue_last", Measure: mQueue, Aggregation: view.LastValue(), TagKeys: []tag.Key{keyZone}},
			&view.Row{Tags: []tag.Tag{{Key: keyZone, Value: "us"}}, Data: &view.LastValueData{Value: 17}}),
		data(&view.View{Name: "interop/temperature_last", Measure: mTemperature, Aggregation: view.LastValue()},
			&view.Row{Data: &view.LastValueData{Value: -3.75}}),
		data(&view.View{Name: "interop/latency_dist", Measure: mLatency, Aggregation: view.Distribution(1, 10, 100)},
			&view.Row{Data: &view.DistributionData{
				Count: 4, Min: 0.5, Max: 150, Mean: 40, SumOfSquaredDev: 12345.5,
				CountPerBucket: []int64{1, 2, 0, 1},
				ExemplarsPerBucket: []*metricdata.Exemplar{
					{Value: 0.5, Timestamp: at(5), Attachments: metricdata.Attachments{"user": "alice", "shard": "7"}},
					nil,
					nil,
					{Value: 150, Timestamp: at(6), Attachments: metricdata.Attachments{metricdata.AttachmentKeySpanContext: exemplarSpanContext}},
				},
			}}),
	}
}

var (
	allSpanNames   = []string{"interop.root", "interop.client", "interop.server", "interop.ok-with-message", "interop.error-no-message"}
	allMetricNames = []string{"interop/requests_count", "interop/bytes_sum", "interop/latency_sum", "interop/queue_last", "interop/temperature_last", "interop/latency_dist"}
)

// TestCollectorSpansAndViews sends every span field and every aggregation
// the exporter converts through a plaintext connection and checks what the
// Collector wrote.
func TestCollectorSpansAndViews(t *testing.T) {
	addr := freeAddr(t)
	out := filepath.Join(t.TempDir(), "out.jsonl")
	startCollector(t, addr, out, nil)
	t.Logf("collector built in %v (once per run)", buildTook.Round(time.Millisecond))

	const service = "zerocensus-interop"
	t.Setenv("HOSTNAME", "interop-host") // read by NodeWithStartTime
	exp, err := ocagent.NewExporter(
		ocagent.WithInsecure(),
		ocagent.WithAddress(addr),
		ocagent.WithServiceName(service),
		ocagent.WithResourceDetector(func(context.Context) (*resource.Resource, error) {
			return &resource.Resource{Type: "interop.test", Labels: map[string]string{"team": "zerocensus", "cloud.zone": "eu-west-1a"}}, nil
		}),
		ocagent.WithSpanConfig(ocagent.SpanConfig{AnnotationEventsPerSpan: 2}),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer exp.Stop()

	spans := testSpans(t)
	for _, sd := range spans {
		exp.ExportSpan(sd)
	}
	for _, vd := range testViews() {
		exp.ExportView(vd)
	}
	exp.Flush()

	o := waitOutput(t, out, outputTimeout, func(o *output) bool { return o.hasAll(allSpanNames, allMetricNames) }, statsOf(exp))
	if os.Getenv("INTEROP_DUMP") != "" {
		raw, _ := os.ReadFile(out)
		t.Logf("the collector wrote:\n%s", raw)
	}
	if err := exp.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	st := exp.Stats()
	check(t, "Stats.SpansExported", st.SpansExported, uint64(len(spans)))
	check(t, "Stats.ViewsExported", st.ViewsExported, uint64(len(allMetricNames)))
	check(t, "Stats.SendFailures", st.SendFailures, 0)
	check(t, "Stats.ViewsDroppedInvalid", st.ViewsDroppedInvalid, 0)

	// The resource: the Node and the detector's resource, on every line.
	wantResource := attrs{
		"service.name":               str(service),
		"host.name":                  str("interop-host"),
		"process.pid":                integer(int64(os.Getpid())),
		"telemetry.sdk.language":     str("go"),
		"telemetry.sdk.version":      str(opencensus.Version()),
		"opencensus.exporterversion": str(ocagent.Version),
		"opencensus.resourcetype":    str("interop.test"),
		"team":                       str("zerocensus"),
		"cloud.availability_zone":    str("eu-west-1a"),
	}
	checkResource := func(what string, r jsonResource) {
		t.Helper()
		got := attrSet(t, what, r.Attributes)
		// The Node's start time: the exporter package's initialisation time.
		st, ok := got["opencensus.starttime"]
		if !ok {
			t.Errorf("%s: no opencensus.starttime", what)
		} else if ts, err := time.Parse(time.RFC3339Nano, st[len("str:"):]); err != nil || ts.After(time.Now()) || time.Since(ts) > time.Hour {
			t.Errorf("%s: opencensus.starttime = %s, want this process's start (RFC 3339): %v", what, st, err)
		}
		var kvs []jsonKeyValue
		for _, kv := range r.Attributes {
			if kv.Key != "opencensus.starttime" {
				kvs = append(kvs, kv)
			}
		}
		checkAttrs(t, what, kvs, wantResource)
		check(t, what+" droppedAttributesCount", r.DroppedAttributesCount, 0)
	}

	// The Node-only first message of the trace stream becomes a line with a
	// resource and no spans; the metrics stream's one becomes nothing.
	if len(o.nodeOnly) != 1 {
		t.Errorf("%d Node-only resourceSpans lines, want 1 (the trace stream's first message)", len(o.nodeOnly))
	}
	for _, r := range o.nodeOnly {
		checkResource("Node-only resourceSpans", r)
	}
	check(t, "resourceMetrics without scopeMetrics", o.emptyMetricLines, 0)

	byName := make(map[string]spanAt)
	for _, s := range o.spans {
		if _, dup := byName[s.Name]; dup {
			t.Errorf("span %q written twice", s.Name)
		}
		byName[s.Name] = s
		checkResource("span "+s.Name+" resource", s.resource)
		check(t, "span "+s.Name+" scope", fmt.Sprint(s.scope), fmt.Sprint(jsonScope{}))
	}
	check(t, "spans written", len(o.spans), len(spans))

	for _, sd := range spans {
		checkSpan(t, byName[sd.Name], sd)
	}

	metrics := make(map[string]metricAt)
	for _, m := range o.metrics {
		if _, dup := metrics[m.Name]; dup {
			t.Errorf("metric %q written twice", m.Name)
		}
		metrics[m.Name] = m
		checkResource("metric "+m.Name+" resource", m.resource)
		check(t, "metric "+m.Name+" scope", fmt.Sprint(m.scope), fmt.Sprint(jsonScope{}))
	}
	check(t, "metrics written", len(o.metrics), len(allMetricNames))
	checkMetrics(t, metrics, "")
}

// statsOf reports the exporter's counters, for a failed wait.
func statsOf(exp *ocagent.Exporter) func() string {
	return func() string { return fmt.Sprintf("exporter stats: %+v", exp.Stats()) }
}

// checkSpan checks one span the Collector wrote against the SpanData sent.
func checkSpan(t *testing.T, got spanAt, sd *trace.SpanData) {
	t.Helper()
	name := "span " + sd.Name
	check(t, name+" traceId", got.TraceID, hexID(sd.TraceID[:]))
	check(t, name+" spanId", got.SpanID, hexID(sd.SpanID[:]))
	check(t, name+" flags", got.Flags, 0) // OpenCensus's TraceOptions are not in the protocol's Span
	check(t, name+" startTimeUnixNano", got.StartTimeUnixNano, nanos(sd.StartTime))
	check(t, name+" endTimeUnixNano", got.EndTimeUnixNano, nanos(sd.EndTime))

	switch sd.Name {
	case "interop.root":
		check(t, name+" parentSpanId", got.ParentSpanID, "") // root: no parent_span_id sent
		check(t, name+" kind", got.Kind, kindUnspecified)
		check(t, name+" traceState", got.TraceState, "")
		// No same_process_as_parent_span for a root; child_span_count (2) is
		// sent but the Collector has no place for it.
		checkAttrs(t, name, got.Attributes, attrs{})
		check(t, name+" droppedAttributesCount", got.DroppedAttributesCount, 0)
		check(t, name+" events", len(got.Events), 0)
		check(t, name+" droppedEventsCount", got.DroppedEventsCount, 0)
		check(t, name+" links", len(got.Links), 0)
		check(t, name+" droppedLinksCount", got.DroppedLinksCount, 0)
		checkStatus(t, name, got.Status, 0, "")

	case "interop.client":
		check(t, name+" parentSpanId", got.ParentSpanID, hexID(rootID[:]))
		check(t, name+" kind", got.Kind, kindClient)
		check(t, name+" traceState", got.TraceState, "zerocensus=v1,vendor@tenant=x-y")
		checkAttrs(t, name, got.Attributes, attrs{
			"str":                                    str("value"),
			"empty":                                  str(""),
			"bool":                                   boolean(true),
			"int64":                                  integer(-42),
			"int":                                    integer(7),
			"float64":                                double(3.25),
			"bad":                                    str("a\uFFFDb"),
			"opencensus.same_process_as_parent_span": boolean(true),
		})
		check(t, name+" droppedAttributesCount", got.DroppedAttributesCount, 3)
		// Annotations first, then message events, each in the SpanData's order.
		if checkLen(t, name+" events", len(got.Events), 4) {
			ev := got.Events
			checkEvent(t, name+" annotation 0", ev[0], at(20), "cache miss", attrs{"key": str("k1"), "hit": boolean(false), "tries": integer(2), "ratio": double(0.5)})
			checkEvent(t, name+" annotation 1", ev[1], at(30), "", attrs{})
			checkEvent(t, name+" message event 0", ev[2], at(40), "message", attrs{
				"message.type": str("SENT"), "messaging.message_id": integer(1),
				"messaging.message_payload_size_bytes": integer(100), "messaging.message_payload_compressed_size_bytes": integer(60),
			})
			checkEvent(t, name+" message event 1", ev[3], at(50), "message", attrs{
				"message.type": str("RECEIVED"), "messaging.message_id": integer(2),
				"messaging.message_payload_size_bytes": integer(200), "messaging.message_payload_compressed_size_bytes": integer(0),
			})
		}
		// Dropped annotations (1) and message events (2) add up.
		check(t, name+" droppedEventsCount", got.DroppedEventsCount, 3)
		if checkLen(t, name+" links", len(got.Links), 2) {
			l := got.Links
			// The link type (child, parent) has no place in OTLP: not written.
			checkLink(t, name+" link 0", l[0], linkTraceID, linkSpanA, attrs{"link.str": str("x"), "link.int": integer(5), "link.float": double(1.5), "link.bool": boolean(true)})
			checkLink(t, name+" link 1", l[1], linkTraceID, linkSpanB, attrs{})
		}
		check(t, name+" droppedLinksCount", got.DroppedLinksCount, 4)
		checkStatus(t, name, got.Status, 0, "")

	case "interop.server":
		check(t, name+" parentSpanId", got.ParentSpanID, hexID(clientID[:]))
		check(t, name+" kind", got.Kind, kindServer)
		checkAttrs(t, name, got.Attributes, attrs{"opencensus.same_process_as_parent_span": boolean(false)})
		if checkLen(t, name+" events", len(got.Events), 2) {
			checkEvent(t, name+" annotation 0", got.Events[0], at(110), "a1", attrs{})
			checkEvent(t, name+" annotation 1", got.Events[1], at(120), "a2", attrs{})
		}
		check(t, name+" droppedEventsCount", got.DroppedEventsCount, 1) // a3, over the SpanConfig cap
		checkStatus(t, name, got.Status, statusError, "no such thing")

	case "interop.ok-with-message":
		check(t, name+" parentSpanId", got.ParentSpanID, hexID(rootID[:]))
		check(t, name+" kind", got.Kind, kindUnspecified)
		checkAttrs(t, name, got.Attributes, attrs{"opencensus.same_process_as_parent_span": boolean(true)})
		checkStatus(t, name, got.Status, 0, "fine")

	case "interop.error-no-message":
		checkAttrs(t, name, got.Attributes, attrs{"opencensus.same_process_as_parent_span": boolean(true)})
		checkStatus(t, name, got.Status, statusError, "")

	default:
		t.Fatalf("no expectations for span %q", sd.Name)
	}
}

// checkStatus: the status is always written, {} when unset.
func checkStatus(t *testing.T, what string, got *jsonStatus, code int, msg string) {
	t.Helper()
	if got == nil {
		t.Errorf("%s: no status", what)
		return
	}
	check(t, what+" status.code", got.Code, code)
	check(t, what+" status.message", got.Message, msg)
}

func checkEvent(t *testing.T, what string, got jsonEvent, at time.Time, name string, want attrs) {
	t.Helper()
	check(t, what+" timeUnixNano", got.TimeUnixNano, nanos(at))
	check(t, what+" name", got.Name, name)
	checkAttrs(t, what, got.Attributes, want)
	check(t, what+" droppedAttributesCount", got.DroppedAttributesCount, 0)
}

func checkLink(t *testing.T, what string, got jsonLink, tid trace.TraceID, sid trace.SpanID, want attrs) {
	t.Helper()
	check(t, what+" traceId", got.TraceID, hexID(tid[:]))
	check(t, what+" spanId", got.SpanID, hexID(sid[:]))
	check(t, what+" traceState", got.TraceState, "")
	check(t, what+" flags", got.Flags, 0)
	checkAttrs(t, what, got.Attributes, want)
	check(t, what+" droppedAttributesCount", got.DroppedAttributesCount, 0)
}

// checkMetrics checks the six views of testViews; prefix is the
// WithMetricNamePrefix in use ("" for none). extra attributes are expected on
// every data point.
func checkMetrics(t *testing.T, metrics map[string]metricAt, prefix string, extra ...string) {
	t.Helper()
	withExtra := func(a attrs) attrs {
		for i := 0; i+1 < len(extra); i += 2 {
			a[extra[i]] = extra[i+1]
		}
		return a
	}
	const cumulative = 2
	name := func(n string) string {
		if prefix == "" {
			return n
		}
		return prefix + "/" + n
	}
	start, end := nanos(viewStart), nanos(viewEnd)
	checkNumber := func(what string, p jsonNumberPoint, want attrs, asInt *string, asDouble *float64) {
		t.Helper()
		checkAttrs(t, what, p.Attributes, withExtra(want))
		check(t, what+" startTimeUnixNano", p.StartTimeUnixNano, start)
		check(t, what+" timeUnixNano", p.TimeUnixNano, end)
		if asInt != nil {
			if p.AsInt == nil || p.AsDouble != nil {
				t.Errorf("%s: asInt %v asDouble %v, want asInt %q", what, p.AsInt, p.AsDouble, *asInt)
			} else {
				check(t, what+" asInt", *p.AsInt, *asInt)
			}
		}
		if asDouble != nil {
			if p.AsDouble == nil || p.AsInt != nil {
				t.Errorf("%s: asInt %v asDouble %v, want asDouble %v", what, p.AsInt, p.AsDouble, *asDouble)
			} else {
				check(t, what+" asDouble", *p.AsDouble, *asDouble)
			}
		}
	}
	ptr := func(s string) *string { return &s }
	fptr := func(f float64) *float64 { return &f }
	get := func(n, desc, unit string) (jsonMetric, bool) {
		t.Helper()
		m, ok := metrics[name(n)]
		if !ok {
			t.Errorf("metric %s not written", name(n))
			return jsonMetric{}, false
		}
		check(t, name(n)+" description", m.Description, desc)
		check(t, name(n)+" unit", m.Unit, unit)
		kinds := 0
		for _, k := range []bool{m.Sum != nil, m.Gauge != nil, m.Histogram != nil} {
			if k {
				kinds++
			}
		}
		check(t, name(n)+" data kinds", kinds, 1)
		return m.jsonMetric, true
	}
	sum := func(n string, m jsonMetric) []jsonNumberPoint {
		t.Helper()
		if m.Sum == nil {
			t.Errorf("%s: not a sum", name(n))
			return nil
		}
		check(t, name(n)+" aggregationTemporality", m.Sum.AggregationTemporality, cumulative)
		check(t, name(n)+" isMonotonic", m.Sum.IsMonotonic, true)
		return m.Sum.DataPoints
	}
	gauge := func(n string, m jsonMetric) []jsonNumberPoint {
		t.Helper()
		if m.Gauge == nil {
			t.Errorf("%s: not a gauge", name(n))
			return nil
		}
		return m.Gauge.DataPoints
	}

	// Count: a cumulative monotonic int sum; label values placed by key even
	// though TagKeys are not sorted and one row lacks a tag.
	if m, ok := get("interop/requests_count", "requests by zone and method", "1"); ok {
		if ps := sum("interop/requests_count", m); checkLen(t, "requests_count points", len(ps), 2) {
			checkNumber("requests_count row 0", ps[0], attrs{"zone": str("eu"), "method": str("GET")}, ptr("7"), nil)
			checkNumber("requests_count row 1", ps[1], attrs{"method": str("POST")}, ptr("3"), nil)
		}
	}
	if m, ok := get("interop/bytes_sum", "bytes sent", "By"); ok {
		if ps := sum("interop/bytes_sum", m); checkLen(t, "bytes_sum points", len(ps), 1) {
			checkNumber("bytes_sum", ps[0], attrs{}, ptr("4096"), nil)
		}
	}
	if m, ok := get("interop/latency_sum", "request latency", "ms"); ok {
		if ps := sum("interop/latency_sum", m); checkLen(t, "latency_sum points", len(ps), 1) {
			checkNumber("latency_sum", ps[0], attrs{}, nil, fptr(12.5))
		}
	}
	if m, ok := get("interop/queue_last", "queue depth", "1"); ok {
		if ps := gauge("interop/queue_last", m); checkLen(t, "queue_last points", len(ps), 1) {
			checkNumber("queue_last", ps[0], attrs{"zone": str("us")}, ptr("17"), nil)
		}
	}
	if m, ok := get("interop/temperature_last", "temperature", "Cel"); ok {
		if ps := gauge("interop/temperature_last", m); checkLen(t, "temperature_last points", len(ps), 1) {
			checkNumber("temperature_last", ps[0], attrs{}, nil, fptr(-3.75))
		}
	}
	if m, ok := get("interop/latency_dist", "request latency", "ms"); ok {
		h := m.Histogram
		if h == nil {
			t.Errorf("latency_dist: not a histogram")
			return
		}
		check(t, "latency_dist aggregationTemporality", h.AggregationTemporality, cumulative)
		if !checkLen(t, "latency_dist points", len(h.DataPoints), 1) {
			return
		}
		p := h.DataPoints[0]
		checkAttrs(t, "latency_dist", p.Attributes, withExtra(attrs{}))
		check(t, "latency_dist startTimeUnixNano", p.StartTimeUnixNano, start)
		check(t, "latency_dist timeUnixNano", p.TimeUnixNano, end)
		check(t, "latency_dist count", p.Count, "4")
		if p.Sum == nil {
			t.Errorf("latency_dist: no sum")
		} else {
			check(t, "latency_dist sum", *p.Sum, 160.0) // Count * Mean
		}
		check(t, "latency_dist bucketCounts", fmt.Sprint(p.BucketCounts), fmt.Sprint([]string{"1", "2", "0", "1"}))
		check(t, "latency_dist explicitBounds", fmt.Sprint(p.ExplicitBounds), fmt.Sprint([]float64{1, 10, 100}))
		// One exemplar per bucket that has one, in bucket order; the
		// attachments become filtered attributes (strings), the SpanContext
		// one formatted with fmt.Sprint, not turned into traceId/spanId.
		if checkLen(t, "latency_dist exemplars", len(p.Exemplars), 2) {
			e := p.Exemplars
			check(t, "exemplar 0 timeUnixNano", e[0].TimeUnixNano, nanos(at(5)))
			check(t, "exemplar 0 asDouble", fmt.Sprint(e[0].AsDouble != nil && *e[0].AsDouble == 0.5), "true")
			checkAttrs(t, "exemplar 0", e[0].FilteredAttributes, attrs{"user": str("alice"), "shard": str("7")})
			check(t, "exemplar 1 timeUnixNano", e[1].TimeUnixNano, nanos(at(6)))
			check(t, "exemplar 1 asDouble", fmt.Sprint(e[1].AsDouble != nil && *e[1].AsDouble == 150), "true")
			checkAttrs(t, "exemplar 1", e[1].FilteredAttributes, attrs{metricdata.AttachmentKeySpanContext: str(exemplarSpanContext.TraceID.String() + "/" + exemplarSpanContext.SpanID.String())})
			for i, x := range e {
				check(t, fmt.Sprintf("exemplar %d traceId", i), x.TraceID, "")
				check(t, fmt.Sprintf("exemplar %d spanId", i), x.SpanID, "")
			}
		}
	}
}

// writeCert writes a self-signed ECDSA certificate for 127.0.0.1 (its own CA)
// and its key into dir, and returns the paths and a pool that trusts it.
func writeCert(t *testing.T, dir string) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "zerocensus interop collector"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	roots = x509.NewCertPool()
	roots.AddCert(cert)
	return certFile, keyFile, roots
}

// The gRPC methods the exporter opens, by their real (upstream) names.
const (
	traceExportPath   = "/opencensus.proto.agent.trace.v1.TraceService/Export"
	traceConfigPath   = "/opencensus.proto.agent.trace.v1.TraceService/Config"
	metricsExportPath = "/opencensus.proto.agent.metrics.v1.MetricsService/Export"
)

// TestCollectorTLSReceiverUnusable pins a limitation of the Collector, not
// of the exporter: the opencensusreceiver accepts tls settings, but it serves
// gRPC and HTTP/JSON on one port through cmux, which picks gRPC by reading
// the plaintext HTTP/2 content-type before the gRPC server (which holds the
// TLS credentials) sees the connection. A TLS ClientHello matches no gRPC
// rule and goes to the plaintext HTTP server, so a TLS client fails its
// handshake ("first record does not look like a TLS handshake"), and a
// plaintext client reaches a gRPC server that expects TLS. With tls set the
// receiver takes no gRPC at all (opencensus-service#596,
// opentelemetry-collector#2732). TestCollectorTLSGzipHeaders terminates TLS
// in front of it instead.
func TestCollectorTLSReceiverUnusable(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, roots := writeCert(t, dir)
	addr := freeAddr(t)
	out := filepath.Join(dir, "out.jsonl")
	startCollector(t, addr, out, []string{"TLS_CERT_FILE=" + certFile, "TLS_KEY_FILE=" + keyFile}, "tls.yaml")

	lastError := func(exp *ocagent.Exporter) error {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			if err := exp.Stats().LastError; err != nil || time.Now().After(deadline) {
				return err
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	newExporter := func(security ocagent.ExporterOption) *ocagent.Exporter {
		exp, err := ocagent.NewExporter(security, ocagent.WithAddress(addr), ocagent.WithServiceName("zerocensus-interop-tls"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = exp.StopContext(stoppedContext()) })
		for _, sd := range testSpans(t) {
			exp.ExportSpan(sd)
		}
		exp.Flush()
		return exp
	}

	tlsExp := newExporter(ocagent.WithTLSCredentials(credentials.NewTLS(&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12})))
	err := lastError(tlsExp)
	if err == nil || !strings.Contains(err.Error(), "first record does not look like a TLS handshake") {
		t.Errorf("TLS exporter: last error %v, want the TLS handshake to meet plaintext HTTP", err)
	}
	plainExp := newExporter(ocagent.WithInsecure())
	if err := lastError(plainExp); err == nil {
		t.Errorf("plaintext exporter: no error from a receiver configured for TLS")
	} else {
		t.Logf("plaintext exporter: %v", err)
	}
	if o := readOutput(t, out); o.lines != 0 {
		t.Errorf("the collector wrote %d lines, want none", o.lines)
	}
	// The TLS exporter never opened a stream. The plaintext one did (cmux
	// answers its HTTP/2 preface before handing the connection to the gRPC
	// server, which then resets it), so its spans count as handed to gRPC.
	check(t, "TLS exporter SpansExported", tlsExp.Stats().SpansExported, 0)
	t.Logf("TLS exporter stats: %+v", tlsExp.Stats())
	t.Logf("plaintext exporter stats: %+v", plainExp.Stats())
}

// stoppedContext is an expired context: Stop without waiting for a
// Collector that will never take the data.
func stoppedContext() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// TestCollectorTLSGzipHeaders sends over TLS (a certificate generated here,
// terminated by tlsProxy in front of the Collector), with gzip compression,
// headers and a metric name prefix. The proxy sees every gRPC stream
// decrypted: each carries the header and grpc-encoding: gzip, and its
// messages are compressed. The Collector (include_metadata and the
// attributes processor) turns the header into an attribute of every span and
// data point, which shows it arrived with the trace and the metrics stream.
func TestCollectorTLSGzipHeaders(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, roots := writeCert(t, dir)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	out := filepath.Join(dir, "out.jsonl")
	startCollector(t, addr, out, nil)
	proxy := startTLSProxy(t, &cert, addr)

	const service = "zerocensus-interop-tls"
	const tenantHeader, tenant = "x-zerocensus-tenant", "acme"
	exp, err := ocagent.NewExporter(
		ocagent.WithTLSCredentials(credentials.NewTLS(&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12})),
		ocagent.WithAddress(proxy.addr),
		ocagent.WithServiceName(service),
		ocagent.UseCompressor("gzip"),
		ocagent.WithHeaders(map[string]string{tenantHeader: tenant}),
		ocagent.WithMetricNamePrefix("tls"),
		ocagent.WithSpanConfig(ocagent.SpanConfig{AnnotationEventsPerSpan: 2}),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer exp.Stop()
	spans := testSpans(t)
	for _, sd := range spans {
		exp.ExportSpan(sd)
	}
	for _, vd := range testViews() {
		exp.ExportView(vd)
	}
	exp.Flush()

	var prefixed []string
	for _, n := range allMetricNames {
		prefixed = append(prefixed, "tls/"+n)
	}
	o := waitOutput(t, out, outputTimeout, func(o *output) bool { return o.hasAll(allSpanNames, prefixed) }, statsOf(exp))
	if err := exp.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	check(t, "Stats.SendFailures", exp.Stats().SendFailures, 0)

	const headerAttr = "zerocensus.header.tenant"
	check(t, "spans written", len(o.spans), len(spans))
	for _, s := range o.spans {
		i := slices.IndexFunc(spans, func(sd *trace.SpanData) bool { return sd.Name == s.Name })
		if i < 0 {
			t.Errorf("unexpected span %q", s.Name)
			continue
		}
		got := attrSet(t, s.Name, s.Attributes)
		check(t, "span "+s.Name+" "+headerAttr, got[headerAttr], str(tenant))
		// Apart from the header's attribute, the span is as over plaintext.
		var kvs []jsonKeyValue
		for _, kv := range s.Attributes {
			if kv.Key != headerAttr {
				kvs = append(kvs, kv)
			}
		}
		s.Attributes = kvs
		checkSpan(t, s, spans[i])
		check(t, "span "+s.Name+" service.name", attrSet(t, "resource", s.resource.Attributes)["service.name"], str(service))
	}
	metrics := make(map[string]metricAt)
	for _, m := range o.metrics {
		metrics[m.Name] = m
	}
	check(t, "metrics written", len(o.metrics), len(allMetricNames))
	checkMetrics(t, metrics, "tls", headerAttr, str(tenant))

	// What went over the wire, decrypted by the proxy.
	seen := make(map[string]int)
	contentTypes := make(map[string]bool)
	for _, s := range proxy.snapshot() {
		path := fmt.Sprint(s.headers[":path"])
		seen[path]++
		what := fmt.Sprintf("stream %d %s", s.id, path)
		check(t, what+" "+tenantHeader, fmt.Sprint(s.headers[tenantHeader]), fmt.Sprint([]string{tenant}))
		check(t, what+" grpc-encoding", fmt.Sprint(s.headers["grpc-encoding"]), fmt.Sprint([]string{"gzip"}))
		// The receiver's cmux routes both content types to gRPC. (The Export
		// streams say application/grpc+proto: grpc.ForceCodecV2 makes the
		// codec's name, "proto", the content-subtype; the Config stream,
		// opened with the default codec, says application/grpc.)
		if ct := fmt.Sprint(s.headers["content-type"]); ct != "[application/grpc]" && ct != "[application/grpc+proto]" {
			t.Errorf("%s: content-type %s, want application/grpc or application/grpc+proto", what, ct)
		}
		contentTypes[path+" "+fmt.Sprint(s.headers["content-type"])] = true
		if s.sawData && !s.compressed {
			t.Errorf("%s: first message not compressed", what)
		}
		if (path == "["+traceExportPath+"]" || path == "["+metricsExportPath+"]") && !s.sawData {
			t.Errorf("%s: no message seen", what)
		}
	}
	for _, p := range []string{traceExportPath, metricsExportPath, traceConfigPath} {
		if seen["["+p+"]"] == 0 {
			t.Errorf("no %s stream seen by the proxy (saw %v)", p, seen)
		}
	}
	t.Logf("streams seen by the TLS proxy: %v; content types: %v", seen, slices.Sorted(maps.Keys(contentTypes)))
}

// TestCollectorProtocolAnswers checks, with upstream's generated client, what
// the receiver answers on its own: an Export stream whose first message has
// no Node is refused, and the trace Config RPC fails at once. The Config
// answer is an error whose gRPC code is Unknown (the receiver returns a plain
// Go error, errors.New("unimplemented"), which gRPC reports as Unknown), not
// Unimplemented.
func TestCollectorProtocolAnswers(t *testing.T) {
	addr := freeAddr(t)
	out := filepath.Join(t.TempDir(), "out.jsonl")
	startCollector(t, addr, out, nil)

	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := agenttracepb.NewTraceServiceClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	cfg, err := client.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Send(&agenttracepb.CurrentLibraryConfig{Node: ocagent.NodeWithStartTime("zerocensus-interop")}); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	_, err = cfg.Recv()
	st := status.Convert(err)
	check(t, "Config status code", st.Code(), codes.Unknown)
	check(t, "Config status message", st.Message(), "unimplemented")

	exp, err := client.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := exp.Send(&agenttracepb.ExportTraceServiceRequest{}); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	_, err = exp.Recv()
	st = status.Convert(err)
	check(t, "Export without Node: status code", st.Code(), codes.Unknown)
	check(t, "Export without Node: status message", st.Message(), "protocol violation: Export's first message must have a Node")
	if o := readOutput(t, out); o.lines != 0 {
		t.Errorf("the collector wrote %d lines, want none", o.lines)
	}
}

// TestCollectorConfigRetries checks how the exporter takes the Config
// answer: the receiver answers a plain error "unimplemented" (gRPC code
// Unknown), which the exporter must read as "no Config RPC here" and not
// retry, however long it runs.
func TestCollectorConfigRetries(t *testing.T) {
	addr := freeAddr(t)
	out := filepath.Join(t.TempDir(), "out.jsonl")
	startCollector(t, addr, out, nil)
	proxy := startTLSProxy(t, nil, addr)

	exp, err := ocagent.NewExporter(ocagent.WithInsecure(), ocagent.WithAddress(proxy.addr),
		ocagent.WithServiceName("zerocensus-interop-config"), ocagent.WithReconnectionPeriod(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer exp.Stop()
	const window = 3 * time.Second
	time.Sleep(window)
	n := proxy.count(traceConfigPath)
	t.Logf("Config streams opened in %v: %d (Export streams: trace %d, metrics %d)", window, n, proxy.count(traceExportPath), proxy.count(metricsExportPath))
	check(t, "Config streams", n, 1)
	check(t, "trace Export streams", proxy.count(traceExportPath), 1)
	check(t, "metrics Export streams", proxy.count(metricsExportPath), 1)
}

// TestCollectorRestart stops the Collector (by its PID) while the exporter
// runs, starts a new one on the same port, and checks that the exporter
// reconnects: spans and views exported while the Collector was down and after
// it came back arrive at the new one.
func TestCollectorRestart(t *testing.T) {
	addr := freeAddr(t)
	dir := t.TempDir()
	out1, out2 := filepath.Join(dir, "out1.jsonl"), filepath.Join(dir, "out2.jsonl")
	first := startCollector(t, addr, out1, nil)

	exp, err := ocagent.NewExporter(
		ocagent.WithInsecure(),
		ocagent.WithAddress(addr),
		ocagent.WithServiceName("zerocensus-interop-restart"),
		ocagent.WithReconnectionPeriod(500*time.Millisecond),
		ocagent.WithMaxBatchDelay(100*time.Millisecond),
		ocagent.WithDataBundlerOptions(100*time.Millisecond, 10),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer exp.Stop()

	span := func(name string, id byte) *trace.SpanData {
		return &trace.SpanData{
			SpanContext: trace.SpanContext{TraceID: traceID, SpanID: trace.SpanID{0xDE, 0xAD, 0xBE, 0xEF, 0, 0, 0, id}},
			Name:        name, StartTime: time.Now().Add(-time.Millisecond), EndTime: time.Now(),
		}
	}
	countView := func(name string) *view.Data {
		return &view.Data{
			View:  &view.View{Name: name, Measure: mRequests, Aggregation: view.Count()},
			Start: viewStart, End: time.Now(),
			Rows: []*view.Row{{Data: &view.CountData{Value: 1}}},
		}
	}

	exp.ExportSpan(span("restart.before", 1))
	exp.ExportView(countView("restart/before"))
	exp.Flush()
	waitOutput(t, out1, outputTimeout, func(o *output) bool {
		return o.hasAll([]string{"restart.before"}, []string{"restart/before"})
	}, statsOf(exp))

	stopped := time.Now()
	first.stop()
	t.Logf("collector pid %d stopped: %v", first.pid, first.waitErr)

	// While nothing listens: the spans wait in the ring.
	exp.ExportSpan(span("restart.during", 2))
	exp.ExportView(countView("restart/during"))
	exp.Flush()

	second := startCollector(t, addr, out2, nil)
	exp.ExportSpan(span("restart.after", 3))
	exp.ExportView(countView("restart/after"))
	exp.Flush()
	o := waitOutput(t, out2, outputTimeout, func(o *output) bool {
		return o.hasAll([]string{"restart.during", "restart.after"}, []string{"restart/during", "restart/after"})
	}, statsOf(exp))
	t.Logf("collector pid %d: data sent after the restart arrived %v after the first collector stopped", second.pid, time.Since(stopped).Round(time.Millisecond))
	if len(o.spansNamed("restart.before")) != 0 {
		t.Logf("restart.before was sent again to the new collector (at-least-once)")
	}
	if len(o.nodeOnly) == 0 {
		t.Errorf("no Node-only line from the new trace stream")
	}
	for _, s := range o.spans {
		check(t, "span "+s.Name+" service.name", attrSet(t, "resource", s.resource.Attributes)["service.name"], str("zerocensus-interop-restart"))
	}
	if err := exp.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	st := exp.Stats()
	if st.Reconnects == 0 {
		t.Errorf("Stats.Reconnects = 0 after a restart")
	}
	t.Logf("exporter stats after the restart: %+v", st)
}
