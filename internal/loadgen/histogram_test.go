package loadgen

import (
	"testing"
	"time"
)

func TestHistogramQuantiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		values []time.Duration
		q      float64
		want   time.Duration
	}{
		{name: "an empty histogram answers zero", q: 0.5, want: 0},
		{name: "small values are exact", values: []time.Duration{3 * time.Microsecond, 5 * time.Microsecond, 7 * time.Microsecond}, q: 0.5, want: 5 * time.Microsecond},
		{name: "the maximum is never exceeded", values: []time.Duration{time.Second}, q: 0.99, want: time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var h Histogram
			for _, v := range tc.values {
				h.Record(v)
			}
			if got := h.Quantile(tc.q); got != tc.want {
				t.Fatalf("Quantile(%v) = %v, want %v", tc.q, got, tc.want)
			}
		})
	}
	t.Run("quantiles of a uniform spread are within 2% of the truth", func(t *testing.T) {
		t.Parallel()
		var h Histogram
		for i := 1; i <= 100_000; i++ {
			h.Record(time.Duration(i) * 10 * time.Microsecond) // 10µs .. 1s
		}
		for _, q := range []float64{0.5, 0.9, 0.99} {
			want := time.Duration(q*100_000) * 10 * time.Microsecond
			got := h.Quantile(q)
			if diff := float64(got-want) / float64(want); diff > 0.02 || diff < -0.02 {
				t.Fatalf("Quantile(%v) = %v, want about %v", q, got, want)
			}
		}
	})
	t.Run("merging adds the counts of both", func(t *testing.T) {
		t.Parallel()
		var a, b Histogram
		a.Record(time.Millisecond)
		b.Record(3 * time.Millisecond)
		b.Record(3 * time.Millisecond)
		a.Merge(&b)
		if a.Count() != 3 || a.Max() != 3*time.Millisecond {
			t.Fatalf("merged: count %d max %v", a.Count(), a.Max())
		}
	})
}
