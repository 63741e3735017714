package stream

import (
	"sync"
	"testing"
)

func TestRingFIFOAndFull(t *testing.T) {
	r := NewRing[*int](3) // rounded up to 4
	if r.Cap() != 4 {
		t.Fatalf("cap %d", r.Cap())
	}
	vals := make([]int, 5)
	for i := range 4 {
		if pos := r.Push(&vals[i]); pos != uint64(i+1) {
			t.Fatalf("push %d at %d", i, pos)
		}
	}
	if r.Push(&vals[4]) != 0 {
		t.Fatal("push into a full ring succeeded")
	}
	for i := range 4 {
		v, ok := r.Pop()
		if !ok || v != &vals[i] {
			t.Fatalf("pop %d: %v %v", i, v, ok)
		}
	}
	if _, ok := r.Pop(); ok {
		t.Fatal("pop from an empty ring succeeded")
	}
	// The ring keeps no reference after Pop.
	for i := range r.slots {
		if r.slots[i].val != nil {
			t.Fatalf("slot %d still holds a value", i)
		}
	}
}

// TestRingConcurrentProducers: every pushed value is popped exactly once,
// and every failed push was counted by its producer.
func TestRingConcurrentProducers(t *testing.T) {
	const producers, each = 8, 20000
	r := NewRing[int](256)
	var wg sync.WaitGroup
	failed := make([]int, producers)
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if r.Push(p*each+i+1) == 0 {
					failed[p]++
				}
			}
		}()
	}
	seen := make([]bool, producers*each+1)
	popped := 0
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for finished := false; ; {
		v, ok := r.Pop()
		if ok {
			if seen[v] {
				t.Fatalf("value %d popped twice", v)
			}
			seen[v] = true
			popped++
			continue
		}
		if finished {
			break
		}
		select {
		case <-done:
			finished = true
		default:
		}
	}
	lost := 0
	for _, f := range failed {
		lost += f
	}
	if popped+lost != producers*each {
		t.Fatalf("popped %d + rejected %d != pushed %d", popped, lost, producers*each)
	}
}

func TestRingPushAllocs(t *testing.T) {
	r := NewRing[*int](1024)
	v := new(int)
	if n := testing.AllocsPerRun(100, func() { r.Push(v); r.Pop() }); n != 0 {
		t.Errorf("%v allocs", n)
	}
}

// TestPopWaitsForAClaimedSlot: a producer that has claimed the oldest slot
// but not yet written it must not make Pop report an empty ring, or a Flush
// would return before later, completed pushes.
func TestPopWaitsForAClaimedSlot(t *testing.T) {
	r := NewRing[int](4)
	// Claim position 0 by hand, as a producer descheduled between its CAS
	// and its write would leave it.
	r.head.Store(1)
	r.slots[0].val = 0
	done := make(chan int)
	go func() {
		v, ok := r.Pop()
		if !ok {
			v = -1
		}
		done <- v
	}()
	// Finish the claimed push: Pop must see it, not an empty ring.
	r.slots[0].val = 7
	r.slots[0].seq.Store(1)
	if v := <-done; v != 7 {
		t.Fatalf("Pop returned %d, want 7", v)
	}
}

// TestRingOfOne: a ring asked for one slot holds one value without losing
// it (the model-based batch test found the one-slot ring overwriting).
func TestRingOfOne(t *testing.T) {
	r := NewRing[int](1)
	pushed := 0
	for i := 1; i <= 3; i++ {
		if r.Push(i) != 0 {
			pushed++
		}
	}
	for i := 1; i <= pushed; i++ {
		if v, ok := r.Pop(); !ok || v != i {
			t.Fatalf("pop %d: %d %v", i, v, ok)
		}
	}
	if _, ok := r.Pop(); ok {
		t.Fatal("popped more than was pushed")
	}
}
