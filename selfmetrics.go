package ocagent

import (
	"context"
	"net"
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

// Component types. OTLP output uses the semantic conventions' own values.
// OpenCensus output has none defined: the names follow their pattern
// <protocol>_<transport>_<signal>_exporter (otlp_grpc_span_exporter,
// zipkin_http_span_exporter), so a dashboard tells the two protocols apart
// and groups them the same way. The ring, batch and scheduler in front of
// either are what OpenTelemetry's batching span processor is, so they
// report as one.
const (
	typeOCSpanExporter     = "opencensus_grpc_span_exporter"
	typeOCMetricExporter   = "opencensus_grpc_metric_exporter"
	typeOTLPSpanExporter   = "otlp_grpc_span_exporter"
	typeOTLPMetricExporter = "otlp_grpc_metric_exporter"
	typeSpanProcessor      = "batching_span_processor"
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
)

// selfMetrics is the exporter's metricproducer.Producer.
type selfMetrics struct {
	e     *Exporter
	since time.Time // the counters' start time

	// Label keys and the constant label values, built once and shared by
	// every Read (metricdata consumers only read them).
	expKeys, expKeysErr, procKeys, procKeysErr []metricdata.LabelKey
	spanExp, metricExp, proc                   []metricdata.LabelValue // without error.type
	spanErr, metricErr, procErr                map[string][]metricdata.LabelValue
	capacity                                   int64

	otlp    bool                                  // operation.duration: OTLP calls only
	durKeys []metricdata.LabelKey                 // exporter keys, error.type, rpc.response.status_code
	durVals [2][codeCount][]metricdata.LabelValue // by exporter (span, metric) and code
	bounds  *metricdata.BucketOptions
	snaps   []stream.DurationSnapshot // durations' scratch, guarded by snapMu (Read may be called from any goroutine)
	snapMu  sync.Mutex

	producer bool
	period   time.Duration
	quit     chan struct{}
	done     chan struct{}
}

func newSelfMetrics(e *Exporter) *selfMetrics {
	s := &selfMetrics{e: e, since: time.Now(), producer: e.cfg.selfProducer, period: e.cfg.selfPeriod,
		capacity: int64(e.spans.Ring().Cap())}
	spanType, metricType := typeOCSpanExporter, typeOCMetricExporter
	if e.cfg.protocol == ProtocolOTLP {
		spanType, metricType = typeOTLPSpanExporter, typeOTLPMetricExporter
	}
	s.expKeys = []metricdata.LabelKey{{Key: attrComponentName}, {Key: attrComponentType}, {Key: attrServerAddress}, {Key: attrServerPort}}
	s.expKeysErr = append(s.expKeys[:len(s.expKeys):len(s.expKeys)], metricdata.LabelKey{Key: attrErrorType})
	s.procKeys = []metricdata.LabelKey{{Key: attrComponentName}, {Key: attrComponentType}}
	s.procKeysErr = append(s.procKeys[:2:2], metricdata.LabelKey{Key: attrErrorType})
	exp := func(typ string, ep *endpoint) []metricdata.LabelValue {
		host, port, err := net.SplitHostPort(ep.address)
		if err != nil {
			host, port = ep.address, ""
		}
		return []metricdata.LabelValue{metricdata.NewLabelValue(componentName(typ)), metricdata.NewLabelValue(typ),
			metricdata.NewLabelValue(host), {Value: port, Present: port != ""}}
	}
	s.spanExp, s.metricExp = exp(spanType, e.eps[0]), exp(metricType, e.eps[1])
	s.proc = []metricdata.LabelValue{metricdata.NewLabelValue(componentName(typeSpanProcessor)), metricdata.NewLabelValue(typeSpanProcessor)}
	withErr := func(base []metricdata.LabelValue, types ...string) map[string][]metricdata.LabelValue {
		m := make(map[string][]metricdata.LabelValue, len(types)+1)
		m[""] = append(base[:len(base):len(base)], metricdata.LabelValue{}) // success: error.type absent
		for _, t := range types {
			m[t] = append(base[:len(base):len(base)], metricdata.NewLabelValue(t))
		}
		return m
	}
	s.spanErr = withErr(s.spanExp, errTypeRejected, errTypeOversize)
	s.metricErr = withErr(s.metricExp, errTypeRejected, errTypeInvalid)
	s.procErr = withErr(s.proc, errTypeQueueFull, errTypeShutdown, errTypeDroppedStop)
	if e.cfg.protocol == ProtocolOTLP {
		s.otlp = true
		s.durKeys = append(s.expKeysErr[:len(s.expKeysErr):len(s.expKeysErr)], metricdata.LabelKey{Key: attrRPCStatus})
		for x, base := range [][]metricdata.LabelValue{s.spanExp, s.metricExp} {
			for c := range codeCount {
				v := append(base[:len(base):len(base)], metricdata.LabelValue{}, metricdata.NewLabelValue(codeNames[c]))
				if c != int(codes.OK) {
					v[len(base)] = metricdata.NewLabelValue(codeNames[c])
				}
				s.durVals[x][c] = v
			}
		}
		s.bounds = &metricdata.BucketOptions{Bounds: stream.DurationBounds[:]}
	}
	return s
}

// Read implements metricproducer.Producer: the self-metrics from one Stats
// snapshot, in fresh metricdata (a consumer, this exporter included, may
// keep them), about 40 small allocations per call (README: "Self-metrics").
func (s *selfMetrics) Read() []*metricdata.Metric { return s.read(s.e.Stats(), time.Now()) }

// read builds the metrics of st at now. Everything of one call comes from
// a few blocks: the metrics, their time series, their points.
func (s *selfMetrics) read(st Stats, now time.Time) []*metricdata.Metric {
	const metrics, series = 7, 15
	ms := make([]metricdata.Metric, metrics)
	out := make([]*metricdata.Metric, metrics, metrics+1)
	tss := make([]metricdata.TimeSeries, series)
	ptrs := make([]*metricdata.TimeSeries, series)
	pts := make([]metricdata.Point, series)
	i, k := 0, 0
	add := func(name, desc, unit string, typ metricdata.Type, keys []metricdata.LabelKey, vals ...any) {
		m := &ms[i]
		m.Descriptor = metricdata.Descriptor{Name: name, Description: desc, Unit: metricdata.Unit(unit), Type: typ, LabelKeys: keys}
		first := k
		for j := 0; j < len(vals); j += 2 {
			ts := &tss[k]
			ts.LabelValues = vals[j].([]metricdata.LabelValue)
			pts[k] = metricdata.Point{Time: now, Value: vals[j+1].(int64)}
			ts.Points = pts[k : k+1 : k+1]
			if typ == metricdata.TypeCumulativeInt64 {
				ts.StartTime = s.since
			}
			ptrs[k] = ts
			k++
		}
		m.TimeSeries = ptrs[first:k:k]
		out[i] = m
		i++
	}
	gauge, counter := metricdata.TypeGaugeInt64, metricdata.TypeCumulativeInt64
	add(nameSpanInflight, "Spans handed to the transport with no outcome yet", unitSpan, gauge, s.expKeys,
		s.spanExp, int64(st.SpansInFlight))
	add(nameSpanExported, "Spans whose export ended, by outcome", unitSpan, counter, s.expKeysErr,
		s.spanErr[""], int64(st.SpansExported),
		s.spanErr[errTypeRejected], int64(st.SpansRejected),
		s.spanErr[errTypeOversize], int64(st.SpansDroppedOversize))
	add(namePointInflight, "Metrics (views and ExportMetrics' metrics) handed to the transport with no outcome yet", unitDataPoint, gauge, s.expKeys,
		s.metricExp, int64(st.ViewsInFlight+st.MetricsInFlight))
	add(namePointExported, "Metrics (views and ExportMetrics' metrics) whose export ended, by outcome", unitDataPoint, counter, s.expKeysErr,
		s.metricErr[""], int64(st.ViewsExported+st.MetricsExported),
		s.metricErr[errTypeRejected], int64(st.ViewsRejected+st.MetricsRejected+st.PointsRejected),
		s.metricErr[errTypeInvalid], int64(st.ViewsDroppedInvalid+st.MetricsDroppedInvalid))
	add(nameQueueSize, "Spans in the ring and the batch", unitSpan, gauge, s.procKeys,
		s.proc, int64(st.SpansQueued-st.SpansInFlight))
	add(nameQueueCapacity, "The span ring's capacity", unitSpan, gauge, s.procKeys,
		s.proc, s.capacity)
	add(nameSpanProcessed, "Spans whose processing ended, by outcome", unitSpan, counter, s.procKeysErr,
		s.procErr[""], int64(st.SpansExported+st.SpansRejected+st.SpansDroppedOversize),
		s.procErr[errTypeQueueFull], int64(st.SpansDroppedFull),
		s.procErr[errTypeShutdown], int64(st.SpansDroppedNotRunning),
		s.procErr[errTypeDroppedStop], int64(st.SpansDroppedAtStop))
	if s.otlp {
		out = append(out, s.durations(now))
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

// durations is otel.sdk.exporter.operation.duration: one cumulative
// distribution series per exporter and final status code observed, from
// the OTLP transports' call timings (the metric exporter's series merge its
// views' and its metrics' calls).
func (s *selfMetrics) durations(now time.Time) *metricdata.Metric {
	m := &metricdata.Metric{Descriptor: metricdata.Descriptor{Name: nameDuration,
		Description: "Duration of each export (all its attempts)", Unit: "s", Type: metricdata.TypeCumulativeDistribution, LabelKeys: s.durKeys}}
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	for x, cs := range [][]*stream.Counters{{s.e.spans.Counters()}, {s.e.views.Counters(), s.e.metrics.Counters()}} {
		var byCode [codeCount]*metricdata.Distribution
		for _, c := range cs {
			s.snaps = c.Durations.Snapshot(s.snaps[:0])
			for _, d := range s.snaps {
				dist := byCode[d.Code]
				if dist == nil {
					dist = &metricdata.Distribution{BucketOptions: s.bounds, Buckets: make([]metricdata.Bucket, len(d.Buckets))}
					byCode[d.Code] = dist
					m.TimeSeries = append(m.TimeSeries, &metricdata.TimeSeries{LabelValues: s.durVals[x][d.Code], StartTime: s.since,
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
