package producer

import (
	"testing"
	"time"
)

func TestSchedulerTakesOnlyLingerDeadlinesEarly(t *testing.T) {
	t0 := time.Unix(1000, 0)
	const slack = 25 * time.Millisecond
	q := newScheduler()
	lingering, limited, later := &shard{id: "lingering"}, &shard{id: "limited"}, &shard{id: "later"}
	q.atLinger(lingering, t0.Add(10*time.Millisecond)) // within the slack: taken early
	q.at(limited, t0.Add(10*time.Millisecond))         // a rate limiter's time: exact
	q.atLinger(later, t0.Add(time.Second))
	next := q.promote(t0, slack, false, false)
	if s := q.next(); s != lingering {
		t.Fatalf("first due shard %v, want the lingering one", s)
	}
	if s := q.next(); s != nil {
		t.Fatalf("%s is due before its exact time: a shard waiting for its rate limiter would be visited again and again (a spin)", s.id)
	}
	if !next.Equal(t0.Add(10 * time.Millisecond)) {
		t.Errorf("next wake at %v, want the limited shard's exact time", next.Sub(t0))
	}
	q.promote(t0.Add(10*time.Millisecond), slack, false, false)
	if s := q.next(); s != limited {
		t.Errorf("at its time the limited shard is not due (%v)", s)
	}
}

func TestSchedulerKeepsTheEarlierTime(t *testing.T) {
	t0 := time.Unix(1000, 0)
	q := newScheduler()
	s := &shard{id: "s"}
	q.at(s, t0.Add(time.Second))
	q.at(s, t0.Add(time.Hour)) // later: ignored
	q.at(s, t0.Add(time.Millisecond))
	if next := q.promote(t0, 0, false, false); !next.Equal(t0.Add(time.Millisecond)) {
		t.Errorf("next = %v, want the earliest time asked for", next.Sub(t0))
	}
	q.makeDue(s)
	if got := q.next(); got != s || q.next() != nil {
		t.Error("a due shard is not handed out exactly once")
	}
	if q.promote(t0.Add(time.Hour), 0, false, false) != (time.Time{}) {
		t.Error("a shard made due is still in the heap")
	}
}
