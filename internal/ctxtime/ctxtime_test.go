package ctxtime

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestSleep(t *testing.T) {
	t.Parallel()
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		d       time.Duration
		want    error
		atLeast time.Duration
	}{
		{name: "a full pause returns nil after d", ctx: context.Background(), d: 20 * time.Millisecond, atLeast: 20 * time.Millisecond},
		{name: "a zero pause returns at once", ctx: context.Background(), d: 0},
		{name: "a negative pause returns at once", ctx: context.Background(), d: -time.Second},
		{name: "a done context ends a long pause with its error", ctx: canceled, d: time.Hour, want: context.Canceled},
		{name: "a done context ends a zero pause with its error", ctx: canceled, d: 0, want: context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			if err := Sleep(tt.ctx, tt.d); !errors.Is(err, tt.want) {
				t.Errorf("Sleep = %v, want %v", err, tt.want)
			}
			if took := time.Since(start); took < tt.atLeast || took > tt.atLeast+time.Minute {
				t.Errorf("Sleep took %v, want at least %v", took, tt.atLeast)
			}
		})
	}
}

func TestSleepEndsWhenTheContextEnds(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Sleep = %v, want %v", err, context.DeadlineExceeded)
	}
	if took := time.Since(start); took > time.Minute {
		t.Errorf("Sleep took %v after its context ended", took)
	}
}

func TestJitterStaysWithinHalfToWhole(t *testing.T) {
	t.Parallel()
	for _, d := range []time.Duration{0, 1, 2, 3, time.Millisecond, time.Second} {
		for range 200 {
			if j := Jitter(d); (d > 1 && j < d/2) || j > d {
				t.Fatalf("Jitter(%v) = %v, outside [%v, %v]", d, j, d/2, d)
			}
		}
	}
}
