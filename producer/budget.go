package producer

import (
	"context"
	"sync"
	"sync/atomic"
)

// bound is the buffer bound that one or more producers share (a Pool's):
// the records and bytes accepted and not yet resolved, against
// MaxBufferedRecords and MaxBufferedBytes, and the broadcast that wakes
// whoever waits for records to resolve (a Put waiting for room, Flush,
// Close) in any of them.
type bound struct {
	maxRecs, maxBytes int64
	recs, bytes       atomic.Int64

	progMu      sync.Mutex
	progCh      chan struct{}
	progWaiters atomic.Int32
}

func newBound(maxRecs, maxBytes int) *bound {
	return &bound{maxRecs: int64(maxRecs), maxBytes: int64(maxBytes), progCh: make(chan struct{})}
}

// tryReserve takes one record and size bytes if that keeps the bound (a
// record alone may exceed the byte bound). It uses compare-and-swap, not
// add-then-undo, so that the counters (and Stats) never show more than the
// bounds, even for a moment.
func (b *bound) tryReserve(size int64) bool {
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
func (b *bound) hasRoom(size int64) bool {
	return b.recs.Load() < b.maxRecs && (b.bytes.Load()+size <= b.maxBytes || b.recs.Load() == 0)
}

func (b *bound) wakeWaiters() {
	if b.progWaiters.Load() > 0 {
		b.broadcast()
	}
}

// broadcast wakes everyone waiting for progress.
func (b *bound) broadcast() {
	b.progMu.Lock()
	close(b.progCh)
	b.progCh = make(chan struct{})
	b.progMu.Unlock()
}

// wait waits until cond holds or ctx ends. cond is re-checked after every
// broadcast.
func (b *bound) wait(ctx context.Context, cond func() bool) error {
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

// budget is the only place that counts one producer's accepted-but-
// unresolved records: its share of the shared bound and its flush epochs.
type budget struct {
	shared *bound
	// alone is set when no other producer shares the bound (a private
	// pool): the bound's counts are then this producer's, and recs and
	// bytes are not kept, which saves two contended atomic adds per record.
	alone bool

	// recs also counts Puts in progress, which is what lets Close wait
	// for them. Read them through held.
	recs  atomic.Int64
	bytes atomic.Int64

	// Flush epochs: a record counts in pending[epoch&1] until its result
	// is delivered, which is after its room is given back.
	epoch   atomic.Uint32
	pending [2]atomic.Int64
	flushMu sync.Mutex // serialises epoch changes
	// resultWaiters counts the Flushes and the Close waiting for results,
	// which only they need to be woken for.
	resultWaiters atomic.Int32
}

func newBudget(shared *bound, alone bool) *budget { return &budget{shared: shared, alone: alone} }

// held returns the records (Puts in progress included) and bytes this
// producer holds.
func (b *budget) held() (recs, bytes int64) {
	if b.alone {
		return b.shared.recs.Load(), b.shared.bytes.Load()
	}
	return b.recs.Load(), b.bytes.Load()
}

// tryReserve takes room for one record of size bytes in the shared bound.
func (b *budget) tryReserve(size int64) bool {
	if !b.shared.tryReserve(size) {
		return false
	}
	if !b.alone {
		b.recs.Add(1)
		b.bytes.Add(size)
	}
	return true
}

// unreserve gives back what tryReserve took.
func (b *budget) unreserve(size int64) {
	if !b.alone {
		b.recs.Add(-1)
		b.bytes.Add(-size)
	}
	b.shared.bytes.Add(-size)
	b.shared.recs.Add(-1)
	b.shared.wakeWaiters()
}

// join enters an accepted record into the current flush epoch and returns
// the epoch.
func (b *budget) join() uint32 {
	e := b.epoch.Load()
	b.pending[e&1].Add(1)
	return e
}

// release gives back the room of resolved records, before their results are
// delivered: a PutAsync callback may Put, and with a full buffer it would
// otherwise wait for room that only its own return gives back, on the
// sender that should free it. The records still count in their flush
// epochs until delivered.
func (b *budget) release(r *release) {
	if r.recs == 0 {
		return
	}
	if !b.alone {
		b.recs.Add(-r.recs)
		b.bytes.Add(-r.bytes)
	}
	b.shared.bytes.Add(-r.bytes)
	b.shared.recs.Add(-r.recs)
	b.shared.wakeWaiters()
}

// delivered counts released records out of their flush epochs once their
// results are delivered, and wakes the Flushes and the Close waiting for
// them.
func (b *budget) delivered(r *release) {
	if r.recs == 0 {
		return
	}
	b.pending[0].Add(-r.buckets[0])
	b.pending[1].Add(-r.buckets[1])
	*r = release{}
	if b.resultWaiters.Load() > 0 {
		b.shared.broadcast()
	}
}

// settled reports whether every record this producer accepted (Puts in
// progress included) has its result delivered.
func (b *budget) settled() bool {
	// Held records first: a record is released before it is delivered,
	// so once none is held, the pending counts include every record
	// whose result is still on its way.
	recs, _ := b.held()
	return recs == 0 && b.pending[0].Load() == 0 && b.pending[1].Load() == 0
}

// wait waits until cond holds or ctx ends, woken by the shared broadcast.
func (b *budget) wait(ctx context.Context, cond func() bool) error {
	return b.shared.wait(ctx, cond)
}

// waitResults is wait for a cond on delivered results (the flush epochs).
func (b *budget) waitResults(ctx context.Context, cond func() bool) error {
	b.resultWaiters.Add(1)
	defer b.resultWaiters.Add(-1)
	return b.shared.wait(ctx, cond)
}

// flush waits until every record accepted before the call has its result
// delivered, or ctx ends. started is called with the epoch that new records now join,
// once the records of older epochs are waited for.
func (b *budget) flush(ctx context.Context, started func(newEpoch uint32)) error {
	b.flushMu.Lock()
	defer b.flushMu.Unlock()
	cur := b.epoch.Load()
	older := &b.pending[(cur&1)^1]
	// Records of an earlier epoch (left by a Flush whose ctx ended) first:
	// no new record joins that bucket while cur is current.
	if err := b.waitResults(ctx, func() bool { return older.Load() == 0 }); err != nil {
		return err
	}
	b.epoch.Add(1)
	started(cur + 1)
	now := &b.pending[cur&1]
	return b.waitResults(ctx, func() bool { return now.Load() == 0 })
}
