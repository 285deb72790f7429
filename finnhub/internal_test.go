package finnhub

import (
	"testing"
	"time"
)

func TestBackoffDoublesWithJitterUpToMaxAndResets(t *testing.T) {
	t.Parallel()
	b := backoff{min: 100 * time.Millisecond, max: time.Second}
	b.reset()
	bounds := []time.Duration{100, 200, 400, 800, 1000, 1000, 1000}
	for round := range 50 { // jitter is random: check the bounds many times
		b.reset()
		for i, bound := range bounds {
			bound *= time.Millisecond
			d := b.next()
			if d < bound/2 || d > bound {
				t.Fatalf("round %d, delay %d = %v, want within [%v, %v]", round, i, d, bound/2, bound)
			}
		}
	}
}

func TestRateLimiterAllowsOneEventPerIntervalAndCountsTheRest(t *testing.T) {
	t.Parallel()
	r := rateLimiter{every: 10 * time.Second}
	t0 := time.Unix(1000, 0)
	steps := []struct {
		name       string
		at         time.Duration
		ok         bool
		suppressed int
	}{
		{"the first event is allowed", 0, true, 0},
		{"an event within the interval is refused", time.Second, false, 0},
		{"another event within the interval is refused", 9 * time.Second, false, 0},
		{"the next event after the interval is allowed with the count", 10 * time.Second, true, 2},
		{"the count starts again", 11 * time.Second, false, 0},
		{"a later event reports the new count", 30 * time.Second, true, 1},
	}
	for _, s := range steps {
		ok, n := r.allow(t0.Add(s.at))
		if ok != s.ok || n != s.suppressed {
			t.Fatalf("%s: allow = %v, %d; want %v, %d", s.name, ok, n, s.ok, s.suppressed)
		}
	}
}

func TestRedactErrorHidesTheTokenAndKeepsTheChain(t *testing.T) {
	t.Parallel()
	base := &testErr{"dial wss://h?token=abcd1234 failed; key abcd1234"}
	err := redactError(base, "abcd1234")
	if got, want := err.Error(), "dial wss://h?token=REDACTED failed; key REDACTED"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if err.(*redactedError).Unwrap() != base {
		t.Error("the redacted error does not unwrap to the original")
	}
	clean := &testErr{"connection refused"}
	if redactError(clean, "abcd1234") != clean {
		t.Error("an error without the token was wrapped")
	}
	if redactError(nil, "x") != nil {
		t.Error("nil became non-nil")
	}
}

type testErr struct{ s string }

func (e *testErr) Error() string { return e.s }
