package loadgen

import (
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkRecorderAcked measures what recording one acknowledged,
// numbered trade costs the sinks' collecting goroutines.
func BenchmarkRecorderAcked(b *testing.B) {
	b.ReportAllocs()
	start := time.Now()
	rec := NewRecorder(start, time.Second)
	var seq atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := seq.Add(1)
			rec.Acked(start.Add(time.Duration(n)), time.Millisecond, 100, n)
		}
	})
	if got := rec.AckedSeqs().Len(); got != int64(b.N) {
		b.Fatalf("%d sequence numbers recorded, want %d", got, b.N)
	}
}
