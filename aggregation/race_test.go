//go:build race

package aggregation

// raceEnabled is whether the race detector is on. Under it sync.Pool drops
// a quarter of what is put back, so allocation counts are meaningless.
const raceEnabled = true
