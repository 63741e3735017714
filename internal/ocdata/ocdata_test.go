package ocdata

import (
	"fmt"
	"strings"
	"testing"

	"go.opencensus.io/stats"
	"go.opencensus.io/stats/view"
)

func TestNamesCache(t *testing.T) {
	var n Names
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
	if got := ValidUTF8("a\xffb"); got != "a\uFFFDb" {
		t.Fatalf("got %q", got)
	}
	if n := testing.AllocsPerRun(100, func() { _ = ValidUTF8("valid") }); n != 0 {
		t.Fatalf("%v allocs for a valid string", n)
	}
}
