//go:build unix

package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.opencensus.io/resource"
	"go.opencensus.io/trace"

	ocagent "github.com/zerocensus/ocagent"
)

// The OTLP output against a current Collector (otelcol-otlp, v0.165.0, the
// OTLP receiver), compared with the OpenCensus output against the last
// Collector that had an OpenCensus receiver (v0.133.0): a user moving from
// ocagent -> Collector(OpenCensus receiver) to OTLP must see the same data.

// differences are the intended ones: what the OTLP output carries that the
// OpenCensus receiver's translation dropped. Each is removed from the OTLP
// side (and the OpenCensus side's stand-in from that side) before the
// comparison, and nothing else may differ.
var differences = []string{
	"span flags: the W3C trace flags, and whether the parent is remote (0x100, 0x200)",
	"link attribute opencensus.link.type (CHILD_LINKED_SPAN, PARENT_LINKED_SPAN)",
	"histogram data point min and max",
	"exemplar trace_id and span_id from the SpanContext attachment (the translation had a filtered attribute SpanContext = \"traceid/spanid\")",
	"no Node-only resourceSpans line (OTLP has no stream to open with a Node)",
}

func exporterFor(t *testing.T, addr string, proto ocagent.Protocol, extra ...ocagent.ExporterOption) *ocagent.Exporter {
	t.Helper()
	exp, err := ocagent.NewExporter(append([]ocagent.ExporterOption{
		ocagent.WithProtocol(proto),
		ocagent.WithInsecure(),
		ocagent.WithAddress(addr),
		ocagent.WithServiceName("zerocensus-interop"),
		ocagent.WithResourceDetector(func(context.Context) (*resource.Resource, error) {
			return &resource.Resource{Type: "interop.test", Labels: map[string]string{"team": "zerocensus", "cloud.zone": "eu-west-1a"}}, nil
		}),
		ocagent.WithSpanConfig(ocagent.SpanConfig{AnnotationEventsPerSpan: 2}),
	}, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	return exp
}

// canonical is v as JSON with every attribute list sorted by key, so that
// two outputs compare as text.
func canonical(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var generic any
	if err := json.Unmarshal(b, &generic); err != nil {
		t.Fatal(err)
	}
	sortAttrLists(generic)
	out, err := json.MarshalIndent(generic, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func sortAttrLists(v any) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if l, ok := e.([]any); ok && (k == "attributes" || k == "filteredAttributes") {
				slices.SortFunc(l, func(a, b any) int {
					return strings.Compare(a.(map[string]any)["key"].(string), b.(map[string]any)["key"].(string))
				})
			}
			sortAttrLists(e)
		}
	case []any:
		for _, e := range x {
			sortAttrLists(e)
		}
	}
}

// TestOTLPMatchesOpenCensusCollector sends the same spans and views through
// the OpenCensus output to Collector v0.133.0 and through the OTLP output to
// a current Collector, over gRPC and over HTTP (gzip, headers), and compares
// what they wrote, field by field.
func TestOTLPMatchesOpenCensusCollector(t *testing.T) {
	t.Setenv("HOSTNAME", "interop-host")
	dir := t.TempDir()
	ocAddr, otlpAddr, otlpHTTPAddr, httpGRPCAddr := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	ocOut, otlpOut, httpOut := filepath.Join(dir, "oc.jsonl"), filepath.Join(dir, "otlp.jsonl"), filepath.Join(dir, "otlphttp.jsonl")
	startCollectorOf(t, ocCollector, ocAddr, ocOut, nil)
	startCollectorOf(t, otlpCollector, otlpAddr, otlpOut, nil)
	startCollectorOf(t, otlpCollector, httpGRPCAddr, httpOut, []string{"OTLP_HTTP_ENDPOINT=" + otlpHTTPAddr}, "otlp-http.yaml")
	t.Logf("collectors built in %v (once per run)", buildTook.Round(time.Millisecond))

	outs := map[string]*output{}
	for _, c := range []struct {
		name  string
		addr  string
		proto ocagent.Protocol
		out   string
		extra []ocagent.ExporterOption
	}{
		{"opencensus", ocAddr, ocagent.ProtocolOpenCensus, ocOut, nil},
		{"otlp", otlpAddr, ocagent.ProtocolOTLP, otlpOut, nil},
		{"otlp-http", otlpHTTPAddr, ocagent.ProtocolOTLPHTTP, httpOut, []ocagent.ExporterOption{
			ocagent.UseCompressor("gzip"), ocagent.WithHeaders(map[string]string{"x-tenant": "interop"})}},
	} {
		exp := exporterFor(t, c.addr, c.proto, c.extra...)
		for _, sd := range testSpans(t) {
			exp.ExportSpan(sd)
		}
		for _, vd := range testViews() {
			exp.ExportView(vd)
		}
		if err := exp.Stop(); err != nil {
			t.Fatal(err)
		}
		outs[c.name] = waitOutput(t, c.out, outputTimeout, func(o *output) bool { return o.hasAll(allSpanNames, allMetricNames) }, statsOf(exp))
		if st := exp.Stats(); st.SpansExported != uint64(len(allSpanNames)) || st.ViewsExported != uint64(len(allMetricNames)) {
			t.Errorf("%s: stats %+v", c.name, st)
		}
	}
	for _, variant := range []string{"otlp", "otlp-http"} {
		t.Run(variant, func(t *testing.T) { compareOutputs(t, outs["opencensus"], outs[variant]) })
	}
	t.Logf("identical but for the intended differences:\n- %s", strings.Join(differences, "\n- "))
}

// compareOutputs compares the OpenCensus path's output with an OTLP one's.
func compareOutputs(t *testing.T, oc, otlp *output) {
	if len(oc.nodeOnly) != 1 || len(otlp.nodeOnly) != 0 {
		t.Errorf("Node-only lines: opencensus %d (want 1), otlp %d (want 0)", len(oc.nodeOnly), len(otlp.nodeOnly))
	}

	for _, name := range allSpanNames {
		a, b := oc.spansNamed(name), otlp.spansNamed(name)
		if len(a) != 1 || len(b) != 1 {
			t.Errorf("span %s: %d and %d copies", name, len(a), len(b))
			continue
		}
		got := b[0]
		// Intended: flags (the trace flags; for a span with a parent,
		// whether that parent is remote), and the link type attribute.
		var sd *trace.SpanData
		for _, s := range testSpans(t) {
			if s.Name == name {
				sd = s
			}
		}
		want := uint32(sd.TraceOptions)
		if sd.ParentSpanID != (trace.SpanID{}) {
			want |= 0x100
			if sd.HasRemoteParent {
				want |= 0x200
			}
		}
		if got.Flags != want {
			t.Errorf("span %s: flags %#x, want %#x", name, got.Flags, want)
		}
		got.Flags = 0
		for i := range got.Links {
			l := &got.Links[i]
			l.Attributes = slices.DeleteFunc(slices.Clone(l.Attributes), func(kv jsonKeyValue) bool { return kv.Key == "opencensus.link.type" })
			if len(l.Attributes) == 0 {
				l.Attributes = nil
			}
		}
		compare(t, "span "+name, a[0], got)
	}

	for _, name := range allMetricNames {
		a, b := oc.metricsNamed(name), otlp.metricsNamed(name)
		if len(a) != 1 || len(b) != 1 {
			t.Errorf("metric %s: %d and %d copies", name, len(a), len(b))
			continue
		}
		want, got := a[0], b[0]
		if h := got.Histogram; h != nil {
			for i := range h.DataPoints {
				p := &h.DataPoints[i]
				if p.Min == nil || p.Max == nil || *p.Min != 0.5 || *p.Max != 150 {
					t.Errorf("metric %s: min %v max %v, want 0.5 and 150", name, p.Min, p.Max)
				}
				p.Min, p.Max = nil, nil
				for j := range p.Exemplars {
					e := &p.Exemplars[j]
					if e.TraceID != "" {
						if e.TraceID != hexID(traceID[:]) || e.SpanID != hexID(serverID[:]) {
							t.Errorf("metric %s: exemplar trace link %s/%s", name, e.TraceID, e.SpanID)
						}
						// The translation's stand-in for the same link.
						e.FilteredAttributes = append(e.FilteredAttributes, jsonKeyValue{Key: "SpanContext",
							Value: jsonAnyValue{StringValue: ptr(e.TraceID + "/" + e.SpanID)}})
						e.TraceID, e.SpanID = "", ""
					}
				}
			}
		}
		compare(t, "metric "+name, want, got)
	}
}

func ptr[T any](v T) *T { return &v }

// compare fails with both sides when their canonical forms differ.
func compare(t *testing.T, what string, want, got any) {
	t.Helper()
	if a, b := canonical(t, want), canonical(t, got); a != b {
		t.Errorf("%s differs:\n--- via OpenCensus and Collector v0.133.0:\n%s\n--- via OTLP and the current Collector:\n%s", what, a, b)
	}
}

// TestCurrentCollectorKilled: the OTLP output (gRPC, then HTTP) to a
// current Collector killed abruptly (SIGKILL) and restarted on the same
// port, several times in a row, while spans flow: every span arrives,
// counted by id; duplicates come only from calls whose answer a kill cut.
func TestCurrentCollectorKilled(t *testing.T) {
	t.Run("grpc", func(t *testing.T) { collectorKilled(t, ocagent.ProtocolOTLP) })
	t.Run("http", func(t *testing.T) { collectorKilled(t, ocagent.ProtocolOTLPHTTP) })
}

func collectorKilled(t *testing.T, proto ocagent.Protocol) {
	addr := freeAddr(t)
	dir := t.TempDir()
	var env, overlays []string
	expAddr := addr
	if proto == ocagent.ProtocolOTLPHTTP {
		expAddr = freeAddr(t)
		env, overlays = []string{"OTLP_HTTP_ENDPOINT=" + expAddr}, []string{"otlp-http.yaml"}
	}
	c := startCollectorOf(t, otlpCollector, addr, filepath.Join(dir, "out0.jsonl"), env, overlays...)
	exp, err := ocagent.NewExporter(ocagent.WithProtocol(proto), ocagent.WithInsecure(), ocagent.WithAddress(expAddr),
		ocagent.WithMaxBatchDelay(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer exp.Stop()
	const n, kills = 20_000, 3
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // a steady 4,000 spans/s for 5 s
		defer wg.Done()
		start := time.Now()
		for i := 0; i < n; {
			for target := int(4000 * time.Since(start).Seconds()); i < n && i < target; i++ {
				exp.ExportSpan(&trace.SpanData{
					SpanContext: trace.SpanContext{TraceID: traceID, SpanID: trace.SpanID{0xAB, byte(i >> 16), byte(i >> 8), byte(i)}},
					Name:        "killed", StartTime: t0, EndTime: t0.Add(time.Millisecond),
				})
			}
			time.Sleep(time.Millisecond)
		}
	}()
	outs := []string{c.out}
	for k := range kills {
		time.Sleep(500*time.Millisecond + rand.N(500*time.Millisecond))
		if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-c.exited
		time.Sleep(100*time.Millisecond + rand.N(200*time.Millisecond))
		out := filepath.Join(dir, fmt.Sprintf("out%d.jsonl", k+1))
		c = startCollectorOf(t, otlpCollector, addr, out, env, overlays...)
		outs = append(outs, out)
	}
	wg.Wait()
	exp.Flush()
	if err := exp.Stop(); err != nil {
		t.Fatal(err)
	}
	c.stop()
	seen := map[string]int{} // hex span id -> arrivals
	for _, out := range outs {
		if _, err := os.Stat(out); err != nil {
			continue
		}
		for _, s := range readOutput(t, out).spans {
			seen[s.SpanID]++
		}
	}
	dups := 0
	for _, k := range seen {
		dups += k - 1
	}
	st := exp.Stats()
	t.Logf("%d spans, %d kills: %d distinct arrived, %d duplicates; stats %+v", n, kills, len(seen), dups, st)
	// The Collector writes a batch (jsonl) before it answers, so a kill
	// loses nothing it acknowledged, and the exporter resends whatever was
	// not acknowledged: every span arrives. Duplicates are the spans of
	// calls whose answer a kill cut: at most the requests in flight (4) of
	// at most DefaultMaxBatchSpansOTLP spans at each kill.
	if st.SpansExported != n || st.SpansDroppedFull != 0 || st.SpansRejected != 0 {
		t.Errorf("exporter: %+v", st)
	}
	missing := 0
	for i := range n {
		id := trace.SpanID{0xAB, byte(i >> 16), byte(i >> 8), byte(i)}
		if seen[hexID(id[:])] == 0 {
			missing++
		}
	}
	if missing > 0 || len(seen) != n {
		t.Errorf("%d of the %d spans did not arrive (%d distinct)", missing, n, len(seen))
	}
	if max := kills * 4 * ocagent.DefaultMaxBatchSpansOTLP; dups > max {
		t.Errorf("%d duplicates, more than the %d spans that can be in flight at %d kills", dups, max, kills)
	}
}
