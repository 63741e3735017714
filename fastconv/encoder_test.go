package fastconv

import (
	"encoding/binary"
	"testing"

	"go.opencensus.io/trace"

	"github.com/zerocensus/ocagent/internal/testspans"
)

// fakeMsg encodes as its id (4 bytes, little-endian) padded to its size.
// Like vtprotobuf's code it does not check room: given too small a buffer it
// panics on a bounds check. It counts SizeVT calls.
type fakeMsg struct {
	id    uint32
	size  int
	sized int
}

func (m *fakeMsg) SizeVT() int { m.sized++; return m.size }

func (m *fakeMsg) MarshalToSizedBufferVT(dst []byte) (int, error) {
	out := dst[len(dst)-m.size:]
	binary.LittleEndian.PutUint32(out, m.id)
	for i := 4; i < len(out); i++ {
		out[i] = 0xAB
	}
	return m.size, nil
}

// TestScratchGrows: an item larger than the scratch buffer is sized once,
// encoded whole, and makes the scratch twice its size, so that the next
// item like it is encoded without sizing; an item larger than the limit is
// sized and not encoded.
func TestScratchGrows(t *testing.T) {
	tl := tail{scratch: make([]byte, 64)}
	m := &fakeMsg{}
	for i, c := range []struct {
		size, sized, scratch int
		encoded              bool
	}{
		{40, 0, 64, true},
		{100, 1, 200, true}, // sized once, scratch doubled
		{150, 1, 200, true}, // fits now: not sized
		{60, 1, 200, true},
		{2000, 2, 200, false}, // over the limit of 1000: sized, dropped
		{600, 3, 1000, true},  // doubled, capped at the limit
	} {
		m.id, m.size = uint32(i), c.size
		enc, size := tl.marshal(m, 1000)
		if size != c.size || (enc != nil) != c.encoded || m.sized != c.sized || len(tl.scratch) != c.scratch {
			t.Fatalf("item %d of %d bytes: enc %v, size %d, sized %d times, scratch %d; want encoded %v, sized %d, scratch %d",
				i, c.size, enc != nil, size, m.sized, len(tl.scratch), c.encoded, c.sized, c.scratch)
		}
		if enc != nil && (len(enc) != c.size || binary.LittleEndian.Uint32(enc) != uint32(i)) {
			t.Fatalf("item %d encoded as %d bytes, id %d", i, len(enc), binary.LittleEndian.Uint32(enc))
		}
	}
}

// TestEncodersSteadyStateAllocs gates the public API: encoding spans and
// views of a steady shape allocates nothing, for both protocols.
func TestEncodersSteadyStateAllocs(t *testing.T) {
	for _, p := range []Protocol{OpenCensus, OTLP} {
		for _, s := range []struct {
			name string
			sd   *trace.SpanData
		}{{"small", testspans.Small()}, {"typical", testspans.Typical()}, {"large", testspans.Large()}} {
			enc := NewSpanEncoder(p, SpanOptions{})
			enc.Encode(s.sd, 1<<30)
			if got := testing.AllocsPerRun(100, func() { enc.Encode(s.sd, 1<<30) }); got != 0 {
				t.Errorf("%v %s span: %v allocs per Encode, want 0", p, s.name, got)
			}
		}
		for _, agg := range testspans.Aggregations {
			vd := testspans.View(agg, 100, false) // exemplar attachments that are not strings are formatted (allocates)
			enc := NewViewEncoder(p, "app")
			if _, _, err := enc.Encode(vd, 1<<30); err != nil {
				t.Fatal(err)
			}
			if got := testing.AllocsPerRun(50, func() { enc.Encode(vd, 1<<30) }); got != 0 {
				t.Errorf("%v view %s: %v allocs per Encode, want 0", p, agg, got)
			}
		}
	}
}
