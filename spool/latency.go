package spool

import (
	"math/bits"
	"sync/atomic"
	"time"

	"github.com/kplgo/kpl/producer"
)

// The commit latency histogram is log-linear over microseconds: below
// latSub µs one bucket per microsecond, then latSub buckets per power of
// two, up to 2^latOctaves µs (about 2 minutes); longer latencies share the
// last bucket. A bucket is at most 1/latSub (6.25%) of its lower bound wide.
const (
	latSubBits = 4
	latSub     = 1 << latSubBits
	latOctaves = 27
	latBuckets = latSub + (latOctaves-latSubBits)*latSub // finite buckets
)

// latencyHistogram counts durations; one goroutine records (the
// committer), any number read.
type latencyHistogram struct {
	counts [latBuckets + 1]atomic.Uint64
	sum    atomic.Uint64 // microseconds, rounded: about 584,000 years of summed latency
}

// latIndex returns the bucket of v microseconds.
func latIndex(v uint64) int {
	if v < latSub {
		return int(v)
	}
	shift := bits.Len64(v) - latSubBits - 1
	i := latSub + shift*latSub + int(v>>uint(shift)-latSub)
	return min(i, latBuckets)
}

// latBound returns the exclusive upper bound of latIndex's bucket i, in
// microseconds: the inclusive bound of the duration bucket i (latIndexOf).
func latBound(i int) uint64 {
	if i < latSub {
		return uint64(i) + 1
	}
	shift := (i - latSub) / latSub
	sub := uint64((i-latSub)%latSub + latSub)
	return (sub + 1) << uint(shift)
}

// latIndexOf returns the bucket of d as producer.Histogram counts them,
// upper bounds included: bucket i holds (latBound(i-1), latBound(i)] µs,
// which is latIndex's [latBound(i-1), latBound(i)) shifted by one.
func latIndexOf(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return latIndex(uint64((d+time.Microsecond-1)/time.Microsecond) - 1)
}

// observe records n values of d. Their total is added in microseconds,
// rounded to the nearest.
func (h *latencyHistogram) observe(d time.Duration, n int) {
	d = max(d, 0)
	h.counts[latIndexOf(d)].Add(uint64(n))
	us, frac := uint64(d/time.Microsecond), uint64(d%time.Microsecond)
	h.sum.Add(us*uint64(n) + (frac*uint64(n)+uint64(time.Microsecond)/2)/uint64(time.Microsecond))
}

// snapshot returns the histogram as a producer.Histogram.
func (h *latencyHistogram) snapshot() producer.Histogram {
	s := producer.Histogram{Bounds: make([]time.Duration, latBuckets), Counts: make([]uint64, latBuckets+1)}
	for i := range s.Bounds {
		s.Bounds[i] = time.Duration(latBound(i)) * time.Microsecond
	}
	for i := range s.Counts {
		c := h.counts[i].Load()
		s.Counts[i] = c
		s.Count += c
	}
	s.SetSumMicroseconds(h.sum.Load())
	return s
}

// mark is the start of one append call and how many of its records went
// into a batch.
type mark struct {
	start time.Time
	n     int
}

// CommitLatency returns the histogram of the time from the start of each
// record's Append, AppendBatch or AppendAsync call to its batch being
// durable (written and fsynced; with Options.NoSync, written): the latency
// that durability adds before a caller may tell anyone the record is safe.
// Waiting at Options.MaxBytes (Block) counts, so does waiting for a commit
// already running. Records whose commit failed are not counted. Buckets
// are 1 µs wide below 16 µs, then 16 per power of two (at most 6.25% of
// their lower bound wide), up to about 2 minutes; Quantile interpolates
// within a bucket. It covers the records appended since Open, and is safe
// to call concurrently with everything else.
func (s *Spool) CommitLatency() producer.Histogram { return s.commitLat.snapshot() }
