//go:build race

package stream

// raceEnabled: the race detector slows the item-heavy tests tenfold.
const raceEnabled = true
