// Package batch turns queued items into one encoded batch at a time: it pops
// items from a ring, converts each into a reused generated message, sizes it,
// and encodes the batch as a run of length-delimited fields, the items field
// of an Export request (the envelope around it is another package's job).
package batch

import (
	"sync/atomic"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/zerocensus/ocagent/internal/ring"
)

// ItemsField is the field that holds the items in both protocols' requests:
// OpenCensus ExportTraceServiceRequest.spans and
// ExportMetricsServiceRequest.metrics, and OTLP ScopeSpans.spans and
// ScopeMetrics.metrics, are all field 2.
const ItemsField protowire.Number = 2

// Message is a generated message that vtprotobuf can size and encode.
type Message interface {
	SizeVT() int
	MarshalToSizedBufferVT([]byte) (int, error)
}

// Batch batches items of type T from a ring into reused messages of type M.
// Only the writer goroutine calls its methods (the ring takes pushes from
// anyone); the counters are safe to read from any goroutine.
//
// Ownership: an item belongs to the ring from the producer's Push until Fill
// pops it; Fill converts it at once and keeps no reference. The messages
// belong to the Batch for its whole life: overwritten by the next conversion,
// never returned to a pool while the Batch lives.
//
// The life of a batch: Fill (repeatable: it tops the batch up), Encode
// (repeatable), then Sent once the bytes are handed on. An item that Fill
// converted but that did not fit in the byte budget is carried: Sent makes it
// the first item of the next batch. Carried items are counted by Held, so
// that nothing between the ring and the transport is invisible.
type Batch[T any, M Message] struct {
	ring     *ring.Ring[T]
	convert  func(M, T) bool
	newMsg   func() M
	maxItems int
	maxBytes int

	msgs  []M   // the batch is msgs[:n]; msgs[n] is the carried item when carry is set
	sizes []int // encoded size of each message
	n     int
	size  int // body size of msgs[:n]
	carry bool
	held  atomic.Int64 // n, plus one while an item is carried: read by Stats

	oversize atomic.Uint64
	invalid  atomic.Uint64
}

// New returns a batch of at most maxItems items and maxBytes encoded body
// bytes, with prewarm messages made up front. convert fills a message from an
// item and reports false to drop the item as invalid.
func New[T any, M Message](r *ring.Ring[T], convert func(M, T) bool, newMsg func() M, maxItems, maxBytes, prewarm int) *Batch[T, M] {
	b := &Batch[T, M]{ring: r, convert: convert, newMsg: newMsg, maxItems: maxItems, maxBytes: maxBytes}
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

// FieldSize is the encoded size of an items field holding n bytes.
func FieldSize(n int) int { return protowire.SizeTag(ItemsField) + protowire.SizeVarint(uint64(n)) + n }

// Fill converts queued items into the batch until it holds maxItems items,
// the next item would not fit in maxBytes (it is then carried), or the ring
// is empty. It returns the items in the batch and the size of its encoded
// body. Items that fail to convert, or that alone exceed maxBytes, are
// dropped and counted.
func (b *Batch[T, M]) Fill() (items, size int) {
	for !b.carry && b.n < b.maxItems {
		v, ok := b.ring.Pop()
		if !ok {
			break
		}
		m := b.slot(b.n)
		if !b.convert(m, v) {
			b.invalid.Add(1)
			continue
		}
		sz := m.SizeVT()
		f := FieldSize(sz)
		if f > b.maxBytes {
			b.oversize.Add(1)
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
	b.publish()
	return b.n, b.size
}

// Encode writes the body of the current batch, exactly the size Fill
// returned, to dst: each message as a length-delimited items field, in batch
// order, exactly as a deterministic marshal of the request would.
func (b *Batch[T, M]) Encode(dst []byte) {
	off := 0
	for i, m := range b.msgs[:b.n] {
		sz := b.sizes[i]
		off += len(protowire.AppendTag(dst[off:off], ItemsField, protowire.BytesType))
		off += len(protowire.AppendVarint(dst[off:off], uint64(sz)))
		if _, err := m.MarshalToSizedBufferVT(dst[off : off+sz]); err != nil {
			panic(err) // only on a size mismatch, a bug in this package
		}
		off += sz
	}
	if off != len(dst) {
		panic("batch: Encode given a buffer of the wrong size")
	}
}

// Sent forgets the current batch once its bytes are handed on. A carried
// item becomes the first item of the next batch.
func (b *Batch[T, M]) Sent() {
	if b.carry {
		c := b.n // the carried message sits right after the batch that was sent
		b.msgs[0], b.msgs[c] = b.msgs[c], b.msgs[0]
		b.sizes[0] = b.sizes[c]
		b.n, b.size, b.carry = 1, FieldSize(b.sizes[0]), false
	} else {
		b.n, b.size = 0, 0
	}
	b.publish()
}

func (b *Batch[T, M]) publish() {
	h := b.n
	if b.carry {
		h++
	}
	b.held.Store(int64(h))
}

// Held is the number of items taken from the ring and not yet Sent: the
// current batch and a carried item. Safe from any goroutine.
func (b *Batch[T, M]) Held() int { return int(b.held.Load()) }

// Queued is the number of items waiting in the ring (approximate while
// producers push). Safe from any goroutine.
func (b *Batch[T, M]) Queued() int { return b.ring.Len() }

// Discard drops the ring's items and the batch and reports how many items
// were lost (on Stop).
func (b *Batch[T, M]) Discard() int {
	lost := b.Held()
	b.n, b.size, b.carry = 0, 0, false
	b.publish()
	for {
		if _, ok := b.ring.Pop(); !ok {
			return lost
		}
		lost++
	}
}

// Oversize counts items dropped because one alone exceeded maxBytes.
func (b *Batch[T, M]) Oversize() uint64 { return b.oversize.Load() }

// Invalid counts items convert refused.
func (b *Batch[T, M]) Invalid() uint64 { return b.invalid.Load() }
