package stream

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/zerocensus/ocagent/pool"
)

// The model-based test drives a Batch with random sequences of pushes, Fill,
// Take and Discard, and checks it against a trivial reference queue:
// every item accepted by the ring comes out exactly once, in order, unless it
// was invalid or alone larger than the budget (both counted); the encoded
// bytes decode, with protowire, to exactly the items of the batch; batches
// respect maxItems and maxBytes; and at every step the items are accounted
// for: accepted = delivered + in the ring + held + invalid + oversize +
// discarded. The encoder is a Weigher: every batch Take hands over carries
// the data points decoded from its body, and the invalid items' points are
// counted.

// item is what producers push: an id, the encoded size its message will
// have, and whether conversion refuses it.
type item struct {
	id      uint32
	size    int
	invalid bool
	rows    int // > 0: a view of this many rows, which the encoder can split
}

// A splittable item's rows have sizes drawn from its id; a part is a
// header (id, first row, row count, last flag) followed by its rows.
const partHeader = 9

func rowSize(id uint32, i int) int { return 1 + int((id*7919+uint32(i)*104729)%97) }

// itemRows are the sizes of a splittable item's rows, and its size whole.
func itemRows(it item) (rows []int, whole int) {
	whole = partHeader
	for i := range it.rows {
		rows = append(rows, rowSize(it.id, i))
		whole += rows[i]
	}
	return rows, whole
}

// fakeEncoder encodes an item as its id (4 bytes, little-endian) padded to
// its size, in one buffer it reuses as fastconv's encoders do: a batch that
// kept an encoding past the encoder's next call would see it overwritten.
type fakeEncoder struct {
	buf []byte

	// the item being split
	cur      item
	rows     []int
	next     int
	splitted bool

	points int // of what Encode or Next last returned
}

// itemPoints are the data points of an item that is not split; a split
// item's rows are one point each.
func itemPoints(id uint32) int { return 1 + int(id%3) }

// Points is the Weigher.
func (e *fakeEncoder) Points() int { return e.points }

var errInvalid = errors.New("invalid item")

// part encodes rows [a, b) of it.
func (e *fakeEncoder) part(it item, rows []int, a, b int, last bool) []byte {
	n := partHeader
	for _, r := range rows[a:b] {
		n += r
	}
	if cap(e.buf) < n {
		e.buf = make([]byte, n)
	}
	out := e.buf[:n]
	binary.LittleEndian.PutUint32(out, it.id)
	binary.LittleEndian.PutUint16(out[4:], uint16(a))
	binary.LittleEndian.PutUint16(out[6:], uint16(b-a))
	out[8] = 0
	if last {
		out[8] = 1
	}
	for i := partHeader; i < n; i++ {
		out[i] = 0xCD
	}
	return out
}

// Next is the Splitter: as many rows as fit after the header; a row that
// alone does not fit is skipped.
func (e *fakeEncoder) Next(max int) ([]byte, bool) {
	if !e.splitted { // an item without rows cannot be split
		return nil, true
	}
	for e.next < len(e.rows) {
		a, n := e.next, partHeader
		b := a
		for b < len(e.rows) && n+e.rows[b] <= max {
			n += e.rows[b]
			b++
		}
		if b == a {
			e.next++
			continue
		}
		e.next = b
		e.points = b - a
		last := true
		for _, r := range e.rows[b:] {
			if partHeader+r <= max {
				last = false
			}
		}
		if last {
			e.splitted = false
		}
		return e.part(e.cur, e.rows, a, b, last), last
	}
	e.splitted = false
	e.points = 0
	return nil, true
}

func (e *fakeEncoder) Encode(it item, max int) ([]byte, int, error) {
	e.splitted, e.points = false, 0
	if it.invalid {
		e.points = itemPoints(it.id)
		return nil, 0, errInvalid
	}
	if it.rows > 0 {
		rows, whole := itemRows(it)
		e.cur, e.rows, e.next, e.splitted = it, rows, 0, true
		if whole > max {
			return nil, whole, nil
		}
		e.points = it.rows
		return e.part(it, rows, 0, len(rows), true), whole, nil
	}
	if it.size > max {
		return nil, it.size, nil
	}
	e.points = itemPoints(it.id)
	if cap(e.buf) < it.size {
		e.buf = make([]byte, it.size)
	}
	out := e.buf[:it.size]
	binary.LittleEndian.PutUint32(out, it.id)
	for i := 4; i < len(out); i++ {
		out[i] = 0xAB
	}
	return out, it.size, nil
}

// source is where a sequence takes its choices from: a seeded PRNG, or the
// bytes of a fuzz input.
type source interface{ intn(n int) int }

type prng struct{ r *rand.Rand }

func (p prng) intn(n int) int { return p.r.IntN(n) }

type bytesSource struct {
	b []byte
	i int
}

func (s *bytesSource) intn(n int) int {
	if s.i >= len(s.b) {
		return 0
	}
	v := int(s.b[s.i])
	s.i++
	return v % n
}

func (s *bytesSource) done() bool { return s.i >= len(s.b) }

// runModel runs one sequence of at most steps operations.
func runModel(t testing.TB, src source, steps int, more func() bool) {
	maxItems := 1 + src.intn(12)
	// Small budgets make many carries; large ones make bodies that fill
	// their pool buffers (2 KiB and up), which Take hands over instead of
	// copying.
	maxBytes := FieldSize(4) + src.intn(300)
	if src.intn(2) == 0 {
		maxBytes = FieldSize(4) + src.intn(6000)
	}
	r := NewRing[item](1 << src.intn(6))
	// The encoder's buffer starts anywhere from a few bytes to more than
	// the largest item, and grows.
	scratch := 1 + src.intn(maxBytes+40)
	// The room kept around the body for an envelope, and the pool the
	// buffers go back to once taken (poisoned in poison builds, so that a
	// batch still writing into a taken buffer corrupts what is decoded).
	room := Room{Bufs: pool.NewBuffers(), Head: src.intn(12), Tail: src.intn(6)}
	newBatch := func(prewarm int) *Batch[item] {
		return NewBatch(r, Encoder[item](&fakeEncoder{buf: make([]byte, scratch)}), maxItems, maxBytes, prewarm, room)
	}
	b := newBatch(src.intn(4))

	var (
		held                         []taken // buffers taken and not yet freed
		nextID                       uint32
		accepted                     []item // in push order
		want                         []uint32
		got                          []uint32
		invalid, oversize, discarded int
		invalidPts                   int
		ps                           = newParts()
	)
	check := func(where string) {
		t.Helper()
		total := len(got) + r.Len() + b.Held() + int(b.Invalid()) + int(b.Oversize()) + discarded
		if total != len(accepted) {
			t.Fatalf("%s: accepted %d != delivered %d + ring %d + held %d + invalid %d + oversize %d + discarded %d",
				where, len(accepted), len(got), r.Len(), b.Held(), b.Invalid(), b.Oversize(), discarded)
		}
	}
	for step := 0; step < steps && more(); step++ {
		switch op := src.intn(10); {
		case op < 4: // producers push a few items
			for range src.intn(6) {
				it := item{id: nextID, size: 4 + src.intn(maxBytes+20)}
				if src.intn(16) == 0 {
					it.invalid = true
				}
				if src.intn(6) == 0 {
					it.rows = 1 + src.intn(maxBytes/25+3) // about one part to three of rows of 1-97 bytes
					_, it.size = itemRows(it)
				}
				nextID++
				if r.Push(it) != 0 {
					accepted = append(accepted, it)
					var rows []int
					if it.rows > 0 {
						ps.split[it.id] = it
						rows, _ = wantRows(it, maxBytes)
					}
					switch {
					case it.invalid:
						invalid++
						invalidPts += itemPoints(it.id)
					case it.rows > 0 && len(rows) == 0:
						oversize++
					case it.rows == 0 && FieldSize(it.size) > maxBytes:
						oversize++
					default:
						want = append(want, it.id)
					}
				}
			}
		case op < 6: // Fill alone (the writer may top a batch up before sending)
			b.Fill()
		case op < 9: // Fill, Take
			n, size := b.Fill()
			if size == 0 {
				if n != 0 {
					t.Fatalf("%d items in an empty batch", n)
				}
				if b.Held() != 0 || r.Len() != 0 {
					t.Fatalf("Fill returned nothing with %d held and %d queued", b.Held(), r.Len())
				}
				break
			}
			if n > maxItems || size > maxBytes {
				t.Fatalf("batch of %d items, %d bytes over limits %d, %d", n, size, maxItems, maxBytes)
			}
			carried := b.Held() - n
			if carried == 0 && n < maxItems && r.Len() != 0 {
				t.Fatalf("batch of %d < %d items with %d queued and nothing carried", n, maxItems, r.Len())
			}
			body, taken := take(t, b, room, &held)
			if len(body) != size || taken.Items != n {
				t.Fatalf("took %d items in %d bytes, Fill said %d in %d", taken.Items, len(body), n, size)
			}
			ids, pts := decode(t, body, ps)
			if pts != taken.Points {
				t.Fatalf("took %d data points, the body holds %d", taken.Points, pts)
			}
			if carried > 1 {
				t.Fatalf("%d items held beyond the batch", carried)
			}
			if len(ids) != n {
				t.Fatalf("encoded %d items, Fill said %d", len(ids), n)
			}
			if next := len(got) + n; carried == 1 && next < len(want) && ps.split[want[next]].rows == 0 {
				// The carried item is the next one wanted; it must not fit.
				if size+FieldSize(sizeOf(accepted, want[next])) <= maxBytes {
					t.Fatalf("item %d carried although it fits (%d + %d <= %d)", want[next], size, FieldSize(sizeOf(accepted, want[next])), maxBytes)
				}
			}
			got = append(got, ids...)
		default: // Stop: discard what is left
			if src.intn(8) != 0 {
				break
			}
			discarded += b.Discard()
			if r.Len() != 0 || b.Held() != 0 {
				t.Fatalf("Discard left %d queued, %d held", r.Len(), b.Held())
			}
			check("discard")
			// What was not delivered is gone: the next sequence starts
			// afresh on a new ring and batch.
			accepted = accepted[:0]
			ps = newParts()
			got, want = got[:0], want[:0]
			invalid, oversize, discarded, invalidPts = 0, 0, 0, 0
			r = NewRing[item](1 << src.intn(6))
			b = newBatch(0)
		}
		// The transport frees what it was handed in its own time.
		for len(held) > 0 && src.intn(3) == 0 {
			held[0].release(t)
			held = held[1:]
		}
		for i, id := range got {
			if i >= len(want) || want[i] != id {
				t.Fatalf("delivered %v, want a prefix of %v", got, want)
			}
		}
		check(fmt.Sprintf("step %d", step))
		if int(b.Invalid()) != invalid && r.Len() == 0 && b.Held() == 0 {
			t.Fatalf("invalid counted %d, pushed %d", b.Invalid(), invalid)
		}
		if int(b.InvalidPoints()) != invalidPts && r.Len() == 0 && b.Held() == 0 {
			t.Fatalf("invalid points counted %d, pushed %d", b.InvalidPoints(), invalidPts)
		}
		if int(b.Oversize()) != oversize && r.Len() == 0 && b.Held() == 0 {
			t.Fatalf("oversize counted %d, pushed %d", b.Oversize(), oversize)
		}
	}
	// Drain: everything accepted comes out.
	got = append(got, drain(t, b, ps)...)
	for _, h := range held {
		h.release(t)
	}
	if len(got) != len(want) {
		t.Fatalf("delivered %d items, want %d (%v vs %v)", len(got), len(want), got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delivered %v, want %v", got, want)
		}
	}
	check("end")
	// Every row of every split item arrived once, in order, but those that
	// alone do not fit a part.
	for _, it := range ps.split {
		if it.invalid {
			continue
		}
		rows, _ := wantRows(it, maxBytes)
		if !slices.Equal(ps.rows[it.id], rows) && !(len(rows) == 0 && len(ps.rows[it.id]) == 0) {
			t.Fatalf("item %d: rows %v arrived, want %v", it.id, ps.rows[it.id], rows)
		}
	}
}

func newParts() *parts { return &parts{split: map[uint32]item{}, rows: map[uint32][]int{}} }

// drain sends batches until the batch and its ring are empty, and returns
// the ids in the order they were encoded.
func drain(t testing.TB, b *Batch[item], ps *parts) []uint32 {
	var got []uint32
	for {
		n, size := b.Fill()
		if size == 0 {
			return got
		}
		body, taken := take(t, b, b.room, nil)
		if len(body) != size || taken.Items != n {
			t.Fatalf("took %d items in %d bytes, Fill said %d in %d", taken.Items, len(body), n, size)
		}
		ids, pts := decode(t, body, ps)
		if pts != taken.Points {
			t.Fatalf("took %d data points, the body holds %d", taken.Points, pts)
		}
		got = append(got, ids...)
	}
}

// taken is a buffer Take handed over, held as a transport holds it, and a
// copy of its body when it was taken.
type taken struct {
	room Room
	buf  *[]byte
	at   int
	body []byte
}

// release checks that the body has not changed since it was taken (the
// batch kept no hold on the buffer) and gives the buffer back to the pool.
func (h taken) release(t testing.TB) {
	t.Helper()
	if !bytes.Equal((*h.buf)[h.at:], h.body) {
		t.Fatalf("a taken buffer changed after Take")
	}
	h.room.Bufs.Put(h.buf)
}

// take takes the batch and returns a copy of its body and its item count,
// after checking the room around it. The buffer is appended to held (nil:
// released at once).
func take(t testing.TB, b *Batch[item], room Room, held *[]taken) ([]byte, Count) {
	t.Helper()
	buf, at, n := b.Take()
	if at != room.Head || cap(*buf)-len(*buf) < room.Tail {
		t.Fatalf("body at %d with %d bytes after it, want at %d with %d", at, cap(*buf)-len(*buf), room.Head, room.Tail)
	}
	h := taken{room: room, buf: buf, at: at, body: slices.Clone((*buf)[at:])}
	if held == nil {
		h.release(t)
	} else {
		*held = append(*held, h)
	}
	return h.body, n
}

func sizeOf(items []item, id uint32) int {
	for _, it := range items {
		if it.id == id {
			return it.size
		}
	}
	return -1
}

// parts is what decode knows and learns of splittable items: which ids are
// splittable, and the rows of each delivered so far.
type parts struct {
	split map[uint32]item
	rows  map[uint32][]int
}

// decode reads a body of items fields with protowire and returns the ids of
// the items it completes (a split item's last part completes it) and the
// data points it holds.
func decode(t testing.TB, body []byte, ps *parts) (ids []uint32, points int) {
	t.Helper()
	for len(body) > 0 {
		num, typ, n := protowire.ConsumeTag(body)
		if n < 0 || num != ItemsField || typ != protowire.BytesType {
			t.Fatalf("bad tag in body: %v %v %d", num, typ, n)
		}
		body = body[n:]
		v, n := protowire.ConsumeBytes(body)
		if n < 0 || len(v) < 4 {
			t.Fatalf("bad item field (%d bytes)", len(v))
		}
		body = body[n:]
		id := binary.LittleEndian.Uint32(v)
		if it, ok := ps.split[id]; ok {
			if len(v) < partHeader {
				t.Fatalf("part of item %d of %d bytes", id, len(v))
			}
			first, count, last := int(binary.LittleEndian.Uint16(v[4:])), int(binary.LittleEndian.Uint16(v[6:])), v[8] == 1
			want := partHeader
			for r := first; r < first+count; r++ {
				want += rowSize(id, r)
				ps.rows[id] = append(ps.rows[id], r)
			}
			if len(v) != want || count == 0 || first+count > it.rows {
				t.Fatalf("part of item %d: rows %d+%d of %d in %d bytes, want %d", id, first, count, it.rows, len(v), want)
			}
			for _, c := range v[partHeader:] {
				if c != 0xCD {
					t.Fatalf("part padding corrupted")
				}
			}
			points += count
			if last {
				ids = append(ids, id)
			}
			continue
		}
		for _, c := range v[4:] {
			if c != 0xAB {
				t.Fatalf("item padding corrupted")
			}
		}
		ids = append(ids, id)
		points += itemPoints(id)
	}
	return ids, points
}

// wantRows are the rows of a splittable item that arrive: all of them when
// it fits whole, else each that fits a part alone (the others are dropped).
func wantRows(it item, maxBytes int) (rows []int, whole bool) {
	sizes, total := itemRows(it)
	partMax := maxBytes - protowire.SizeTag(ItemsField) - protowire.SizeVarint(uint64(maxBytes))
	for r, sz := range sizes {
		if FieldSize(total) <= maxBytes || partHeader+sz <= partMax {
			rows = append(rows, r)
		}
	}
	return rows, FieldSize(total) <= maxBytes
}

// TestBatchModel runs 10,000 seeded random sequences (make fuzz runs
// FuzzBatchModel for more).
func TestBatchModel(t *testing.T) {
	seqs := 10_000
	if testing.Short() {
		seqs = 1000
	}
	for seed := range uint64(seqs) {
		src := prng{rand.New(rand.NewPCG(seed, 0x5eed))}
		t.Run("", func(t *testing.T) {
			defer func() {
				if t.Failed() {
					t.Logf("seed %d", seed)
				}
			}()
			runModel(t, src, 200, func() bool { return true })
		})
	}
}

// TestBatchCarryRegression is the reproduction of the lost-and-resent carry:
// maxItems 8, maxBytes 25, items of 10 encoded bytes (12 with their field
// header), items 1..5 pushed, Fill/Take in a loop. The landed writer
// sent [1 2 1 4 1]; the right answer is [1 2 3 4 5].
func TestBatchCarryRegression(t *testing.T) {
	r := NewRing[item](8)
	b := NewBatch(r, Encoder[item](&fakeEncoder{}), 8, 25, 0, Room{Bufs: pool.NewBuffers()})
	for id := uint32(1); id <= 5; id++ {
		r.Push(item{id: id, size: 10})
	}
	if got := drain(t, b, newParts()); fmt.Sprint(got) != "[1 2 3 4 5]" {
		t.Fatalf("sent %v, want [1 2 3 4 5]", got)
	}
}

func FuzzBatchModel(f *testing.F) {
	f.Add([]byte{3, 40, 0, 5, 1, 2, 3, 4, 7, 7, 7, 0, 1, 8, 8})
	f.Add([]byte{11, 200, 5, 1, 0, 5, 255, 255, 255, 6, 6, 6, 9, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		src := &bytesSource{b: data}
		runModel(t, src, 1000, func() bool { return !src.done() })
	})
}
