package fastconv

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"go.opencensus.io/stats"
	"go.opencensus.io/stats/view"
)

func TestNamesCache(t *testing.T) {
	var n nameCache
	m := stats.Int64("m", "", "")
	v := func(name string) *view.View { return &view.View{Name: name, Measure: m} }
	for i := range maxCachedNames + 10 {
		got := n.Metric("", "p", v(fmt.Sprint("n", i)))
		if want := fmt.Sprint("p/n", i); got != want {
			t.Fatalf("got %q want %q", got, want)
		}
	}
	if len(n.m) > maxCachedNames {
		t.Fatalf("cache holds %d names, more than %d", len(n.m), maxCachedNames)
	}
	// A name that only looks like the old one is rebuilt.
	if got := n.Metric("p/xy", "p/x", v("y")); got != "p/x/y" {
		t.Fatalf("got %q", got)
	}
	if got := n.Metric("ab/c", "a", v("b/c")); got != "a/b/c" {
		t.Fatalf("got %q", got)
	}
	if got := n.Metric(strings.Repeat("x", 3), "", v("n")); got != "n" {
		t.Fatalf("got %q", got)
	}
	// A view without a name takes its measure's.
	if got := n.Metric("", "", &view.View{Measure: m}); got != "m" {
		t.Fatalf("got %q", got)
	}
}

func TestValidUTF8(t *testing.T) {
	if got := validUTF8("a\xffb"); got != "a\uFFFDb" {
		t.Fatalf("got %q", got)
	}
	if n := testing.AllocsPerRun(100, func() { _ = validUTF8("valid") }); n != 0 {
		t.Fatalf("%v allocs for a valid string", n)
	}
}

func TestValidUTF8Since(t *testing.T) {
	valid, invalid := "kv", "k\xff"
	long := "kvx"
	repaired := validUTF8(invalid)
	for _, c := range []struct {
		name, prev, s, want string
	}{
		{"the same valid string", valid, valid, valid},
		{"a prefix at the same address", long, long[:2], "kv"},
		{"an invalid string after a valid one of its length", valid, invalid, "k\uFFFD"},
		{"an invalid string after its own repair", repaired, invalid, "k\uFFFD"},
		{"empty", "", "", ""},
	} {
		if got := validUTF8Since(c.prev, c.s); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
	if sameString("kv", string([]byte("kv"))) {
		t.Error("Same: equal bytes at two addresses are not the same string")
	}
}

type kv struct{ k string }

func (x *kv) GetKey() string { return x.k }

func TestRotation(t *testing.T) {
	keys := []string{"a", "b", "c", "d"}
	slots := []*kv{{keys[0]}, {keys[1]}, {keys[2]}, {keys[3]}}
	if got := rotationStart(slots, keys[2]); got != 2 {
		t.Errorf("rotationStart = %d, want 2", got)
	}
	if got := rotationStart(slots, string([]byte("z"))); got != 0 {
		t.Errorf("rotationStart of an unknown key = %d, want 0", got)
	}
	big := make([]*kv, smallMap+1)
	for i := range big {
		big[i] = &kv{keys[i%len(keys)]}
	}
	if got := rotationStart(big, keys[2]); got != 0 {
		t.Errorf("rotationStart over more than smallMap slots = %d, want 0", got)
	}
	// Placed at 2, 3, 0 (three kept of four): they become the first three.
	s := []string{"k2", "spare", "k0", "k1"}
	unrotate(s, 2, 3)
	if got := fmt.Sprint(s); got != "[k0 k1 k2 spare]" {
		t.Errorf("unrotate: %v", got)
	}
	full := []string{"x", "y"}
	unrotate(full, 1, 2)
	if got := fmt.Sprint(full); got != "[x y]" {
		t.Errorf("unrotate of a full range moved it: %v", got)
	}
	// A range of the same map rotated (c, d, a, b) keeps each key in its
	// slot; with d skipped, the three kept come first after Done.
	for _, skip := range []string{"", "d"} {
		r := rotate(slots)
		for _, k := range []string{keys[2], keys[3], keys[0], keys[1]} {
			slot := r.Next(k)
			if k == skip {
				continue
			}
			if skip == "" && slot.k != k {
				t.Errorf("key %s placed in the slot of %s", k, slot.k)
			}
			slot.k = k
			r.Keep()
		}
		n := r.Done()
		var got []string
		for _, s := range slots[:n] {
			got = append(got, s.k)
		}
		slices.Sort(got)
		want := "[a b c d]"
		if skip != "" {
			want = "[a b c]"
		}
		if fmt.Sprint(got) != want {
			t.Errorf("skipping %q: kept %v, want %s", skip, got, want)
		}
	}
}
