//go:build race

package testwait

// Race reports whether the race detector is on: it changes allocation
// counts (gates on them run without it) and slows item-heavy tests tenfold.
const Race = true
