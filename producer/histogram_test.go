package producer

import (
	"context"
	"math"
	"testing"
	"time"
)

func TestBucketOf(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want int
	}{
		{0, 0},
		{time.Millisecond, 0},
		{time.Millisecond + 1, 1},
		{2 * time.Millisecond, 1},
		{2*time.Millisecond + 1, 2},
		{4 * time.Millisecond, 2},
		{1000 * time.Millisecond, 10}, // (512 ms, 1024 ms]
		{time.Hour, histogramBuckets}, // above the last bound
	}
	for _, tc := range tests {
		if got := bucketOf(tc.d); got != tc.want {
			t.Errorf("bucketOf(%v) = %d, want %d", tc.d, got, tc.want)
		}
		if b := bucketOf(tc.d); b < histogramBuckets && tc.d > histogramFirst<<b {
			t.Errorf("%v lies above its bucket's bound %v", tc.d, histogramFirst<<b)
		}
	}
}

func TestHistogramQuantile(t *testing.T) {
	var h latencyHistogram
	for range 90 {
		h.observe(500 * time.Microsecond) // bucket (0, 1 ms]
	}
	var b latencyBatch
	for range 10 {
		b.add(100 * time.Millisecond) // bucket (64 ms, 128 ms]
	}
	b.addTo(&h)
	s := h.snapshot()
	if s.Count != 100 || s.Sum != 90*500*time.Microsecond+10*100*time.Millisecond {
		t.Fatalf("count %d, sum %v", s.Count, s.Sum)
	}
	if p50 := s.Quantile(0.5); p50 <= 0 || p50 > time.Millisecond {
		t.Errorf("p50 = %v, want within (0, 1ms]", p50)
	}
	if p99 := s.Quantile(0.99); p99 <= 64*time.Millisecond || p99 > 128*time.Millisecond {
		t.Errorf("p99 = %v, want within (64ms, 128ms]", p99)
	}
	if (Histogram{}).Quantile(0.5) != 0 || (Histogram{}).Mean() != 0 {
		t.Error("an empty histogram has non-zero quantiles")
	}
}

func TestStatsCountEveryResultInTheLatencyHistogram(t *testing.T) {
	c := newFakeClient(2)
	p := newProducer(t, c)
	recs := putAll(t, p, 500, 10)
	if err := p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitAll(t, recs)
	st := p.Stats()
	if st.PutLatency.Count != uint64(len(recs)) {
		t.Errorf("put latency counts %d results, want %d", st.PutLatency.Count, len(recs))
	}
	if st.CallDuration.Count != st.PutRecordsCalls {
		t.Errorf("call duration counts %d calls, want %d", st.CallDuration.Count, st.PutRecordsCalls)
	}
}

// A week of 200,000 results a second: the sum of their latencies passes the
// largest Duration (about 292 years) after 5.4 days at 100 ms and after 13
// hours at 1 s. Sum stops there instead of wrapping; SumSeconds and Mean go
// on.
func TestHistogramSumNeverGoesBackwardsUnderAWeekOfLoad(t *testing.T) {
	const perHour = 200_000 * 3600
	for _, lat := range []time.Duration{100 * time.Millisecond, time.Second} {
		t.Run(lat.String(), func(t *testing.T) {
			var h latencyHistogram
			var hour latencyBatch
			hour.counts[bucketOf(lat)] = perHour
			hour.sum = perHour * int64(lat)
			var prev Histogram
			for hr := 1; hr <= 24*7; hr++ {
				hour.addTo(&h)
				s := h.snapshot()
				if s.Sum < prev.Sum || s.Sum <= 0 {
					t.Fatalf("after %d h Sum went from %v to %v", hr, prev.Sum, s.Sum)
				}
				if s.SumSeconds <= prev.SumSeconds {
					t.Fatalf("after %d h SumSeconds went from %g to %g", hr, prev.SumSeconds, s.SumSeconds)
				}
				if want := float64(hr) * perHour * lat.Seconds(); math.Abs(s.SumSeconds-want) > want*1e-12 {
					t.Fatalf("after %d h SumSeconds = %g, want %g", hr, s.SumSeconds, want)
				}
				if m := s.Mean(); m != lat {
					t.Fatalf("after %d h Mean = %v, want %v", hr, m, lat)
				}
				prev = s
			}
		})
	}
}

// Sum and SumSeconds are to the microsecond: each value, and each batch's
// total, is rounded to the nearest one.
func TestHistogramSumIsToTheNearestMicrosecond(t *testing.T) {
	tests := []struct {
		name   string
		values []time.Duration
		batch  bool
		want   time.Duration
	}{
		{"a value below half a microsecond counts nothing", []time.Duration{499}, false, 0},
		{"a value of half a microsecond counts one", []time.Duration{500}, false, time.Microsecond},
		{"values are rounded one by one", []time.Duration{1400, 1400, 1400}, false, 3 * time.Microsecond},
		{"a batch is rounded once", []time.Duration{1400, 1400, 1400}, true, 4 * time.Microsecond},
		{"a negative value counts nothing", []time.Duration{-time.Second, 2 * time.Microsecond}, false, 2 * time.Microsecond},
		{"a negative value in a batch counts nothing", []time.Duration{-time.Second, 2 * time.Microsecond}, true, 2 * time.Microsecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h latencyHistogram
			var b latencyBatch
			for _, d := range tc.values {
				if tc.batch {
					b.add(d)
				} else {
					h.observe(d)
				}
			}
			b.addTo(&h)
			s := h.snapshot()
			if s.Sum != tc.want || s.SumSeconds != tc.want.Seconds() {
				t.Errorf("Sum %v, SumSeconds %g, want %v", s.Sum, s.SumSeconds, tc.want)
			}
			if s.Count != uint64(len(tc.values)) {
				t.Errorf("Count %d, want %d", s.Count, len(tc.values))
			}
		})
	}
}

func TestHistogramMeanOfAHandMadeHistogramIsSumOverCount(t *testing.T) {
	h := Histogram{Count: 4, Sum: 10 * time.Millisecond}
	if m := h.Mean(); m != 2500*time.Microsecond {
		t.Errorf("Mean = %v, want 2.5ms", m)
	}
}
