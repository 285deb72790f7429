//go:build !race

package aggregation

// raceEnabled is whether the race detector is on.
const raceEnabled = false
