package dedupe

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/kplgo/kpl/aggregation"
)

// copyRead is one stored copy of a record as the simulation below reads it.
type copyRead struct {
	shard  string
	stored float64 // write time, seconds
	readAt float64 // when the consumer reads it
	seq    uint64
	retry  bool
}

// simulateRetries models a producer putting rate records/s under one pid for
// n records, a tenth of them stored a second time by a retry up to ttl
// seconds later; a reshard at half time splits the parent into two
// children. The consumer reads the parent first, then the two children
// interleaved, child 2 lagging child 1 by skew seconds of write time.
func simulateRetries(rate float64, n int, ttl, skew float64) []copyRead {
	rng := rand.New(rand.NewPCG(5, 6))
	reshard := float64(n) / rate / 2
	var copies []copyRead
	add := func(seq uint64, stored float64, retry bool) {
		c := copyRead{shard: "parent", stored: stored, readAt: stored, seq: seq, retry: retry}
		if stored >= reshard {
			c.shard, c.readAt = "child-1", stored+reshard*10 // after the whole parent
			if seq%2 == 1 {
				c.shard, c.readAt = "child-2", c.readAt+skew
			}
		}
		copies = append(copies, c)
	}
	for i := range n {
		put := float64(i) / rate
		add(uint64(i), put, false)
		if rng.IntN(10) == 0 {
			add(uint64(i), put+ttl*(0.01+0.99*rng.Float64()), true)
		}
	}
	// Each shard holds its copies in write order, and is read in that order.
	sort.SliceStable(copies, func(i, j int) bool { return copies[i].readAt < copies[j].readAt })
	return copies
}

// TestWindowSizingRuleCoversRetries checks the package doc's rule
// W >= R × (RecordTTL + D) on a simulated run across a reshard: with it every
// retry copy is a duplicate and every first copy new; with a window below it
// the filter reports Stale for some retries, and never drops a first copy.
func TestWindowSizingRuleCoversRetries(t *testing.T) {
	t.Parallel()
	const (
		rate = 100.0 // records/s under the pid
		ttl  = 3.0   // RecordTTL, s
		skew = 2.0   // D, s
	)
	copies := simulateRetries(rate, 6000, ttl, skew)
	need := int(rate * (ttl + skew)) // 500
	tests := []struct {
		name      string
		window    int
		wantStale bool
	}{
		{name: "a window of R×(TTL+D) catches every retry", window: need},
		{name: "a window of R×TTL misses some retries read behind by D", window: int(rate * ttl), wantStale: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := NewFilter(Options{Window: tt.window})
			pid := "0f0e0d0c0b0a09080706050403020100"
			var retries, dups, stale int
			for i, c := range copies {
				v := f.Check(c.shard, fmt.Sprint(1000000+i), 0, aggregation.RecordID{PID: pid, Seq: c.seq})
				switch {
				case !c.retry && v != New:
					t.Fatalf("first copy of seq %d on %s: %v", c.seq, c.shard, v)
				case c.retry:
					retries++
					if v == Duplicate {
						dups++
					}
					if v == Stale {
						stale++
					}
				}
			}
			if tt.wantStale {
				if stale == 0 || dups+stale != retries {
					t.Fatalf("%d retries: %d duplicates, %d stale; want some stale, the rest duplicates", retries, dups, stale)
				}
				return
			}
			if dups != retries || retries < 500 {
				t.Fatalf("%d retries, %d caught as duplicates", retries, dups)
			}
		})
	}
}
