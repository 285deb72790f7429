package producer

import (
	"container/heap"
	"sync"
	"time"
)

// slotKind is where a shard is in the scheduler.
type slotKind uint8

const (
	slotNone  slotKind = iota // not scheduled: idle, or waiting for an event
	slotDue                   // in the due queue: visit now
	slotTimed                 // in the deadline heap: visit at slot.at
)

// schedSlot is a shard's place in the scheduler, guarded by the scheduler's
// lock.
type schedSlot struct {
	kind slotKind
	at   time.Time
	// early: at is a linger deadline, which may be taken up to a slack
	// early so that shards due about together share a call; a time from
	// a visit (rate limiter, backoff, TTL) is exact.
	early    bool
	index    int  // position in the heap
	inSealed bool // listed as holding sealed records
}

// dueBy reports whether a timed slot is due at now.
func (sl *schedSlot) dueBy(now time.Time, slack time.Duration) bool {
	if sl.early {
		now = now.Add(slack)
	}
	return !sl.at.After(now)
}

// scheduler knows which shards to visit and when, so that the dispatcher
// never scans the shard map: a FIFO of shards due now, a heap of shards due
// at a known time (linger, retry backoff, rate limiter, TTL), and a list of
// shards holding sealed records (visited at once when those fill a call).
// The cost of every operation is O(log shards) at most, and nothing is spent
// on idle shards.
//
// Lock order: a shard's lock may be held while calling the scheduler; the
// scheduler never takes a shard's lock.
type scheduler struct {
	mu     sync.Mutex
	due    []*shard // due[head:] are due, in order
	head   int
	timed  deadlineHeap
	sealed []*shard
	wake   chan struct{} // capacity 1: wakes the dispatcher
}

func newScheduler() *scheduler {
	return &scheduler{wake: make(chan struct{}, 1)}
}

// kick wakes the dispatcher without blocking.
func (q *scheduler) kick() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// makeDue schedules s for a visit now.
func (q *scheduler) makeDue(s *shard) {
	q.mu.Lock()
	q.dueLocked(s)
	q.mu.Unlock()
	q.kick()
}

func (q *scheduler) dueLocked(s *shard) {
	switch s.sched.kind {
	case slotDue:
		return
	case slotTimed:
		heap.Remove(&q.timed, s.sched.index)
	}
	s.sched.kind = slotDue
	q.due = append(q.due, s)
}

// at schedules s for a visit at t, unless it is due earlier already.
func (q *scheduler) at(s *shard, t time.Time) { q.schedule(s, t, false) }

// atLinger schedules s for a visit at the linger deadline t, which the
// dispatcher may take a little early (see promote).
func (q *scheduler) atLinger(s *shard, t time.Time) { q.schedule(s, t, true) }

func (q *scheduler) schedule(s *shard, t time.Time, early bool) {
	q.mu.Lock()
	kick := q.atLocked(s, t, early)
	q.mu.Unlock()
	if kick {
		q.kick()
	}
}

// atLocked reports whether the dispatcher must recompute its sleep.
func (q *scheduler) atLocked(s *shard, t time.Time, early bool) bool {
	switch s.sched.kind {
	case slotDue:
		return false
	case slotTimed:
		if !t.Before(s.sched.at) {
			return false
		}
		s.sched.at, s.sched.early = t, early
		heap.Fix(&q.timed, s.sched.index)
	default:
		s.sched.kind, s.sched.at, s.sched.early = slotTimed, t, early
		heap.Push(&q.timed, s)
	}
	return s.sched.index == 0
}

// noteSealed lists s as holding sealed records.
func (q *scheduler) noteSealed(s *shard) {
	q.mu.Lock()
	if !s.sched.inSealed {
		s.sched.inSealed = true
		q.sealed = append(q.sealed, s)
	}
	q.mu.Unlock()
}

// promote makes due every shard whose time has come (a linger deadline up
// to slack early), every shard holding sealed records when sealedFull, and
// every scheduled shard when all; it returns the earliest time still in
// the heap (zero if none).
func (q *scheduler) promote(now time.Time, slack time.Duration, sealedFull, all bool) time.Time {
	q.mu.Lock()
	defer q.mu.Unlock()
	if sealedFull || all {
		for _, s := range q.sealed {
			s.sched.inSealed = false
			q.dueLocked(s)
		}
		clear(q.sealed)
		q.sealed = q.sealed[:0]
	}
	for len(q.timed) > 0 && (all || q.timed[0].sched.dueBy(now, slack)) {
		s := heap.Pop(&q.timed).(*shard)
		s.sched.kind = slotNone
		q.dueLocked(s)
	}
	if len(q.timed) > 0 {
		return q.timed[0].sched.at
	}
	return time.Time{}
}

// next removes and returns the first due shard, nil if none.
func (q *scheduler) next() *shard {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head == len(q.due) {
		return nil
	}
	s := q.due[q.head]
	q.due[q.head] = nil
	q.head++
	if q.head == len(q.due) {
		q.head, q.due = 0, q.due[:0]
	}
	s.sched.kind = slotNone
	return s
}

// pushFront makes s the next due shard (it has more to send than the last
// call could take).
func (q *scheduler) pushFront(s *shard) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if s.sched.kind == slotDue {
		return
	}
	if s.sched.kind == slotTimed {
		heap.Remove(&q.timed, s.sched.index)
	}
	s.sched.kind = slotDue
	if q.head > 0 {
		q.head--
		q.due[q.head] = s
		return
	}
	q.due = append(q.due, nil)
	copy(q.due[1:], q.due)
	q.due[0] = s
}

// forget removes s from the scheduler (it was retired).
func (q *scheduler) forget(s *shard) {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch s.sched.kind {
	case slotTimed:
		heap.Remove(&q.timed, s.sched.index)
	case slotDue:
		for i := q.head; i < len(q.due); i++ {
			if q.due[i] == s {
				q.due = append(q.due[:i], q.due[i+1:]...)
				break
			}
		}
	}
	s.sched.kind = slotNone
}

// deadlineHeap orders shards by their slot time.
type deadlineHeap []*shard

func (h deadlineHeap) Len() int           { return len(h) }
func (h deadlineHeap) Less(i, j int) bool { return h[i].sched.at.Before(h[j].sched.at) }
func (h deadlineHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].sched.index = i
	h[j].sched.index = j
}
func (h *deadlineHeap) Push(x any) {
	s := x.(*shard)
	s.sched.index = len(*h)
	*h = append(*h, s)
}
func (h *deadlineHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return s
}
