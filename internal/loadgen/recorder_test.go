package loadgen

import (
	"testing"
	"time"
)

func TestRecorderKeepsTheSequenceNumbersOfAcknowledgedTrades(t *testing.T) {
	t.Parallel()
	start := time.Now()
	rec := NewRecorder(start, time.Second)
	rec.Acked(start, time.Millisecond, 10, 3)
	rec.Acked(start, time.Millisecond, 10, -1) // a trade without a number
	rec.Acked(start, time.Millisecond, 10, 3)  // the same trade again
	rec.Acked(start, time.Millisecond, 10, 70)
	got := rec.AckedSeqs()
	if got.Len() != 2 || !got.Has(3) || !got.Has(70) || got.Has(0) {
		t.Errorf("set has %d numbers, 3: %v, 70: %v, 0: %v; want 3 and 70 only", got.Len(), got.Has(3), got.Has(70), got.Has(0))
	}
	if c := rec.Counts(); c.Acked != 4 {
		t.Errorf("acked %d, want 4", c.Acked)
	}
	// The set returned is a copy: later trades do not change it.
	rec.Acked(start, time.Millisecond, 10, 5)
	if got.Has(5) || got.Len() != 2 {
		t.Errorf("the returned set changed after a later trade")
	}
}
