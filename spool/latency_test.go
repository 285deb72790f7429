package spool

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/kplgo/kpl/aggregation"
	"github.com/kplgo/kpl/producer"
)

func TestLatencyBucketsHoldTheirValues(t *testing.T) {
	t.Parallel()
	for v := uint64(0); v < 1<<28; v = v*9/8 + 1 {
		for _, x := range []uint64{v, v + 1, 2*v - 1} {
			i := latIndex(x)
			if i == latBuckets {
				if x < latBound(latBuckets-1) {
					t.Fatalf("%d µs in the overflow bucket, below the last bound %d", x, latBound(latBuckets-1))
				}
				continue
			}
			lo := uint64(0)
			if i > 0 {
				lo = latBound(i - 1)
			}
			if x < lo || x >= latBound(i) {
				t.Fatalf("%d µs in bucket %d = [%d, %d)", x, i, lo, latBound(i))
			}
			if i >= latSub && (latBound(i)-lo)*latSub > lo {
				t.Fatalf("bucket %d = [%d, %d) is wider than 1/%d of its lower bound", i, lo, latBound(i), latSub)
			}
		}
	}
}

func TestLatencyBucketsIncludeTheirUpperBoundAsTheHistogramSays(t *testing.T) {
	t.Parallel()
	var h latencyHistogram
	bounds := h.snapshot().Bounds
	if got := latIndexOf(0); got != 0 {
		t.Errorf("0 in bucket %d, want 0", got)
	}
	for i, b := range bounds {
		if got := latIndexOf(b); got != i {
			t.Fatalf("%v in bucket %d, want %d: the bucket of bound %v", b, got, i, b)
		}
		if got := latIndexOf(b + 1); got != i+1 {
			t.Fatalf("%v in bucket %d, want %d: just above bound %v", b+1, got, i+1, b)
		}
	}
	if got := latIndexOf(time.Hour); got != len(bounds) {
		t.Errorf("an hour in bucket %d, want the last, %d", got, len(bounds))
	}
}

func TestCommitLatencyIsFromTheAppendCallToTheDurableCommit(t *testing.T) {
	t.Parallel()
	const interval = 30 * time.Millisecond
	s := openT(t, t.TempDir(), func(o *Options) { o.SyncInterval = interval })
	defer s.Close()
	if h := s.CommitLatency(); h.Count != 0 || len(h.Bounds) != latBuckets || len(h.Counts) != latBuckets+1 {
		t.Fatalf("a fresh spool's histogram: %d values, %d bounds, %d counts", h.Count, len(h.Bounds), len(h.Counts))
	}
	start := time.Now()
	appendN(t, s, 0, 10) // one call: every record waits for the batch's SyncInterval
	_, c, err := s.AppendAsync(context.Background(), []aggregation.Record{rec(10), rec(11), rec(12)})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	h := s.CommitLatency()
	if h.Count != 13 {
		t.Fatalf("%d values, want one per record (13)", h.Count)
	}
	// The bucket of 30 ms starts at 29.7 ms; no record waited longer than
	// the test did.
	if lo, hi := h.Quantile(0.01), h.Quantile(1); lo < interval*99/100 || hi > took+took/16 {
		t.Errorf("latencies from %v to %v, want from %v to at most the %v the appends took", lo, hi, interval, took)
	}
	if h.Sum < 13*interval || h.Sum > 13*took {
		t.Errorf("sum %v for 13 records", h.Sum)
	}
}

func TestCommitLatencyCountsTheWaitAtTheDiskLimit(t *testing.T) {
	t.Parallel()
	s := openT(t, t.TempDir(), func(o *Options) { o.MaxBytes = 64 << 10; o.WhenFull = Block })
	defer s.Close()
	big := func(i int) aggregation.Record {
		return aggregation.Record{PartitionKey: "K", Data: make([]byte, 1000+i%7)}
	}
	// Fill the spool to its limit: until an append times out because it
	// blocked there (a slow commit on a busy machine can time out too).
	n := 0
	for {
		blocked := s.Stats().Blocked
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		_, err := s.Append(ctx, big(n))
		cancel()
		n++
		if errors.Is(err, context.DeadlineExceeded) {
			if s.Stats().Blocked > blocked {
				break // blocked at the limit: this record may be appended later
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	before := s.CommitLatency().Count
	blocked := s.Stats().Blocked
	const wait = 100 * time.Millisecond
	done := make(chan error, 2)
	go func() {
		_, err := s.Append(context.Background(), big(n))
		done <- err
	}()
	waitFor(t, func() bool { return s.Stats().Blocked > blocked })
	time.Sleep(wait) // the blocked call's latency grows meanwhile
	// A second call blocks too: the first one's latency is still timed
	// from its own start, not from this one's.
	go func() {
		_, err := s.Append(context.Background(), big(n+1))
		done <- err
	}()
	waitFor(t, func() bool { return s.Stats().Blocked > blocked+1 })
	// Resolve every record: the segments are deleted, the calls go on.
	go func() {
		for {
			e, err := s.Next(context.Background())
			if err != nil {
				return
			}
			s.Ack(e)
		}
	}()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	h := s.CommitLatency()
	if h.Count <= before || h.Quantile(1) < wait {
		t.Errorf("after a wait of over %v at the limit: %d values (%d before), the longest %v", wait, h.Count, before, h.Quantile(1))
	}
}

func TestCommitLatencySumIsToTheMicrosecondAndNeverGoesBackwards(t *testing.T) {
	t.Parallel()
	const perHour = 20_000 * 3600 // appends a second, for an hour
	tests := []struct {
		name     string
		d        time.Duration
		n        int
		times    int
		wantSec  float64
		wantMean time.Duration
	}{
		// Past the largest Duration (292 years) after 5.3 days.
		{"a week of 20,000 appends a second each waiting 1 s at the disk limit", time.Second, perHour, 24 * 7, 24 * 7 * perHour, time.Second},
		{"a commit's total is rounded once", 1400, 3, 1, 4e-6, 4 * time.Microsecond / 3},
		{"less than half a microsecond counts nothing", 499, 1, 1, 0, 0},
		{"half a microsecond counts one", 500, 1, 1, 1e-6, time.Microsecond},
		{"a negative latency counts nothing", -time.Second, 5, 1, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h latencyHistogram
			var prev producer.Histogram
			for i := 1; i <= tc.times; i++ {
				h.observe(tc.d, tc.n)
				s := h.snapshot()
				if s.Sum < prev.Sum || s.SumSeconds < prev.SumSeconds || s.Sum < 0 {
					t.Fatalf("after %d commits the sum went from %v (%g s) to %v (%g s)", i, prev.Sum, prev.SumSeconds, s.Sum, s.SumSeconds)
				}
				prev = s
			}
			if math.Abs(prev.SumSeconds-tc.wantSec) > tc.wantSec*1e-12 {
				t.Errorf("SumSeconds %g, want %g", prev.SumSeconds, tc.wantSec)
			}
			if want := time.Duration(tc.wantSec * 1e6); want < math.MaxInt64/time.Microsecond && prev.Sum != want*time.Microsecond {
				t.Errorf("Sum %v, want %v", prev.Sum, want*time.Microsecond)
			}
			if m := prev.Mean(); m != tc.wantMean {
				t.Errorf("Mean %v, want %v", m, tc.wantMean)
			}
		})
	}
}
