package limitserver

import (
	"math/bits"
	"time"
)

// nanosPerSecond is the divisor that turns rate*nanoseconds into units.
const nanosPerSecond = uint64(time.Second)

// bucket is a token bucket in integer arithmetic: tokens refill at rate units
// per second up to capacity, and the fraction of a unit earned so far is kept
// in frac (in units*nanoseconds, below one second's worth), so refills are
// exact whatever the step of the clock. A zero rate means unlimited. Not safe
// for concurrent use; the owning shard's mutex guards it.
type bucket struct {
	rate     uint64 // units per second; 0 = unlimited
	capacity uint64 // most tokens it holds
	tokens   uint64
	frac     uint64 // rate*ns not yet converted to a whole token, < nanosPerSecond
	last     time.Time
}

// newBucket returns a full bucket refilling at rate units per second and
// holding burst worth of them (at least one unit). rate 0 means unlimited.
func newBucket(rate uint64, burst time.Duration, now time.Time) bucket {
	b := bucket{rate: rate, last: now}
	if rate == 0 {
		return b
	}
	b.capacity = scale(rate, burst)
	if b.capacity == 0 {
		b.capacity = 1
	}
	b.tokens = b.capacity
	return b
}

// scale returns rate*d/1s, saturating at the largest uint64.
func scale(rate uint64, d time.Duration) uint64 {
	if d <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(rate, uint64(d))
	if hi >= nanosPerSecond {
		return ^uint64(0)
	}
	q, _ := bits.Div64(hi, lo, nanosPerSecond)
	return q
}

// refill adds the tokens earned between the last refill and now.
func (b *bucket) refill(now time.Time) {
	d := now.Sub(b.last)
	if d <= 0 || b.rate == 0 {
		return
	}
	b.last = now
	if b.tokens >= b.capacity {
		b.frac = 0
		return
	}
	hi, lo := bits.Mul64(b.rate, uint64(d))
	var carry uint64
	lo, carry = bits.Add64(lo, b.frac, 0)
	hi += carry
	if hi >= nanosPerSecond { // the quotient does not fit in 64 bits: certainly full
		b.tokens, b.frac = b.capacity, 0
		return
	}
	q, r := bits.Div64(hi, lo, nanosPerSecond)
	if q >= b.capacity-b.tokens {
		b.tokens, b.frac = b.capacity, 0
		return
	}
	b.tokens += q
	b.frac = r
}

// has reports whether n tokens are available (always, when unlimited).
func (b *bucket) has(n uint64) bool { return b.rate == 0 || b.tokens >= n }

// take removes n tokens; the caller checked has(n).
func (b *bucket) take(n uint64) {
	if b.rate != 0 {
		b.tokens -= n
	}
}

// setCapacity changes the bucket's capacity to c (at least one unit); a
// lower capacity drops the tokens above it. fill also fills the bucket.
// An unlimited bucket stays unlimited.
func (b *bucket) setCapacity(c uint64, fill bool) {
	if b.rate == 0 {
		return
	}
	b.capacity = max(c, 1)
	if fill || b.tokens > b.capacity {
		b.tokens = b.capacity
	}
}
