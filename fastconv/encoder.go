package fastconv

import (
	"fmt"
	"sync/atomic"

	"go.opencensus.io/stats/view"
	"go.opencensus.io/trace"

	ocmetricspb "github.com/zerocensus/ocagent/internal/ocproto/metrics/v1"
	octracepb "github.com/zerocensus/ocagent/internal/ocproto/trace/v1"
	otlpmetricspb "github.com/zerocensus/ocagent/internal/otlpproto/metrics/v1"
	otlptracepb "github.com/zerocensus/ocagent/internal/otlpproto/trace/v1"
)

// Protocol selects the wire format an encoder writes.
type Protocol uint8

const (
	// OpenCensus encodes opencensus.proto.trace.v1.Span and
	// opencensus.proto.metrics.v1.Metric, as the OpenCensus agent protocol
	// carries them.
	OpenCensus Protocol = iota
	// OTLP encodes opentelemetry.proto.trace.v1.Span and
	// opentelemetry.proto.metrics.v1.Metric.
	OTLP
)

func (p Protocol) String() string {
	switch p {
	case OpenCensus:
		return "OpenCensus"
	case OTLP:
		return "OTLP"
	}
	return fmt.Sprintf("Protocol(%d)", uint8(p))
}

// ScratchBytes is the initial size of the buffer each item is encoded into;
// it grows to fit larger items (a span with hundreds of attributes or
// events, a view of thousands of rows) after the first.
const ScratchBytes = 64 << 10

// SpanOptions are the limits of a SpanEncoder.
type SpanOptions struct {
	// MaxAnnotations and MaxMessageEvents cap the time events kept per span
	// (the rest are counted as dropped); <= 0 selects
	// DefaultAnnotationEventsPerSpan and DefaultMessageEventsPerSpan, as
	// upstream's SpanConfig.
	MaxAnnotations, MaxMessageEvents int
}

// SpanEncoder converts and encodes spans. The zero value is not usable; call
// NewSpanEncoder. See the package doc for ownership.
type SpanEncoder struct {
	oc   *ocSpans
	otlp *otlpSpans
	ocm  *octracepb.Span
	otm  *otlptracepb.Span
	tail tail
}

// NewSpanEncoder returns an encoder of spans in protocol p.
func NewSpanEncoder(p Protocol, o SpanOptions) *SpanEncoder {
	e := &SpanEncoder{tail: newTail()}
	switch p {
	case OTLP:
		e.otlp, e.otm = newOTLPSpans(o.MaxAnnotations, o.MaxMessageEvents), otlptracepb.SpanFromVTPool()
	default:
		e.oc, e.ocm = newOCSpans(o.MaxAnnotations, o.MaxMessageEvents), octracepb.SpanFromVTPool()
	}
	return e
}

// Encode converts sd and returns its encoding and size. When the encoding
// would be larger than max bytes, it returns a nil enc and the size it would
// have, without encoding. A span always converts: err is always nil (the
// signature is that of stream.Encoder). enc is valid until the next call.
func (e *SpanEncoder) Encode(sd *trace.SpanData, max int) (enc []byte, size int, err error) {
	if e.otlp != nil {
		e.otlp.Convert(e.otm, sd)
		enc, size = e.tail.marshal(e.otm, max)
	} else {
		e.oc.Convert(e.ocm, sd)
		enc, size = e.tail.marshal(e.ocm, max)
	}
	return enc, size, nil
}

// Append appends the encoding of sd to dst.
func (e *SpanEncoder) Append(dst []byte, sd *trace.SpanData) []byte {
	enc, _, _ := e.Encode(sd, maxInt)
	return append(dst, enc...)
}

// ViewEncoder converts and encodes views as metrics. The zero value is not
// usable; call NewViewEncoder. See the package doc for ownership.
type ViewEncoder struct {
	prefix string
	oc     *ocViews
	otlp   *otlpViews
	ocm    *ocmetricspb.Metric
	otm    *otlpmetricspb.Metric
	tail   tail

	split       splitState
	ocr         ocRows
	otr         otlpRows
	points      int // in what the last Encode or Next returned (Points)
	droppedRows atomic.Uint64
	droppedPts  atomic.Uint64
	lastDrop    atomic.Pointer[error]
}

// NewViewEncoder returns an encoder of views in protocol p; a non-empty
// prefix is prepended to each metric name with a "/", as upstream's
// WithMetricNamePrefix.
func NewViewEncoder(p Protocol, prefix string) *ViewEncoder {
	e := &ViewEncoder{prefix: prefix, tail: newTail()}
	switch p {
	case OTLP:
		e.otlp, e.otm = newOTLPViews(), otlpmetricspb.MetricFromVTPool()
	default:
		e.oc, e.ocm = newOCViews(), ocmetricspb.MetricFromVTPool()
	}
	return e
}

// Encode converts vd and returns its encoding and size, as
// SpanEncoder.Encode. err reports a view that cannot be converted (nil
// View, Measure or Aggregation, an unknown aggregation, rows that do not
// match it); nothing is encoded then. A view too large for a request can
// then be sent in parts of its rows with Next.
func (e *ViewEncoder) Encode(vd *view.Data, max int) (enc []byte, size int, err error) {
	e.split.active, e.split.pending, e.split.measured = false, false, false
	if e.otlp != nil {
		err = e.otlp.Convert(e.otm, vd, e.prefix)
	} else {
		err = e.oc.Convert(e.ocm, vd, e.prefix)
	}
	if err != nil {
		e.points = 0
		if vd != nil {
			e.points = len(vd.Rows) // one data point each
		}
		return nil, 0, err
	}
	enc, size = e.finish(vd.View.Name, max)
	return enc, size, nil
}

// Append appends the encoding of vd to dst.
func (e *ViewEncoder) Append(dst []byte, vd *view.Data) ([]byte, error) {
	enc, _, err := e.Encode(vd, maxInt)
	if err != nil {
		return dst, err
	}
	return append(dst, enc...), nil
}

const maxInt = int(^uint(0) >> 1)

// vtMessage is a generated message that vtprotobuf can size and encode.
type vtMessage interface {
	SizeVT() int
	MarshalToSizedBufferVT([]byte) (int, error)
}

// tail encodes messages at the end of a reused scratch buffer.
//
// vtprotobuf encodes backwards from the end of a buffer of the exact size,
// which costs a SizeVT first: a second walk of the whole message tree, as
// long as the encoding itself for attribute-heavy spans. Instead a message
// is encoded at the end of scratch, a buffer larger than almost every item,
// and its bytes are the tail the encoder wrote. The generated code does not
// check room: it panics on a bounds check before it writes outside the
// buffer. Such an item is sized, and scratch grows to twice its size (at
// most max) so that the next item like it fits the first time; a real bug
// panics again there, unrecovered.
type tail struct{ scratch []byte }

func newTail() tail { return tail{scratch: make([]byte, ScratchBytes)} }

// marshal encodes m and returns its bytes (valid until the next call) and
// size; nil bytes when m is larger than max (then not encoded).
func (t *tail) marshal(m vtMessage, limit int) ([]byte, int) {
	if n, ok := marshalTail(m, t.scratch); ok {
		if n > limit {
			return nil, n
		}
		return t.scratch[len(t.scratch)-n:], n
	}
	sz := m.SizeVT()
	if sz > limit {
		return nil, sz
	}
	if sz > len(t.scratch) {
		t.scratch = make([]byte, max(sz, min(2*sz, limit)))
	}
	if n, err := m.MarshalToSizedBufferVT(t.scratch); err != nil || n != sz {
		panic(fmt.Sprintf("fastconv: encoded %d of %d bytes: %v", n, sz, err)) // a bug in the generated code or a converter
	}
	return t.scratch[len(t.scratch)-sz:], sz
}

// marshalTail encodes m at the end of buf; ok is false when m did not fit.
func marshalTail(m vtMessage, buf []byte) (n int, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	n, err := m.MarshalToSizedBufferVT(buf)
	return n, err == nil
}
