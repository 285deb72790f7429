package producer

import (
	"sync"
	"sync/atomic"
	"time"
)

// callWindow bounds the PutRecords calls in flight, between 1 and
// MaxConnections, and the bytes of one call, between one aggregate and
// CollectionMaxSize, the way TCP bounds a congestion window. It starts at one
// call of one aggregate's size (slow start): every call that returns adds a
// call and, until the first congestion signal, doubles the call size, so an
// endpoint that keeps up is at full width within a few round trips. A call
// that timed out or found the service unavailable halves both (at most once
// per request timeout, since the calls in flight together are one signal);
// after that, every returned call adds a call and a sixteenth of the largest
// call size. Throttling is per shard and handled by the shard limiters; this
// is for an endpoint that is slow as a whole (LocalStack, kinesis-mock, an
// overloaded network path), where re-sending every timed-out call at full
// width would pile new calls onto a server still busy with the abandoned
// ones.
//
// It also bounds the bytes of all calls in flight together to what the
// endpoint moves in a quarter of the request timeout. The endpoint's rate is
// read off each returned call by Little's law: the bytes that were in
// flight when the call started, over the call's duration. While calls come
// back in less than a quarter of the timeout the bound doubles from one
// aggregate (it is not the endpoint that limits); a call back within a third
// raises it to what was in flight and one aggregate more, and never lowers
// it; after a slower call it follows the rate. Between a quarter and a
// third the rate is not followed: at a latency that does not grow with the
// bytes in flight, the rate a full window measures is the bound itself over
// the latency, and following it would shrink the bound at every call down
// to one aggregate. Without it, calls sized for the rate the endpoint had a
// moment ago can all time out together when it slows (kinesis-mock slows
// as its shards fill, and with the machine's load) and be stored twice when
// they are sent again.
type callWindow struct {
	limit    atomic.Int64
	max      int64
	bytes    atomic.Int64 // largest call now, in bytes
	minBytes int64
	maxBytes int64
	cooldown time.Duration
	slow     atomic.Bool // slow start: no congestion signal yet

	inflight atomic.Int64 // bytes of the calls in flight
	budget   atomic.Int64 // most bytes in flight

	mu      sync.Mutex // guards lastCut
	lastCut time.Time
}

func newCallWindow(maxCalls int, minBytes, maxBytes int, cooldown time.Duration) *callWindow {
	w := &callWindow{
		max:      int64(maxCalls),
		minBytes: int64(min(minBytes, maxBytes)),
		maxBytes: int64(maxBytes),
		cooldown: cooldown,
	}
	w.limit.Store(1)
	w.bytes.Store(w.minBytes)
	w.budget.Store(w.minBytes)
	w.slow.Store(true)
	return w
}

// room reports whether another call may start: fewer calls than allowed in
// flight, and bytes in flight under the budget.
func (w *callWindow) room(calls int64) bool {
	return calls < w.limit.Load() && w.inflight.Load() < w.budget.Load()
}

// start counts a call of size bytes into flight and returns the bytes in
// flight with it, which succeeded needs.
func (w *callWindow) start(size int) int64 { return w.inflight.Add(int64(size)) }

// done counts a call of size bytes out of flight.
func (w *callWindow) done(size int) { w.inflight.Add(-int64(size)) }

// allowed returns how many calls may be in flight now.
func (w *callWindow) allowed() int64 { return w.limit.Load() }

// callBytes returns the largest call allowed now, in bytes.
func (w *callWindow) callBytes() int { return int(w.bytes.Load()) }

// congested halves the window, unless it was cut within the cooldown. It
// reports whether it cut.
func (w *callWindow) congested(now time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.lastCut.IsZero() && now.Sub(w.lastCut) < w.cooldown {
		return false
	}
	w.lastCut = now
	w.slow.Store(false)
	w.limit.Store(max(1, w.limit.Load()/2))
	w.bytes.Store(max(w.minBytes, w.bytes.Load()/2))
	w.budget.Store(max(w.minBytes, w.budget.Load()/2))
	return true
}

// succeeded raises the window after a call of size bytes returned in dur:
// by one call, and by the call size (slow start) or a sixteenth of the
// largest call size, up to their maximums. The call size is also held to
// what the endpoint moves in a third of the request timeout at the rate this
// call saw, so that calls finish well within their timeout however slow the
// endpoint is (a 5 MiB call to an engine that absorbs 1 MB/s would time out
// every time).
//
// The latency of the call is a signal too, before any call times out: a
// call that took more than a third of the request timeout adds no call and
// takes one away (the endpoint is saturated: more calls in flight only
// queue), and one that took more than half of it counts as congestion (the
// next ones would time out, and a timed-out call that the endpoint stored
// anyway is stored twice when it is sent again).
func (w *callWindow) succeeded(now time.Time, size int, dur time.Duration, inflightAtStart int64) {
	w.follow(dur, inflightAtStart)
	switch {
	case dur > w.cooldown/2:
		w.congested(now)
	case dur > w.cooldown/3:
		lower(&w.limit, 1)
	default:
		w.grow()
	}
	w.hold(size, dur)
}

// follow sets the bound on bytes in flight after a call that started with
// inflight bytes in flight and took dur: at least twice inflight after a call
// back within a quarter of the request timeout, at least inflight and one
// aggregate within a third (the calls in flight finish in good time: probe
// for more, as TCP's congestion avoidance does), else a quarter timeout's
// worth at the rate the call measured.
func (w *callWindow) follow(dur time.Duration, inflight int64) {
	target := w.cooldown / 4
	ceiling := w.max * w.maxBytes
	if dur <= 0 || inflight <= 0 {
		return
	}
	if dur < target {
		raiseTo(&w.budget, min(ceiling, 2*inflight))
		return
	}
	if dur <= w.cooldown/3 {
		raiseTo(&w.budget, min(ceiling, inflight+w.minBytes))
		return
	}
	rate := float64(inflight) / dur.Seconds()
	w.budget.Store(min(ceiling, max(w.minBytes, int64(rate*target.Seconds()))))
}

// grow widens the window after a call that returned in good time.
func (w *callWindow) grow() {
	raise(&w.limit, 1, w.max)
	if w.slow.Load() {
		raise(&w.bytes, w.bytes.Load(), w.maxBytes)
	} else {
		raise(&w.bytes, max(1, w.maxBytes/16), w.maxBytes)
	}
}

// hold keeps the call size to what the endpoint moves in a third of the
// request timeout at the rate a call of size bytes in dur saw.
func (w *callWindow) hold(size int, dur time.Duration) {
	if dur <= 0 || size <= 0 {
		return
	}
	budget := int64(float64(size) / dur.Seconds() * w.cooldown.Seconds() / 3)
	budget = max(w.minBytes, budget)
	for {
		cur := w.bytes.Load()
		if cur <= budget || w.bytes.CompareAndSwap(cur, budget) {
			return
		}
	}
}

func raiseTo(v *atomic.Int64, to int64) {
	for {
		cur := v.Load()
		if cur >= to || v.CompareAndSwap(cur, to) {
			return
		}
	}
}

func lower(v *atomic.Int64, by int64) {
	for {
		cur := v.Load()
		if cur <= 1 || v.CompareAndSwap(cur, max(1, cur-by)) {
			return
		}
	}
}

func raise(v *atomic.Int64, by, ceiling int64) {
	for {
		cur := v.Load()
		if cur >= ceiling || v.CompareAndSwap(cur, min(cur+by, ceiling)) {
			return
		}
	}
}

// congestionSignal reports whether a whole-call error says the endpoint as a
// whole is overloaded.
func congestionSignal(c errClass) bool {
	switch c.code {
	case "RequestTimeout", "RequestTimeoutException", "ServiceUnavailable", "ServiceUnavailableException", "SlowDown", "HTTP503":
		return true
	}
	return false
}
