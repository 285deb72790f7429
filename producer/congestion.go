package producer

import (
	"sync"
	"sync/atomic"
	"time"
)

// callWindow bounds the PutRecords calls in flight, between 1 and
// MaxConnections, the way TCP bounds a congestion window: a call that timed
// out or found the service unavailable halves it (at most once per request
// timeout, since the calls in flight together are one signal), and every
// call that returns raises it by one. Throttling is per shard and handled by
// the shard limiters; this is for an endpoint that is slow as a whole, where
// re-sending every timed-out call at full concurrency would pile new calls
// onto a server still busy with the abandoned ones.
type callWindow struct {
	limit    atomic.Int64
	max      int64
	cooldown time.Duration

	mu      sync.Mutex // guards lastCut
	lastCut time.Time
}

func newCallWindow(maxCalls int, cooldown time.Duration) *callWindow {
	w := &callWindow{max: int64(maxCalls), cooldown: cooldown}
	w.limit.Store(int64(maxCalls))
	return w
}

// allowed returns how many calls may be in flight now.
func (w *callWindow) allowed() int64 { return w.limit.Load() }

// congested halves the window, unless it was cut within the cooldown. It
// reports whether it cut.
func (w *callWindow) congested(now time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.lastCut.IsZero() && now.Sub(w.lastCut) < w.cooldown {
		return false
	}
	w.lastCut = now
	w.limit.Store(max(1, w.limit.Load()/2))
	return true
}

// succeeded raises the window by one call, up to its maximum.
func (w *callWindow) succeeded() {
	for {
		cur := w.limit.Load()
		if cur >= w.max || w.limit.CompareAndSwap(cur, cur+1) {
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
