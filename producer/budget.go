package producer

import (
	"context"
	"sync"
	"sync/atomic"
)

// budget is the only place that counts accepted-but-unresolved records: the
// buffer bounds (MaxBufferedRecords, MaxBufferedBytes), the flush epochs,
// and the broadcast that wakes whoever waits for records to resolve (a Put
// waiting for room, Flush, Close).
type budget struct {
	maxRecs, maxBytes int64

	// recs also counts Puts in progress, which is what lets Close wait
	// for them.
	recs  atomic.Int64
	bytes atomic.Int64

	// Flush epochs: a record counts in pending[epoch&1] until resolved.
	epoch   atomic.Uint32
	pending [2]atomic.Int64
	flushMu sync.Mutex // serialises epoch changes

	progMu      sync.Mutex
	progCh      chan struct{}
	progWaiters atomic.Int32
}

func newBudget(maxRecs, maxBytes int) *budget {
	return &budget{maxRecs: int64(maxRecs), maxBytes: int64(maxBytes), progCh: make(chan struct{})}
}

// tryReserve takes one record and size bytes if that keeps the buffer
// within its bounds (a record alone may exceed the byte bound). It uses
// compare-and-swap, not add-then-undo, so that the counters (and Stats)
// never show more than the bounds, even for a moment.
func (b *budget) tryReserve(size int64) bool {
	for {
		r := b.recs.Load()
		if r >= b.maxRecs {
			return false
		}
		if b.recs.CompareAndSwap(r, r+1) {
			break
		}
	}
	for {
		n := b.bytes.Load()
		if n+size > b.maxBytes && n != 0 {
			b.recs.Add(-1)
			b.wakeWaiters()
			return false
		}
		if b.bytes.CompareAndSwap(n, n+size) {
			return true
		}
	}
}

// hasRoom reports whether a record of size bytes would fit now.
func (b *budget) hasRoom(size int64) bool {
	return b.recs.Load() < b.maxRecs && (b.bytes.Load()+size <= b.maxBytes || b.recs.Load() == 0)
}

// unreserve gives back what tryReserve took.
func (b *budget) unreserve(size int64) {
	b.bytes.Add(-size)
	b.recs.Add(-1)
	b.wakeWaiters()
}

// join enters an accepted record into the current flush epoch and returns
// the epoch.
func (b *budget) join() uint32 {
	e := b.epoch.Load()
	b.pending[e&1].Add(1)
	return e
}

// release gives back the room of resolved records.
func (b *budget) release(r *release) {
	if r.recs == 0 {
		return
	}
	b.pending[0].Add(-r.buckets[0])
	b.pending[1].Add(-r.buckets[1])
	b.bytes.Add(-r.bytes)
	b.recs.Add(-r.recs)
	*r = release{}
	b.wakeWaiters()
}

func (b *budget) wakeWaiters() {
	if b.progWaiters.Load() > 0 {
		b.broadcast()
	}
}

// broadcast wakes everyone waiting for progress.
func (b *budget) broadcast() {
	b.progMu.Lock()
	close(b.progCh)
	b.progCh = make(chan struct{})
	b.progMu.Unlock()
}

// wait waits until cond holds or ctx ends. cond is re-checked after every
// broadcast.
func (b *budget) wait(ctx context.Context, cond func() bool) error {
	b.progWaiters.Add(1)
	defer b.progWaiters.Add(-1)
	for {
		b.progMu.Lock()
		ch := b.progCh
		b.progMu.Unlock()
		if cond() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// flush waits until every record accepted before the call is resolved, or
// ctx ends. started is called with the epoch that new records now join,
// once the records of older epochs are waited for.
func (b *budget) flush(ctx context.Context, started func(newEpoch uint32)) error {
	b.flushMu.Lock()
	defer b.flushMu.Unlock()
	cur := b.epoch.Load()
	older := &b.pending[(cur&1)^1]
	// Records of an earlier epoch (left by a Flush whose ctx ended) first:
	// no new record joins that bucket while cur is current.
	if err := b.wait(ctx, func() bool { return older.Load() == 0 }); err != nil {
		return err
	}
	b.epoch.Add(1)
	started(cur + 1)
	now := &b.pending[cur&1]
	return b.wait(ctx, func() bool { return now.Load() == 0 })
}
