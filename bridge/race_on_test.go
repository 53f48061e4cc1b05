//go:build race

package bridge

// raceEnabled: the race detector changes allocation counts.
const raceEnabled = true
