package ocagent

import "github.com/zerocensus/ocagent/internal/testwait"

// raceEnabled: the race detector changes allocation counts, so the gates
// on them run in the non-race pass of make test.
const raceEnabled = testwait.Race
