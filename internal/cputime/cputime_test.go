//go:build unix

package cputime

import (
	"testing"
	"time"
)

func TestProcessGrowsWithWork(t *testing.T) {
	before := Process()
	if before <= 0 {
		t.Fatalf("Process() = %v at start, want the time used so far", before)
	}
	// Spin until the process has used 20 ms more, or fail after 10 s.
	deadline := time.Now().Add(10 * time.Second)
	for Process()-before < 20*time.Millisecond {
		if time.Now().After(deadline) {
			t.Fatalf("Process() rose by %v in 10 s of spinning", Process()-before)
		}
	}
}
