package ocagent

// Stats are the exporter's own monotonic counters. Every span given to
// ExportSpan is, at any time, exactly one of: queued, exported, rejected, or
// dropped for one of the reasons below (and likewise every view). A
// snapshot taken while spans move may count one that is moving in two
// places; it never misses one (it reads in their direction of travel), and
// at rest the sum is exact.
type Stats struct {
	SpansExported            uint64 // handed to a stream (OpenCensus) or acknowledged by the agent (OTLP)
	SpansQueued              int    // in the ring, the batch, or held by the transport for a resend
	SpansInFlight            int    // of SpansQueued, held by the transport: sent or being sent with no outcome yet (OTLP: unanswered; OpenCensus: in frames no stream accepted)
	SpansDroppedFull         uint64 // the ring was full
	SpansDroppedNotRunning   uint64 // ExportSpan before Start or after Stop
	SpansDroppedOversize     uint64 // one span alone exceeded WithMaxBatchBytes, or gRPC refused a batch for its size (views count as invalid)
	SpansDroppedAtStop       uint64 // still queued, or never accepted by a stream (OTLP: never written, or refused at each attempt), when Stop's deadline passed
	SpansRejected            uint64 // refused by the agent (OTLP: partial success, or an error that must not be retried)
	SpansRefused             uint64 // of SpansRejected, in requests refused as a whole (a final status; the rest were refused by partial successes)
	ViewsExported            uint64 // views handed to the agent as metrics
	ViewsDroppedFull         uint64 // the view ring was full
	ViewsInFlight            int    // views held by the metrics transport, no outcome yet
	ViewsDroppedNotRunning   uint64 // ExportView before Start or after Stop
	ViewsDroppedInvalid      uint64 // nil View, Measure or Aggregation, unknown aggregation, rows not matching it, or a view none of whose rows fits WithMaxBatchBytes
	ViewsDroppedAtStop       uint64 // still queued when Stop's deadline passed
	ViewsRejected            uint64 // OTLP: views of a request the agent refused as a whole
	PointsExported           uint64 // data points (a view's rows, a metric's points) of the views and metrics exported, less those PointsRejected counts
	PointsInFlight           int    // data points of ViewsInFlight and MetricsInFlight
	PointsRejected           uint64 // OTLP: data points the agent refused (partial success), of views and of ExportMetrics' metrics
	PointsRefused            uint64 // OTLP: data points of the views and metrics in requests the agent refused as a whole (ViewsRejected, MetricsRejected)
	PointsDroppedOversize    uint64 // data points of rows (time series) of a view or metric each alone over WithMaxBatchBytes (a view over it is split by rows across requests; these cannot be), and of requests refused for their size
	PointsDroppedInvalid     uint64 // data points of the views and metrics ViewsDroppedInvalid and MetricsDroppedInvalid count as refused by the converter
	MetricsExported          uint64 // ExportMetrics' metrics handed to a stream (OpenCensus) or acknowledged (OTLP)
	MetricsQueued            int    // in the metric ring, its batch, or held by the transport
	MetricsInFlight          int    // of MetricsQueued, held by the transport
	MetricsDroppedFull       uint64 // the metric ring was full
	MetricsDroppedNotRunning uint64 // ExportMetrics before Start or after Stop
	MetricsDroppedInvalid    uint64 // a nil time series, a point not matching the type, a summary, OTLP gauge distribution, or a metric none of whose time series fits WithMaxBatchBytes
	MetricsDroppedAtStop     uint64 // still queued when Stop's deadline passed
	MetricsRejected          uint64 // OTLP: metrics of a request the agent refused as a whole
	MetricsResent            uint64
	MetricsInDoubt           uint64
	SeriesDroppedOversize    uint64 // time series of a metric each alone over WithMaxBatchBytes (the metric is split across requests; these cannot be)
	Batches                  uint64 // span batches exported
	Bytes                    uint64 // encoded span batch bytes exported (before compression)
	SendFailures             uint64 // failed span sends or calls (each batch is retried)
	SpansResent              uint64 // sent again after a stream broke or a call whose request was written failed (the agent may have them twice)
	SpansInDoubt             uint64 // exported, but not confirmed read by the agent when Stop ended (its stream broke, or Stop's deadline cut it; OTLP: written, never answered)
	ViewsResent              uint64
	ViewsInDoubt             uint64
	Reconnects               uint64 // trace streams opened after the first (rotations included)
	Rotations                uint64 // trace streams ended cleanly and confirmed by the agent (WithMaxStreamAge, WithConfirmBytes; Flush with WithFlushConfirmed)
	ConfigUpdates            uint64 // sampler configurations applied from the agent
	LastError                error  // the trace transport's last error; nil while connected
	ConfigError              error  // the error that ended the last Config stream ("unimplemented" from an OpenTelemetry Collector)
	ViewsLastError           error  // the last rows dropped as too large, naming their view; nil if none
}

// Stats returns a snapshot of the exporter's counters.
func (e *Exporter) Stats() Stats {
	sp, vw, mt := e.spans.Stats(), e.views.Stats(), e.metrics.Stats()
	s := Stats{
		SpansExported:            sp.Exported,
		SpansQueued:              sp.Queued,
		SpansInFlight:            sp.InFlight,
		ViewsInFlight:            vw.InFlight,
		MetricsInFlight:          mt.InFlight,
		SpansDroppedFull:         sp.DroppedFull,
		SpansDroppedNotRunning:   sp.DroppedNotRunning,
		SpansDroppedOversize:     e.spans.oversize() + sp.Oversize,
		SpansDroppedAtStop:       sp.DroppedAtStop,
		SpansRejected:            sp.Rejected,
		SpansRefused:             sp.Refused,
		PointsExported:           vw.PointsExported + mt.PointsExported,
		PointsInFlight:           vw.InFlightPoints + mt.InFlightPoints,
		PointsRefused:            vw.PointsRefused + mt.PointsRefused,
		PointsDroppedInvalid:     e.views.invalidPts() + e.metrics.invalidPts(),
		ViewsExported:            vw.Exported,
		ViewsDroppedFull:         vw.DroppedFull,
		ViewsDroppedNotRunning:   vw.DroppedNotRunning,
		ViewsDroppedInvalid:      e.views.invalid() + e.views.oversize() + vw.Oversize,
		ViewsDroppedAtStop:       vw.DroppedAtStop,
		ViewsRejected:            vw.Rejected,
		PointsRejected:           vw.PointsRejected + mt.PointsRejected,
		MetricsExported:          mt.Exported,
		MetricsQueued:            mt.Queued,
		MetricsDroppedFull:       mt.DroppedFull,
		MetricsDroppedNotRunning: mt.DroppedNotRunning,
		MetricsDroppedInvalid:    e.metrics.invalid() + e.metrics.oversize() + mt.Oversize,
		MetricsDroppedAtStop:     mt.DroppedAtStop,
		MetricsRejected:          mt.Rejected,
		MetricsResent:            mt.Resent,
		MetricsInDoubt:           mt.InDoubt,
		SeriesDroppedOversize:    e.metrics.droppedRows(),
		PointsDroppedOversize:    e.views.droppedPts() + e.metrics.droppedPts() + vw.PointsOversize + mt.PointsOversize,
		ViewsLastError:           e.views.lastDrop(),
		Batches:                  sp.Batches,
		Bytes:                    sp.Bytes,
		SendFailures:             sp.SendFailures,
		SpansResent:              sp.Resent,
		SpansInDoubt:             sp.InDoubt,
		ViewsResent:              vw.Resent,
		ViewsInDoubt:             vw.InDoubt,
		Reconnects:               sp.Reconnects,
		Rotations:                sp.Rotations,
		LastError:                sp.LastError,
	}
	if cs := e.config.Load(); cs != nil {
		s.ConfigUpdates = cs.Applied()
		s.ConfigError = cs.LastError()
	}
	return s
}
