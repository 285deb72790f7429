package producer

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Latency histograms have fixed buckets whose upper bounds double from
// histogramFirst: 1 ms, 2 ms, 4 ms, ... about 9 minutes, then +Inf. Recording
// a value is two atomic adds and a bit scan, cheap enough for every record.
const (
	histogramFirst   = time.Millisecond
	histogramBuckets = 20 // finite buckets; one more holds the rest
)

// latencyHistogram is a live histogram of durations.
type latencyHistogram struct {
	counts [histogramBuckets + 1]atomic.Uint64
	sum    atomic.Int64 // nanoseconds
}

// observe records one duration.
func (h *latencyHistogram) observe(d time.Duration) {
	h.counts[bucketOf(d)].Add(1)
	h.sum.Add(int64(d))
}

// bucketOf returns the index of the first bucket whose bound holds d.
func bucketOf(d time.Duration) int {
	if d <= histogramFirst {
		return 0
	}
	// The smallest i with first<<i >= d.
	q := uint64((d - 1) / histogramFirst) // d in (first*q, first*(q+1)]
	i := bits.Len64(q)
	return min(i, histogramBuckets)
}

// latencyBatch collects durations locally, to be added to a shared
// histogram in one go.
type latencyBatch struct {
	counts [histogramBuckets + 1]uint64
	sum    int64
}

func (b *latencyBatch) add(d time.Duration) {
	b.counts[bucketOf(d)]++
	b.sum += int64(d)
}

// addTo adds the batch to h.
func (b *latencyBatch) addTo(h *latencyHistogram) {
	for i, n := range b.counts {
		if n != 0 {
			h.counts[i].Add(n)
		}
	}
	h.sum.Add(b.sum)
}

func (h *latencyHistogram) snapshot() Histogram {
	var s Histogram
	s.Bounds = make([]time.Duration, histogramBuckets)
	s.Counts = make([]uint64, histogramBuckets+1)
	for i := range s.Bounds {
		s.Bounds[i] = histogramFirst << i
	}
	for i := range s.Counts {
		n := h.counts[i].Load()
		s.Counts[i] = n
		s.Count += n
	}
	s.Sum = time.Duration(h.sum.Load())
	return s
}

// Histogram is a snapshot of a latency histogram with fixed buckets.
type Histogram struct {
	// Bounds are the buckets' upper bounds, inclusive, increasing: for
	// the producer's histograms 1 ms, 2 ms, 4 ms and so on (the spool's
	// CommitLatency has finer ones).
	Bounds []time.Duration
	// Counts[i] counts the values in (Bounds[i-1], Bounds[i]]; the last
	// element counts those above the last bound. Not cumulative.
	Counts []uint64
	// Count is the number of values recorded.
	Count uint64
	// Sum is their total.
	Sum time.Duration
}

// Quantile returns an estimate of the q-quantile (0 < q <= 1): the upper
// bound of the bucket that holds it, interpolated linearly inside the
// bucket. It returns 0 for an empty histogram.
func (h Histogram) Quantile(q float64) time.Duration {
	if h.Count == 0 || len(h.Counts) == 0 {
		return 0
	}
	rank := math.Max(1, math.Ceil(q*float64(h.Count)))
	var seen float64
	for i, n := range h.Counts {
		if n == 0 {
			continue
		}
		if seen+float64(n) >= rank {
			if i >= len(h.Bounds) {
				return h.Bounds[len(h.Bounds)-1]
			}
			lo := time.Duration(0)
			if i > 0 {
				lo = h.Bounds[i-1]
			}
			frac := (rank - seen) / float64(n)
			return lo + time.Duration(frac*float64(h.Bounds[i]-lo))
		}
		seen += float64(n)
	}
	return h.Bounds[len(h.Bounds)-1]
}

// Mean returns the average value, 0 for an empty histogram.
func (h Histogram) Mean() time.Duration {
	if h.Count == 0 {
		return 0
	}
	return h.Sum / time.Duration(h.Count)
}
