package stream

import "github.com/zerocensus/ocagent/internal/testwait"

// raceEnabled: the race detector slows the item-heavy tests tenfold.
const raceEnabled = testwait.Race
