package producer

import (
	"context"
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
