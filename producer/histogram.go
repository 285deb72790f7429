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
//
// Its sum is kept in whole microseconds (each value or batch rounded to the
// nearest) in a uint64, which holds about 584,000 years of summed latency:
// 29 years of 200,000 results a second at 100 ms each, 2.9 years of them at
// 1 s. Nanoseconds in an int64 held 292 years, 5.4 days of that load.
type latencyHistogram struct {
	counts [histogramBuckets + 1]atomic.Uint64
	sum    atomic.Uint64 // microseconds
}

// observe records one duration.
func (h *latencyHistogram) observe(d time.Duration) {
	h.counts[bucketOf(d)].Add(1)
	h.sum.Add(micros(d))
}

// micros returns d in whole microseconds, rounded to the nearest; 0 for a
// negative d.
func micros(d time.Duration) uint64 {
	if d <= 0 {
		return 0
	}
	us := uint64(d / time.Microsecond)
	if d%time.Microsecond >= time.Microsecond/2 {
		us++
	}
	return us
}

// maxSumMicros is the largest sum, in microseconds, that Histogram.Sum
// holds.
const maxSumMicros = math.MaxInt64 / uint64(time.Microsecond)

// maxSum is where Histogram.Sum stops.
const maxSum = time.Duration(maxSumMicros) * time.Microsecond

// SetSumMicroseconds sets Sum and SumSeconds from a total of us
// microseconds, Sum stopping at its largest value: for a histogram built
// outside this package from a sum kept in microseconds (the spool's).
func (h *Histogram) SetSumMicroseconds(us uint64) {
	h.Sum = time.Duration(min(us, maxSumMicros)) * time.Microsecond
	h.SumSeconds = float64(us) / 1e6
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
	sum    int64 // nanoseconds, rounded to microseconds by addTo
}

func (b *latencyBatch) add(d time.Duration) {
	b.counts[bucketOf(d)]++
	b.sum += int64(max(d, 0))
}

// addTo adds the batch to h.
func (b *latencyBatch) addTo(h *latencyHistogram) {
	for i, n := range b.counts {
		if n != 0 {
			h.counts[i].Add(n)
		}
	}
	h.sum.Add(micros(time.Duration(b.sum)))
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
	s.SetSumMicroseconds(h.sum.Load())
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
	// Sum is their total, to the microsecond in the producer's and the
	// spool's histograms. It stops at the largest Duration (about 292
	// years of summed latency, 13 hours of 200,000 results a second at 1 s
	// each) rather than wrap; SumSeconds goes on.
	Sum time.Duration
	// SumSeconds is the same total in seconds, to the microsecond while it
	// is below 2^53 µs (285 years), within a relative 1e-16 above. It goes
	// on where Sum stops and never decreases from one snapshot of a
	// histogram to the next: the count under it wraps only after about
	// 584,000 years of summed latency (29 years of 200,000 results a
	// second at 100 ms each). It is what producer/metrics exports as the
	// _sum. A Histogram made by hand may leave it 0; Sum then stands for
	// the total.
	SumSeconds float64
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

// TotalSeconds returns the total in seconds: SumSeconds, or Sum for a
// histogram made without it. Exporters read it.
func (h Histogram) TotalSeconds() float64 {
	if h.SumSeconds != 0 {
		return h.SumSeconds
	}
	return h.Sum.Seconds()
}

// Mean returns the average value, 0 for an empty histogram: Sum over
// Count, or SumSeconds over Count once Sum has stopped at its largest
// value.
func (h Histogram) Mean() time.Duration {
	if h.Count == 0 {
		return 0
	}
	if h.Sum >= maxSum {
		return time.Duration(math.Round(h.TotalSeconds() / float64(h.Count) * 1e9))
	}
	return h.Sum / time.Duration(h.Count)
}
