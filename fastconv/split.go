package fastconv

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"

	ocmetricspb "github.com/zerocensus/ocagent/internal/ocproto/metrics/v1"
	otlpmetricspb "github.com/zerocensus/ocagent/internal/otlpproto/metrics/v1"
)

// A view whose metric is larger than one request may carry is sent in parts:
// each part is the same metric (descriptor, name, unit, type, temporality)
// with a run of its rows (OpenCensus time series, OTLP data points), which
// both data models allow, and which a receiver merges back into one metric.
// The rows' sizes are measured once, when the split begins; each part then
// takes as many rows as fit. A row that alone does not fit in a part cannot
// be split: it is dropped and counted (DroppedRows), and the last such drop
// is kept as an error naming the view (LastDrop).

// splitState is the view being split: the sizes of its rows, where the next
// part starts, and the last row that fits a part alone.
type splitState struct {
	pending  bool // Encode converted a view; a first Next measures it for parts
	large    bool // the last view was larger than a request
	measured bool // rows and header hold the sizes of the current view
	active   bool
	rows     []int // encoded size of each row, as a field of its parent
	header   int   // the metric's size with no rows, plus room for a longer length prefix
	next     int
	lastFit  int // -1: no row fits
	name     string
}

// rowsView is the part of a metric message the split works on.
type rowsView interface {
	n() int
	size(i int) int
	show(a, b int)       // the message holds rows [a, b) only
	points(a, b int) int // the data points in rows [a, b)
	restore()            // the message holds every row again
}

// ocRows are an OpenCensus metric's time series.
type ocRows struct {
	m   *ocmetricspb.Metric
	all []*ocmetricspb.TimeSeries
}

func (r *ocRows) n() int { return len(r.all) }
func (r *ocRows) size(i int) int {
	return protowire.SizeTag(2) + protowire.SizeBytes(r.all[i].SizeVT())
}
func (r *ocRows) show(a, b int) { r.m.Timeseries = r.all[a:b] }
func (r *ocRows) points(a, b int) int {
	n := 0
	for _, ts := range r.all[a:b] {
		n += len(ts.Points)
	}
	return n
}
func (r *ocRows) restore() { r.m.Timeseries = r.all }

// otlpRows are an OTLP metric's data points, in its gauge, sum or histogram.
type otlpRows struct {
	nums  *[]*otlpmetricspb.NumberDataPoint
	hists *[]*otlpmetricspb.HistogramDataPoint
	allN  []*otlpmetricspb.NumberDataPoint
	allH  []*otlpmetricspb.HistogramDataPoint
}

func (r *otlpRows) n() int {
	if r.hists != nil {
		return len(r.allH)
	}
	return len(r.allN)
}

func (r *otlpRows) size(i int) int {
	if r.hists != nil {
		return protowire.SizeTag(1) + protowire.SizeBytes(r.allH[i].SizeVT())
	}
	return protowire.SizeTag(1) + protowire.SizeBytes(r.allN[i].SizeVT())
}

func (r *otlpRows) points(a, b int) int { return b - a }

func (r *otlpRows) show(a, b int) {
	if r.hists != nil {
		*r.hists = r.allH[a:b]
	} else {
		*r.nums = r.allN[a:b]
	}
}

func (r *otlpRows) restore() {
	if r.hists != nil {
		*r.hists = r.allH
	} else {
		*r.nums = r.allN
	}
}

// rows returns the rows of the encoder's current metric.
func (e *ViewEncoder) rows() rowsView {
	if e.otlp == nil {
		e.ocr = ocRows{m: e.ocm, all: e.ocm.Timeseries}
		return &e.ocr
	}
	e.otr = otlpRows{}
	switch d := e.otm.Data.(type) {
	case *otlpmetricspb.Metric_Gauge:
		e.otr.nums, e.otr.allN = &d.Gauge.DataPoints, d.Gauge.DataPoints
	case *otlpmetricspb.Metric_Sum:
		e.otr.nums, e.otr.allN = &d.Sum.DataPoints, d.Sum.DataPoints
	case *otlpmetricspb.Metric_Histogram:
		e.otr.hists, e.otr.allH = &d.Histogram.DataPoints, d.Histogram.DataPoints
	default:
		var none []*otlpmetricspb.NumberDataPoint
		e.otr.nums = &none
	}
	return &e.otr
}

func (e *ViewEncoder) msg() vtMessage {
	if e.otlp != nil {
		return e.otm
	}
	return e.ocm
}

// measure sizes the rows of the metric just converted, and returns its
// whole size.
func (e *ViewEncoder) measure() int {
	s := &e.split
	r := e.rows()
	r.show(0, 0)
	// Room for a longer length prefix of the OTLP gauge, sum or histogram
	// that holds the rows: at most 4 more bytes than its empty one (1).
	s.header = e.msg().SizeVT() + 4
	r.restore()
	s.rows = s.rows[:0]
	total := s.header - 4
	for i := range r.n() {
		sz := r.size(i)
		s.rows = append(s.rows, sz)
		total += sz
	}
	s.measured = true
	return total
}

// startSplit plans parts of at most limit bytes.
func (e *ViewEncoder) startSplit(limit int) {
	s := &e.split
	if !s.measured {
		e.measure()
	}
	s.lastFit = -1
	for i, sz := range s.rows {
		if s.header+sz <= limit {
			s.lastFit = i
		}
	}
	s.pending, s.active, s.next = false, true, 0
}

// Next encodes the next part of the view last given to Encode, which was
// too large for a request (it implements stream.Splitter): the metric with as many of the
// remaining rows as fit in max bytes, which must be the same for every part
// of a view. enc is nil when no remaining row fits
// (each is then dropped and counted); last reports that nothing of the view
// is left to send. enc belongs to the encoder until its next call.
func (e *ViewEncoder) Next(max int) (enc []byte, last bool) {
	s := &e.split
	if s.pending {
		e.startSplit(max)
	}
	if !s.active {
		return nil, true
	}
	r := e.rows()
	for s.next <= s.lastFit {
		a, total := s.next, s.header
		b := a
		for b < len(s.rows) && total+s.rows[b] <= max {
			total += s.rows[b]
			b++
		}
		if b == a { // this row alone does not fit
			e.drop(r, a, a+1)
			s.next++
			continue
		}
		s.next = b
		r.show(a, b)
		enc, _ = e.tail.marshal(e.msg(), max)
		r.restore()
		e.points = r.points(a, b)
		if s.next > s.lastFit {
			e.drop(r, s.next, len(s.rows))
			s.active = false
		}
		return enc, !s.active
	}
	e.drop(r, s.next, len(s.rows))
	s.active = false
	e.points = 0
	return nil, true
}

// drop counts rows [a, b) of r as dropped, each alone too large.
func (e *ViewEncoder) drop(r rowsView, a, b int) {
	rows := b - a
	if rows <= 0 {
		return
	}
	e.droppedPts.Add(uint64(r.points(a, b)))
	e.droppedRows.Add(uint64(rows))
	err := fmt.Errorf("fastconv: metric %q: %d rows (time series) each larger alone than a request may carry, dropped", e.split.name, rows)
	e.lastDrop.Store(&err)
}

// DroppedRows counts the rows dropped because one alone was larger than a
// request may carry. Safe from any goroutine.
func (e *ViewEncoder) DroppedRows() uint64 { return e.droppedRows.Load() }

// DroppedPoints counts the data points in the rows DroppedRows counts (a
// view's row is one; an OpenCensus metricdata series may hold several).
// Safe from any goroutine.
func (e *ViewEncoder) DroppedPoints() uint64 { return e.droppedPts.Load() }

// Points is the number of data points in what the last Encode or Next
// returned (0 when it returned nothing), or, after an Encode that failed,
// in the view or metric it was given. It implements stream.Weigher, so
// that a stream.Batch counts them for the metric_data_point self-metrics.
func (e *ViewEncoder) Points() int { return e.points }

// LastDrop is the error of the last such drop, naming its view, or nil.
// Safe from any goroutine.
func (e *ViewEncoder) LastDrop() error {
	if p := e.lastDrop.Load(); p != nil {
		return *p
	}
	return nil
}
