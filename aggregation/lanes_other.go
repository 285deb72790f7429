//go:build !amd64 || !gc || noasm || appengine

package aggregation

// LanesSupported reports whether this CPU and build hash in SIMD lanes. It is
// false on this architecture or build, where md5-simd has no assembly: every
// BatchEncoder hashes with crypto/md5 (HashLanes through md5-simd's
// fallback).
func LanesSupported() bool { return false }
