//go:build race

package ocagent

// raceEnabled: the race detector changes allocation counts, so the gates
// on them run in the non-race pass of make test.
const raceEnabled = true
