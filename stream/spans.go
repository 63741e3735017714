package stream

import (
	"encoding/binary"
	"sync/atomic"

	"go.opencensus.io/trace"

	"github.com/zerocensus/ocagent/fastconv"
	tracepb "github.com/zerocensus/ocagent/internal/ocproto/trace/v1"
)

// spansField is the tag of ExportTraceServiceRequest.spans (field 2, bytes).
const spansField = 2<<3 | 2

// SpanSource batches spans from a ring into reused span messages.
//
// Ownership: a *trace.SpanData belongs to the ring from ExportSpan until Fill
// pops it; Fill converts it and drops the reference at once. The span
// messages belong to the SpanSource for its whole life: they are overwritten
// by the next conversion, never returned to a pool while the source lives.
type SpanSource struct {
	Ring     *Ring[*trace.SpanData]
	conv     *fastconv.SpanConverter
	maxItems int
	maxBytes int

	spans []*tracepb.Span // the batch is spans[:n]
	sizes []int           // encoded size of each span in the batch
	n     int
	size  int // body size of spans[:n]
	// carry marks spans[n] as converted but left for the next batch because
	// it did not fit in this one's byte budget.
	carry bool
	// Oversize counts spans dropped because one alone exceeds maxBytes.
	Oversize atomic.Uint64
}

// NewSpanSource returns a source for batches of at most maxItems spans and
// maxBytes encoded body bytes, with prewarm span messages made up front.
func NewSpanSource(ring *Ring[*trace.SpanData], conv *fastconv.SpanConverter, maxItems, maxBytes, prewarm int) *SpanSource {
	s := &SpanSource{Ring: ring, conv: conv, maxItems: maxItems, maxBytes: maxBytes}
	s.slot(max(prewarm, 1) - 1)
	return s
}

// slot returns the reused span message at index i, creating it if needed.
func (s *SpanSource) slot(i int) *tracepb.Span {
	for len(s.spans) <= i {
		s.spans = append(s.spans, tracepb.SpanFromVTPool())
		s.sizes = append(s.sizes, 0)
	}
	return s.spans[i]
}

func fieldSize(n int) int { return 1 + sizeOfVarint(uint64(n)) + n }

func sizeOfVarint(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// Fill implements Source.
func (s *SpanSource) Fill() (int, int) {
	if s.carry {
		s.carry = false
		s.spans[0], s.spans[s.n] = s.spans[s.n], s.spans[0]
		s.sizes[0] = s.sizes[s.n]
		s.n, s.size = 1, fieldSize(s.sizes[0])
	}
	for s.n < s.maxItems {
		sd, ok := s.Ring.Pop()
		if !ok {
			break
		}
		if sd == nil {
			continue
		}
		sp := s.slot(s.n)
		s.conv.Convert(sp, sd)
		sz := sp.SizeVT()
		f := fieldSize(sz)
		if f > s.maxBytes {
			s.Oversize.Add(1)
			continue
		}
		s.sizes[s.n] = sz
		if s.size+f > s.maxBytes {
			s.carry = true
			break
		}
		s.n++
		s.size += f
	}
	return s.n, s.size
}

// Encode implements Source: each span as a length-delimited field 2, in
// batch order, exactly as a deterministic marshal of the request would.
func (s *SpanSource) Encode(dst []byte) {
	off := 0
	for i, sp := range s.spans[:s.n] {
		sz := s.sizes[i]
		dst[off] = spansField
		off++
		off += binary.PutUvarint(dst[off:], uint64(sz))
		if _, err := sp.MarshalToSizedBufferVT(dst[off : off+sz]); err != nil {
			panic(err) // only on a size mismatch, a bug in this package
		}
		off += sz
	}
}

// Sent implements Source.
func (s *SpanSource) Sent() { s.n, s.size = 0, 0 }

// Discard implements Source.
func (s *SpanSource) Discard() int {
	lost := s.n
	if s.carry {
		lost++
		s.carry = false
	}
	s.n, s.size = 0, 0
	for {
		if _, ok := s.Ring.Pop(); !ok {
			return lost
		}
		lost++
	}
}

var _ Source = (*SpanSource)(nil)
