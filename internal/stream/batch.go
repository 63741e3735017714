package stream

import (
	"sync/atomic"

	"google.golang.org/protobuf/encoding/protowire"
)

// itemsField is the tag of the repeated field that holds the items of an
// Export request: ExportTraceServiceRequest.spans and
// ExportMetricsServiceRequest.metrics are both field 2, length-delimited,
// between node (1) and resource (3).
const itemsField = 2<<3 | 2

// Message is a generated message that vtprotobuf can size and encode.
type Message interface {
	SizeVT() int
	MarshalToSizedBufferVT([]byte) (int, error)
}

// Batch batches items of type T from a ring into reused messages of type M
// and encodes them as the items field of an Export request.
//
// Ownership: an item belongs to the ring from the producer's Push until Fill
// pops it; Fill converts it at once and keeps no reference. The messages
// belong to the Batch for its whole life: overwritten by the next conversion,
// never returned to a pool while the Batch lives.
type Batch[T any, M Message] struct {
	Ring     *Ring[T]
	convert  func(M, T) bool // fills M from T; false drops T as invalid
	newMsg   func() M
	maxItems int
	maxBytes int

	msgs  []M   // the batch is msgs[:n]
	sizes []int // encoded size of each message in the batch
	n     int
	size  int // body size of msgs[:n]
	// carry marks msgs[n] as converted but left for the next batch because
	// it did not fit in this one's byte budget.
	carry bool

	Oversize atomic.Uint64 // items dropped: one alone exceeds maxBytes
	Invalid  atomic.Uint64 // items convert refused
}

// NewBatch returns a batch of at most maxItems items and maxBytes encoded
// body bytes, with prewarm messages made up front.
func NewBatch[T any, M Message](ring *Ring[T], convert func(M, T) bool, newMsg func() M, maxItems, maxBytes, prewarm int) *Batch[T, M] {
	b := &Batch[T, M]{Ring: ring, convert: convert, newMsg: newMsg, maxItems: maxItems, maxBytes: maxBytes}
	b.slot(max(prewarm, 1) - 1)
	return b
}

// slot returns the reused message at index i, creating it if needed.
func (b *Batch[T, M]) slot(i int) M {
	for len(b.msgs) <= i {
		b.msgs = append(b.msgs, b.newMsg())
		b.sizes = append(b.sizes, 0)
	}
	return b.msgs[i]
}

// fieldSize is the encoded size of a field 2 holding n bytes.
func fieldSize(n int) int { return 1 + protowire.SizeVarint(uint64(n)) + n }

// Fill implements Source.
func (b *Batch[T, M]) Fill() (int, int) {
	if b.carry {
		b.carry = false
		b.msgs[0], b.msgs[b.n] = b.msgs[b.n], b.msgs[0]
		b.sizes[0] = b.sizes[b.n]
		b.n, b.size = 1, fieldSize(b.sizes[0])
	}
	for b.n < b.maxItems {
		v, ok := b.Ring.Pop()
		if !ok {
			break
		}
		m := b.slot(b.n)
		if !b.convert(m, v) {
			b.Invalid.Add(1)
			continue
		}
		sz := m.SizeVT()
		f := fieldSize(sz)
		if f > b.maxBytes {
			b.Oversize.Add(1)
			continue
		}
		b.sizes[b.n] = sz
		if b.size+f > b.maxBytes {
			b.carry = true
			break
		}
		b.n++
		b.size += f
	}
	return b.n, b.size
}

// Encode implements Source: each message as a length-delimited field 2, in
// batch order, exactly as a deterministic marshal of the request would.
func (b *Batch[T, M]) Encode(dst []byte) {
	off := 0
	for i, m := range b.msgs[:b.n] {
		sz := b.sizes[i]
		dst[off] = itemsField
		off++
		off += len(protowire.AppendVarint(dst[off:off], uint64(sz)))
		if _, err := m.MarshalToSizedBufferVT(dst[off : off+sz]); err != nil {
			panic(err) // only on a size mismatch, a bug in this package
		}
		off += sz
	}
}

// Queued implements Source.
func (b *Batch[T, M]) Queued() int { return b.Ring.Len() }

// Sent implements Source.
func (b *Batch[T, M]) Sent() { b.n, b.size = 0, 0 }

// Discard implements Source.
func (b *Batch[T, M]) Discard() int {
	lost := b.n
	if b.carry {
		lost++
		b.carry = false
	}
	b.n, b.size = 0, 0
	for {
		if _, ok := b.Ring.Pop(); !ok {
			return lost
		}
		lost++
	}
}
