package producer

import "time"

// Adaptive rate parameters (see DESIGN.md).
const (
	// rateDecrease multiplies a shard's rate when it is throttled.
	rateDecrease = 0.85
	// rateCutInterval: at most one decrease per interval, so that the calls
	// in flight when throttling starts count as one congestion event.
	rateCutInterval = 200 * time.Millisecond
	// rateIncreasePerSecond is added to the rate factor per second of
	// throttle-free success.
	rateIncreasePerSecond = 0.05
	// rateFloor is the lowest rate factor.
	rateFloor = 0.05
	// bucketSeconds is the burst a bucket holds, in seconds of its rate.
	bucketSeconds = 1.0
)

// limiter is a shard's pair of token buckets (bytes and records per second),
// scaled by an adaptive factor in [rateFloor, 1]. Not safe for concurrent use:
// the shard's lock guards it.
type limiter struct {
	enabled      bool
	ceilB, ceilR float64 // rates at factor 1, per second
	capB         float64 // bytes the bucket holds at factor 1
	factor       float64
	tokB, tokR   float64
	last         time.Time // last refill
	lastCut      time.Time // last decrease
	lastInc      time.Time // last increase
}

// newLimiter returns a limiter at percent of the shard limits; burst, when
// larger than one second's bytes, is what the byte bucket holds (a stream
// with large records bursts to 10 MiB).
func newLimiter(percent int, burst int, now time.Time) limiter {
	if percent <= 0 {
		return limiter{}
	}
	l := limiter{
		enabled: true,
		ceilB:   ShardBytesPerSecond * float64(percent) / 100,
		ceilR:   ShardRecordsPerSecond * float64(percent) / 100,
		factor:  1,
		last:    now,
		lastInc: now,
	}
	l.capB = max(l.ceilB*bucketSeconds, float64(burst))
	l.tokB, l.tokR = l.capB, l.ceilR*bucketSeconds
	return l
}

func (l *limiter) refill(now time.Time) {
	dt := now.Sub(l.last).Seconds()
	if dt <= 0 {
		return
	}
	l.last = now
	l.tokB = min(l.tokB+dt*l.ceilB*l.factor, l.capB*l.factor)
	// The record bucket holds one record at least, whatever the factor:
	// at a low RateLimit, a throttled shard's bucket would otherwise stay
	// below the one token a record needs, and the shard never send again
	// (only a success raises the factor).
	l.tokR = min(l.tokR+dt*l.ceilR*l.factor, max(1, l.ceilR*l.factor*bucketSeconds))
}

// take spends the tokens of one Kinesis record of size bytes if there are
// enough. A record larger than the whole bucket goes when the bucket is full
// (the bucket then runs into debt).
func (l *limiter) take(now time.Time, size int) bool {
	if !l.enabled {
		return true
	}
	l.refill(now)
	need := min(float64(size), l.capB*l.factor)
	if l.tokB < need || l.tokR < 1 {
		return false
	}
	l.tokB -= float64(size)
	l.tokR--
	return true
}

// when returns the time at which take(size) can succeed.
func (l *limiter) when(now time.Time, size int) time.Time {
	if !l.enabled {
		return now
	}
	need := min(float64(size), l.capB*l.factor)
	var wait float64
	if l.tokB < need {
		wait = (need - l.tokB) / (l.ceilB * l.factor)
	}
	if l.tokR < 1 {
		wait = max(wait, (1-l.tokR)/(l.ceilR*l.factor))
	}
	return now.Add(time.Duration(wait*float64(time.Second)) + time.Millisecond)
}

// throttled lowers the rate after a throttling response.
func (l *limiter) throttled(now time.Time) {
	if !l.enabled || now.Sub(l.lastCut) < rateCutInterval {
		return
	}
	l.refill(now)
	l.lastCut, l.lastInc = now, now
	l.factor = max(rateFloor, l.factor*rateDecrease)
	l.tokB = min(l.tokB, 0)
	l.tokR = min(l.tokR, 0)
}

// succeeded raises the rate after a throttle-free response.
func (l *limiter) succeeded(now time.Time) {
	if !l.enabled || l.factor >= 1 {
		l.lastInc = now
		return
	}
	l.refill(now)
	dt := now.Sub(l.lastInc).Seconds()
	if dt <= 0 {
		return
	}
	l.lastInc = now
	l.factor = min(1, l.factor+dt*rateIncreasePerSecond)
}
