package ocagent

import (
	"context"
	"net"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opencensus.io/metric/metricdata"
	"go.opencensus.io/metric/metricproducer"
	"google.golang.org/grpc/codes"

	"github.com/zerocensus/ocagent/stream"
)

// Self-metrics: the exporter's Stats under the names, units and attributes
// of OpenTelemetry's SDK self-metrics (semantic conventions
// docs/otel/sdk-metrics.md), as OpenCensus metricdata. The README's
// "Self-metrics" section has the table.
//
// OpenCensus has no up-down counter: the semantic conventions'
// UpDownCounters (inflight, queue size and capacity) are int64 gauges,
// which the Collector's OpenCensus translation makes OTLP gauges; Counters
// are cumulative int64 (OTLP monotonic cumulative sums) from the
// exporter's creation. Label values are strings, server.port too.

// Component types. OTLP output uses the semantic conventions' own values
// (otlp_grpc_* for OTLP/gRPC, otlp_http_* for OTLP/HTTP with protobuf).
// OpenCensus output has none defined: the names follow their pattern
// <protocol>_<transport>_<signal>_exporter (otlp_grpc_span_exporter,
// zipkin_http_span_exporter), so a dashboard tells the protocols apart and
// groups them the same way. The ring, batch and scheduler in front of any
// of them are what OpenTelemetry's batching span processor is, so they
// report as one.
const (
	typeOCSpanExporter       = "opencensus_grpc_span_exporter"
	typeOCMetricExporter     = "opencensus_grpc_metric_exporter"
	typeOTLPSpanExporter     = "otlp_grpc_span_exporter"
	typeOTLPMetricExporter   = "otlp_grpc_metric_exporter"
	typeOTLPHTTPSpanExporter = "otlp_http_span_exporter"
	typeOTLPHTTPMetricExport = "otlp_http_metric_exporter"
	typeSpanProcessor        = "batching_span_processor"
)

// componentSeq numbers the components of each type in the process, for
// otel.component.name (<type>/<n>, n from 0).
var componentSeq sync.Map // type -> *atomic.Int64

func componentName(typ string) string {
	v, _ := componentSeq.LoadOrStore(typ, new(atomic.Int64))
	return typ + "/" + strconv.FormatInt(v.(*atomic.Int64).Add(1)-1, 10)
}

// Metric names and units.
const (
	nameSpanInflight   = "otel.sdk.exporter.span.inflight"
	nameSpanExported   = "otel.sdk.exporter.span.exported"
	namePointInflight  = "otel.sdk.exporter.metric_data_point.inflight"
	namePointExported  = "otel.sdk.exporter.metric_data_point.exported"
	nameQueueSize      = "otel.sdk.processor.span.queue.size"
	nameQueueCapacity  = "otel.sdk.processor.span.queue.capacity"
	nameSpanProcessed  = "otel.sdk.processor.span.processed"
	nameDuration       = "otel.sdk.exporter.operation.duration"
	attrRPCStatus      = "rpc.response.status_code"
	attrHTTPStatus     = "http.response.status_code"
	unitSpan           = "{span}"
	unitDataPoint      = "{data_point}"
	attrComponentName  = "otel.component.name"
	attrComponentType  = "otel.component.type"
	attrServerAddress  = "server.address"
	attrServerPort     = "server.port"
	attrErrorType      = "error.type"
	errTypeRejected    = "rejected"
	errTypeOversize    = "oversize"
	errTypeInvalid     = "invalid"
	errTypeQueueFull   = "queue_full"
	errTypeShutdown    = "already_shutdown"
	errTypeDroppedStop = "dropped_at_stop"
	errTypeCancelled   = "CANCELLED" // an export Stop cut short, in every transport
	errTypeOther       = "_OTHER"    // the conventions' value for a class not otherwise named
)

// transportKind is how an exporter's requests travel: what its status
// codes are and which attribute carries them.
type transportKind int

const (
	kindOpenCensus transportKind = iota // gRPC codes, no answers: no status attribute
	kindOTLPgRPC                        // gRPC codes, rpc.response.status_code
	kindOTLPHTTP                        // HTTP statuses, http.response.status_code
)

// errorType is the error.type of an export that ended with code ("" for a
// success): the gRPC code's name, or the HTTP status's number.
func (k transportKind) errorType(code int) string {
	switch {
	case code == stream.CodeStopped:
		return errTypeCancelled
	case k == kindOTLPHTTP && code >= 200 && code < 300:
		return ""
	case k == kindOTLPHTTP && code > 0:
		return strconv.Itoa(code)
	case k != kindOTLPHTTP && code == int(codes.OK):
		return ""
	case k != kindOTLPHTTP && code > 0 && code < codeCount:
		return codeNames[code]
	}
	return errTypeOther
}

// status is the response status attribute of an export that ended with
// code, or false when there is none (OpenCensus; an HTTP request Stop cut
// before an answer).
func (k transportKind) status(code int) (string, bool) {
	switch {
	case k == kindOTLPgRPC && code == stream.CodeStopped:
		return codeNames[codes.Canceled], true
	case k == kindOTLPgRPC && code >= 0 && code < codeCount:
		return codeNames[code], true
	case k == kindOTLPHTTP && code > 0:
		return strconv.Itoa(code), true
	}
	return "", false
}

// exporterInfo is one exporter component (the span or the metric one).
type exporterInfo struct {
	kind transportKind
	vals []metricdata.LabelValue // component name and type, server address and port
}

// selfMetrics is the exporter's metricproducer.Producer.
type selfMetrics struct {
	e     *Exporter
	since time.Time // the counters' start time

	// Label keys and the constant label values, built once and shared by
	// every Read (metricdata consumers only read them).
	expKeys, expKeysErr, procKeys, procKeysErr []metricdata.LabelKey
	span, metric                               exporterInfo
	proc                                       []metricdata.LabelValue // without error.type
	spanErr, metricErr, procErr                map[string][]metricdata.LabelValue
	capacity                                   int64

	durKeys    []metricdata.LabelKey // exporter keys, error.type, then the status keys in use
	rpcAt      int                   // index of rpc.response.status_code in durKeys (-1: none)
	httpAt     int                   // index of http.response.status_code (-1: none)
	bounds     *metricdata.BucketOptions
	snaps      []stream.DurationSnapshot // durations' scratch, guarded by snapMu (Read may be called from any goroutine)
	refusals   []stream.Refusal          // refusals' scratch, the same
	snapMu     sync.Mutex
	codeLabels map[exporterCode][]metricdata.LabelValue // per exporter and code, for error.type series; guarded by snapMu
	durLabels  map[exporterCode][]metricdata.LabelValue // the same, for duration series

	producer bool
	period   time.Duration
	quit     chan struct{}
	done     chan struct{}
}

type exporterCode struct {
	metric bool
	code   int
}

func newSelfMetrics(e *Exporter) *selfMetrics {
	s := &selfMetrics{e: e, since: time.Now(), producer: e.cfg.selfProducer, period: e.cfg.selfPeriod,
		capacity:   int64(e.spans.Ring().Cap()),
		codeLabels: map[exporterCode][]metricdata.LabelValue{}, durLabels: map[exporterCode][]metricdata.LabelValue{}}
	s.expKeys = []metricdata.LabelKey{{Key: attrComponentName}, {Key: attrComponentType}, {Key: attrServerAddress}, {Key: attrServerPort}}
	s.expKeysErr = append(s.expKeys[:len(s.expKeys):len(s.expKeys)], metricdata.LabelKey{Key: attrErrorType})
	s.procKeys = []metricdata.LabelKey{{Key: attrComponentName}, {Key: attrComponentType}}
	s.procKeysErr = append(s.procKeys[:2:2], metricdata.LabelKey{Key: attrErrorType})
	exp := func(spanType, metricType string, ep *endpoint) exporterInfo {
		typ, kind := spanType, kindOpenCensus
		switch {
		case ep.url != "":
			typ, kind = typeOTLPHTTPSpanExporter, kindOTLPHTTP
			if metricType != "" {
				typ = typeOTLPHTTPMetricExport
			}
		case e.cfg.protocol.otlp():
			typ, kind = typeOTLPSpanExporter, kindOTLPgRPC
			if metricType != "" {
				typ = typeOTLPMetricExporter
			}
		case metricType != "":
			typ = metricType
		}
		address := ep.address
		if u, err := url.Parse(ep.url); err == nil && ep.url != "" {
			address = u.Host
			if u.Port() == "" {
				address = net.JoinHostPort(u.Hostname(), map[bool]string{true: "443", false: "80"}[u.Scheme == "https"])
			}
		}
		host, port, err := net.SplitHostPort(address)
		if err != nil {
			host, port = address, ""
		}
		return exporterInfo{kind: kind, vals: []metricdata.LabelValue{metricdata.NewLabelValue(componentName(typ)), metricdata.NewLabelValue(typ),
			metricdata.NewLabelValue(host), {Value: port, Present: port != ""}}}
	}
	s.span, s.metric = exp(typeOCSpanExporter, "", e.eps[0]), exp("", typeOCMetricExporter, e.eps[1])
	s.proc = []metricdata.LabelValue{metricdata.NewLabelValue(componentName(typeSpanProcessor)), metricdata.NewLabelValue(typeSpanProcessor)}
	withErr := func(base []metricdata.LabelValue, types ...string) map[string][]metricdata.LabelValue {
		m := make(map[string][]metricdata.LabelValue, len(types)+1)
		m[""] = append(base[:len(base):len(base)], metricdata.LabelValue{}) // success: error.type absent
		for _, t := range types {
			m[t] = append(base[:len(base):len(base)], metricdata.NewLabelValue(t))
		}
		return m
	}
	s.spanErr = withErr(s.span.vals, errTypeRejected, errTypeOversize)
	s.metricErr = withErr(s.metric.vals, errTypeRejected, errTypeOversize, errTypeInvalid)
	s.procErr = withErr(s.proc, errTypeQueueFull, errTypeShutdown, errTypeDroppedStop)
	s.durKeys = slices.Clone(s.expKeysErr)
	s.rpcAt, s.httpAt = -1, -1
	if s.span.kind == kindOTLPgRPC || s.metric.kind == kindOTLPgRPC {
		s.rpcAt = len(s.durKeys)
		s.durKeys = append(s.durKeys, metricdata.LabelKey{Key: attrRPCStatus})
	}
	if s.span.kind == kindOTLPHTTP || s.metric.kind == kindOTLPHTTP {
		s.httpAt = len(s.durKeys)
		s.durKeys = append(s.durKeys, metricdata.LabelKey{Key: attrHTTPStatus})
	}
	s.bounds = &metricdata.BucketOptions{Bounds: stream.DurationBounds[:]}
	return s
}

// Read implements metricproducer.Producer: the self-metrics from one Stats
// snapshot, in fresh metricdata (a consumer, this exporter included, may
// keep them), about 40 small allocations per call (docs/metrics.md).
func (s *selfMetrics) Read() []*metricdata.Metric { return s.read(s.e.Stats(), time.Now()) }

// errLabels are the label values of ex's series for error.type et (a
// status code's name), made once per exporter and code. Called with snapMu
// held.
func (s *selfMetrics) errLabels(ex *exporterInfo, metric bool, code int) []metricdata.LabelValue {
	k := exporterCode{metric, code}
	v, ok := s.codeLabels[k]
	if !ok {
		v = append(ex.vals[:len(ex.vals):len(ex.vals)], metricdata.NewLabelValue(ex.kind.errorType(code)))
		s.codeLabels[k] = v
	}
	return v
}

// read builds the metrics of st at now. Everything of one call comes from
// a few blocks: the metrics, their time series, their points.
func (s *selfMetrics) read(st Stats, now time.Time) []*metricdata.Metric {
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	// Requests refused as a whole, by code: the span exporter's, then the
	// metric exporter's (its views' and its metrics' merged).
	s.refusals = s.e.spans.Counters().Refusals.Snapshot(s.refusals[:0])
	spanRefusals := len(s.refusals)
	s.refusals = s.e.views.Counters().Refusals.Snapshot(s.refusals)
	s.refusals = s.e.metrics.Counters().Refusals.Snapshot(s.refusals)
	metricRefusals := mergeCodes(s.refusals[spanRefusals:])
	s.refusals = s.refusals[:spanRefusals+len(metricRefusals)]

	const metrics, series = 8, 15
	ms := make([]metricdata.Metric, metrics-1)
	out := make([]*metricdata.Metric, metrics-1, metrics)
	n := series + len(s.refusals)
	tss := make([]metricdata.TimeSeries, n)
	ptrs := make([]*metricdata.TimeSeries, n)
	pts := make([]metricdata.Point, n)
	i, k := 0, 0
	var m *metricdata.Metric
	begin := func(name, desc, unit string, typ metricdata.Type, keys []metricdata.LabelKey) {
		m = &ms[i]
		m.Descriptor = metricdata.Descriptor{Name: name, Description: desc, Unit: metricdata.Unit(unit), Type: typ, LabelKeys: keys}
		m.TimeSeries = ptrs[k:k:n]
		out[i] = m
		i++
	}
	series1 := func(vals []metricdata.LabelValue, v int64) {
		ts := &tss[k]
		ts.LabelValues = vals
		pts[k] = metricdata.Point{Time: now, Value: v}
		ts.Points = pts[k : k+1 : k+1]
		if m.Descriptor.Type == metricdata.TypeCumulativeInt64 {
			ts.StartTime = s.since
		}
		ptrs[k] = ts
		k++
		m.TimeSeries = m.TimeSeries[:len(m.TimeSeries)+1]
	}
	gauge, counter := metricdata.TypeGaugeInt64, metricdata.TypeCumulativeInt64
	begin(nameSpanInflight, "Spans handed to the transport with no outcome yet", unitSpan, gauge, s.expKeys)
	series1(s.span.vals, int64(st.SpansInFlight))
	begin(nameSpanExported, "Spans whose export ended, by outcome", unitSpan, counter, s.expKeysErr)
	series1(s.spanErr[""], int64(st.SpansExported))
	series1(s.spanErr[errTypeRejected], int64(st.SpansRejected-st.SpansRefused))
	series1(s.spanErr[errTypeOversize], int64(st.SpansDroppedOversize))
	for _, r := range s.refusals[:spanRefusals] {
		series1(s.errLabels(&s.span, false, r.Code), int64(r.Items))
	}
	begin(namePointInflight, "Data points (of views and ExportMetrics' metrics) handed to the transport with no outcome yet", unitDataPoint, gauge, s.expKeys)
	series1(s.metric.vals, int64(st.PointsInFlight))
	begin(namePointExported, "Data points (of views and ExportMetrics' metrics) whose export ended, by outcome", unitDataPoint, counter, s.expKeysErr)
	series1(s.metricErr[""], int64(st.PointsExported))
	series1(s.metricErr[errTypeRejected], int64(st.PointsRejected))
	series1(s.metricErr[errTypeOversize], int64(st.PointsDroppedOversize))
	series1(s.metricErr[errTypeInvalid], int64(st.PointsDroppedInvalid))
	for _, r := range metricRefusals {
		series1(s.errLabels(&s.metric, true, r.Code), int64(r.Points))
	}
	begin(nameQueueSize, "Spans in the ring and the batch", unitSpan, gauge, s.procKeys)
	series1(s.proc, int64(st.SpansQueued-st.SpansInFlight))
	begin(nameQueueCapacity, "The span ring's capacity", unitSpan, gauge, s.procKeys)
	series1(s.proc, s.capacity)
	begin(nameSpanProcessed, "Spans whose processing ended, by outcome", unitSpan, counter, s.procKeysErr)
	series1(s.procErr[""], int64(st.SpansExported+st.SpansRejected+st.SpansDroppedOversize))
	series1(s.procErr[errTypeQueueFull], int64(st.SpansDroppedFull))
	series1(s.procErr[errTypeShutdown], int64(st.SpansDroppedNotRunning))
	series1(s.procErr[errTypeDroppedStop], int64(st.SpansDroppedAtStop))
	return append(out, s.durations(now))
}

// mergeCodes sums the refusals of equal codes (two pipelines' tables) in
// place and returns the merged ones.
func mergeCodes(rs []stream.Refusal) []stream.Refusal {
	out := rs[:0]
	for _, r := range rs {
		j := 0
		for j < len(out) && out[j].Code != r.Code {
			j++
		}
		if j == len(out) {
			out = append(out, r)
			continue
		}
		out[j].Items += r.Items
		out[j].Points += r.Points
	}
	return out
}

// codeCount is the number of gRPC status codes.
const codeCount = 17

// codeNames are the gRPC status codes' names as the protocol spells them,
// for rpc.response.status_code and error.type.
var codeNames = [codeCount]string{"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
	"UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"}

// durLabelsFor are the label values of ex's duration series for code,
// made once per exporter and code. Called with snapMu held.
func (s *selfMetrics) durLabelsFor(ex *exporterInfo, metric bool, code int) []metricdata.LabelValue {
	k := exporterCode{metric, code}
	v, ok := s.durLabels[k]
	if ok {
		return v
	}
	v = make([]metricdata.LabelValue, len(s.durKeys))
	copy(v, ex.vals)
	if et := ex.kind.errorType(code); et != "" {
		v[len(ex.vals)] = metricdata.NewLabelValue(et)
	}
	if st, ok := ex.kind.status(code); ok {
		at := s.rpcAt
		if ex.kind == kindOTLPHTTP {
			at = s.httpAt
		}
		v[at] = metricdata.NewLabelValue(st)
	}
	s.durLabels[k] = v
	return v
}

// durations is otel.sdk.exporter.operation.duration: one cumulative
// distribution series per exporter and final status code observed, from
// the transports' timings (the metric exporter's series merge its views'
// and its metrics' exports). Called with snapMu held.
func (s *selfMetrics) durations(now time.Time) *metricdata.Metric {
	m := &metricdata.Metric{Descriptor: metricdata.Descriptor{Name: nameDuration,
		Description: "Duration of each export (all its attempts)", Unit: "s", Type: metricdata.TypeCumulativeDistribution, LabelKeys: s.durKeys}}
	for x, cs := range [][]*stream.Counters{{s.e.spans.Counters()}, {s.e.views.Counters(), s.e.metrics.Counters()}} {
		ex := &s.span
		if x == 1 {
			ex = &s.metric
		}
		byCode := map[int]*metricdata.Distribution{} // one series per code, the exporter's pipelines merged
		for _, c := range cs {
			s.snaps = c.Durations.Snapshot(s.snaps[:0])
			for _, d := range s.snaps {
				dist := byCode[d.Code]
				if dist == nil {
					labels := s.durLabelsFor(ex, x == 1, d.Code)
					dist = &metricdata.Distribution{BucketOptions: s.bounds, Buckets: make([]metricdata.Bucket, len(d.Buckets))}
					byCode[d.Code] = dist
					m.TimeSeries = append(m.TimeSeries, &metricdata.TimeSeries{LabelValues: labels, StartTime: s.since,
						Points: []metricdata.Point{metricdata.NewDistributionPoint(now, dist)}})
				}
				dist.Count += int64(d.Count)
				dist.Sum += d.Sum.Seconds()
				for i, n := range d.Buckets {
					dist.Buckets[i].Count += int64(n)
				}
			}
		}
	}
	return m
}

// start registers the producer and starts the reporting goroutine, as
// configured.
func (s *selfMetrics) start(ctx context.Context, wg *sync.WaitGroup) {
	if s.producer {
		metricproducer.GlobalManager().AddProducer(s)
	}
	if s.period <= 0 {
		return
	}
	s.quit, s.done = make(chan struct{}), make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(s.done)
		t := time.NewTicker(s.period)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				s.report()
			case <-s.quit:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
}

// report queues one report on the exporter's own metrics path. The
// metrics count themselves only once exported (in the next report), and
// nothing here calls back into a producer: no recursion.
func (s *selfMetrics) report() { _ = s.e.ExportMetrics(context.Background(), s.Read()) }

// stop removes the producer and ends the reporting goroutine, queueing a
// last report (Stop then sends it with everything queued).
func (s *selfMetrics) stop() {
	if s.producer {
		metricproducer.GlobalManager().DeleteProducer(s)
	}
	if s.quit != nil {
		close(s.quit)
		<-s.done
		s.report()
	}
}

// SelfMetrics is the exporter's self-metrics producer (nil without
// WithSelfMetrics), for reading them directly or registering them with a
// manager of one's own.
func (e *Exporter) SelfMetrics() metricproducer.Producer {
	if e.self == nil {
		return nil
	}
	return e.self
}
