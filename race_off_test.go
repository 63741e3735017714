//go:build !race

package ocagent

const raceEnabled = false
