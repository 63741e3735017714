//go:build zerocensus_poison

package pool

// PoisonByte fills every buffer returned to Buffers in poison builds, so that a
// use after return shows up as garbage on the wire and fails wire tests.
const PoisonByte = 0xDB

func poison(b []byte) {
	b = b[:cap(b)]
	for i := range b {
		b[i] = PoisonByte
	}
}

// Poisoning reports whether returned objects are poisoned (tag zerocensus_poison).
const Poisoning = true
