//go:build gc && !noasm && !appengine

package aggregation

import "github.com/klauspost/cpuid/v2"

// LanesSupported reports whether this CPU and build hash in SIMD lanes: an
// amd64 CPU with AVX2 (8 lanes per instruction stream) or AVX-512F and DQ (16
// lanes), the test md5-simd itself makes. HashAuto encoders hash in lanes
// only when it is true.
func LanesSupported() bool {
	return cpuid.CPU.Supports(cpuid.AVX2)
}
