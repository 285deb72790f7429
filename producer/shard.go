package producer

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kplgo/kpl/aggregation"
)

// shardState is where a shard is in its life:
//
//	active  -> stale    a response showed the shard map is out of date here
//	stale   -> active   a refresh kept the shard (after re-routing the
//	                    records that landed elsewhere)
//	held    -> active   (Ordered) every call in flight from the shards it
//	                    replaces has completed
//	any     -> retired  a refresh removed it; its records moved to the
//	                    shards that replace it
//
// Only an active shard sends. A stale or held shard keeps accepting records
// and expires those whose TTL ends; a retired shard accepts nothing (a Put
// that finds it looks up the new map).
type shardState uint8

const (
	shardActive shardState = iota
	shardStale
	shardHeld
	shardRetired
)

func (s shardState) String() string {
	return [...]string{"active", "stale", "held", "retired"}[s]
}

// shardEnv is what every shard of a producer shares: the options, the
// aggregator pool, the totals of sealed records and the scheduler. Shards
// reach nothing else of the producer.
type shardEnv struct {
	opts   *Options
	sched  *scheduler
	window *callWindow

	aggPool sync.Pool // *aggregation.Aggregator, reset

	// Sealed Kinesis records waiting in active shards' queues, and their
	// bytes: when they fill a call, shards send them without lingering.
	// Changed only by shard.pushSealed and shard.popSealed.
	sealedKrecs atomic.Int64
	sealedBytes atomic.Int64

	// Record ids: every shard is a lane with producer id pidBase followed
	// by its lane number.
	pidBase string
	lanes   atomic.Uint32

	limits streamLimits // of the stream, read at New

	// Flush state: a record whose epoch is before forceBelow is sent
	// without lingering; closing forces everything.
	forceBelow atomic.Uint32
	closing    atomic.Bool
}

func (e *shardEnv) getAgg() *aggregation.Aggregator {
	return e.aggPool.Get().(*aggregation.Aggregator)
}

// putAgg gives an aggregator back to the pool; one made with other limits
// (a single oversized record's) is left to the garbage collector.
func (e *shardEnv) putAgg(a *aggregation.Aggregator) {
	if a.MaxSize() != e.opts.AggregationMaxSize || a.MaxCount() != e.opts.AggregationMaxCount {
		return
	}
	a.Reset()
	e.aggPool.Put(a)
}

// forced reports whether a record of epoch ep must go without lingering.
func (e *shardEnv) forced(ep uint32) bool {
	return e.closing.Load() || int32(ep-e.forceBelow.Load()) < 0
}

// sealedFull reports whether the sealed records fill a call.
func (e *shardEnv) sealedFull() bool {
	return e.sealedKrecs.Load() >= int64(e.opts.CollectionMaxCount) || e.sealedBytes.Load() >= int64(e.window.callBytes())
}

// shard is one shard of the map: its hash key range, its open aggregate,
// its queues and its rate limiter. Its methods run under its lock and never
// call user code or the logger; what they resolve goes into an outbox that
// the caller delivers after releasing the lock.
type shard struct {
	// What every Put reads comes first, in one cache line: at thousands of
	// shards each line a Put touches is a cache miss. A test keeps the
	// struct a whole number of lines, so that its allocations are aligned
	// to them.
	mu      sync.Mutex // guards every field below, except sched
	state   shardState
	env     *shardEnv
	agg     *aggregation.Aggregator // the open aggregate; nil while it has no record
	aggRecs []*Future               // its user records, in order
	aggOld  int64                   // the earliest put offset (Future.put) among aggRecs

	retries []*krec // retried and re-routed Kinesis records, oldest first
	sealed  []*krec // sealed Kinesis records, oldest first
	// expiryFloor is at or before the earliest TTL deadline among retries
	// and sealed (zero when both were empty at the last expiry scan), so
	// that a visit scans them for expired records only when one may be.
	// Adding a record lowers it (noteQueued); removing one leaves it, a
	// bound still; each scan makes it exact.
	expiryFloor time.Time
	inflight    int // Kinesis records of this shard in flight
	lim         limiter
	pid         string                // the lane's producer id (Options.RecordIDs)
	nextSeq     uint64                // the lane's next sequence number
	lastFoot    aggregation.Footprint // of the last aggregate sealed (openAgg)

	id         string // immutable, as are start and end
	start, end aggregation.HashKey

	sched schedSlot // guarded by the scheduler's lock

	_ [24]byte // pads the struct to 448 bytes, a size class of whole lines
}

func newShard(in shardInfo, env *shardEnv, state shardState, now time.Time) *shard {
	s := &shard{
		id: in.id, start: in.start, end: in.end, env: env,
		state: state,
		lim:   newLimiter(env.opts.RateLimit, env.limits.burst, now),
	}
	if env.opts.RecordIDs {
		s.pid = fmt.Sprintf("%s%08x", env.pidBase, env.lanes.Add(1))
	}
	return s
}

// contains reports whether h is in the shard's hash key range.
func (s *shard) contains(h aggregation.HashKey) bool {
	return s.start.Cmp(h) <= 0 && h.Cmp(s.end) <= 0
}

// empty reports whether the shard holds no unsent record.
func (s *shard) empty() bool {
	return len(s.aggRecs) == 0 && len(s.sealed) == 0 && len(s.retries) == 0
}

// add appends a new user record to the open aggregate, sealing aggregates as
// they fill, and tells the scheduler: a shard that was empty wakes after
// Linger, one whose sealed records fill a call wakes now.
func (s *shard) add(f *Future) {
	wasEmpty := s.empty()
	o := s.env.opts
	if o.RecordIDs && f.id.IsZero() {
		f.id = aggregation.RecordID{PID: s.pid, Seq: s.nextSeq}
		s.nextSeq++
	}
	switch {
	case !o.AggregationEnabled:
		s.pushSealed(s.single(f))
	default:
		if s.agg == nil { // idle shards hold none
			s.openAgg()
		}
		err := s.agg.Add(f.record())
		if err != nil && len(s.aggRecs) > 0 {
			s.seal()
			s.openAgg()
			err = s.agg.Add(f.record())
		}
		if err != nil { // larger than an aggregate: goes alone
			s.pushSealed(s.single(f))
			break
		}
		s.aggRecs = append(s.aggRecs, f)
		s.noteAggregated(f)
		if s.agg.Full() {
			s.seal()
		}
	}
	switch {
	case s.env.sealedFull() || s.env.forced(f.epoch) || o.Linger == 0:
		s.env.sched.makeDue(s)
	case wasEmpty:
		s.env.sched.atLinger(s, f.putTime().Add(o.Linger))
	}
}

// noteAggregated keeps the open aggregate's earliest put time and drops the
// data references of its records, which the aggregator holds copies of, now
// that f has joined them: while they are in the CPU's cache, not at seal
// time. The first record keeps its data until a second one joins: an
// aggregate of one plain record is sent as that record.
func (s *shard) noteAggregated(f *Future) {
	switch n := len(s.aggRecs); {
	case n == 1:
		s.aggOld = f.put
	case n == 2:
		s.aggRecs[0].data = nil
		fallthrough
	default:
		f.data = nil
		s.aggOld = min(s.aggOld, f.put)
	}
}

// single returns a Kinesis record carrying f alone: plain, or, when f has
// an id (which only the tags of an aggregate carry), an aggregate of one,
// within the service's record limit if AggregationMaxSize is too small.
func (s *shard) single(f *Future) *krec {
	ttl := s.env.opts.RecordTTL
	if f.id.IsZero() {
		return newPlain(s, f, ttl)
	}
	agg := s.env.getAgg()
	if agg.Add(f.record()) != nil {
		// Larger than AggregationMaxSize: an aggregate of its own, up to
		// the service's record limit (Put checked that it fits).
		s.env.putAgg(agg)
		agg = aggregation.NewAggregator(s.env.limits.maxRecord, 1)
		if agg.Add(f.record()) != nil {
			return newPlain(s, f, ttl)
		}
	}
	recs := []*Future{f}
	return newAggregate(s, agg, recs, dropCopies(recs), ttl)
}

// openAgg gives the shard an aggregator from the pool, grown to the
// footprint of its last aggregate: one whose buffers the garbage collector
// took back would otherwise grow them again, doubling from empty, and
// allocate twice what the aggregate holds.
func (s *shard) openAgg() {
	s.agg = s.env.getAgg()
	s.agg.Grow(s.lastFoot)
}

// seal closes the open aggregate and queues it; one with a single record
// goes as that plain record.
func (s *shard) seal() {
	n := len(s.aggRecs)
	if n == 0 {
		return
	}
	s.lastFoot = s.agg.Footprint()
	recs := s.aggRecs
	s.aggRecs = make([]*Future, 0, n)
	ttl := s.env.opts.RecordTTL
	if n == 1 && recs[0].id.IsZero() {
		s.env.putAgg(s.agg)
		s.agg = nil
		s.pushSealed(newPlain(s, recs[0], ttl))
		return
	}
	if n == 1 {
		recs[0].data = nil // it has an id: it goes in its aggregate
	}
	k := newAggregate(s, s.agg, recs, s.aggOld, ttl)
	s.agg = nil
	s.pushSealed(k)
}

// noteQueued lowers the expiry floor to the deadline of k, which joins the
// retries or the sealed records.
func (s *shard) noteQueued(k *krec) {
	if s.expiryFloor.IsZero() || k.deadline.Before(s.expiryFloor) {
		s.expiryFloor = k.deadline
	}
}

// clearFloorIfEmpty drops the expiry floor once nothing is queued.
func (s *shard) clearFloorIfEmpty() {
	if len(s.retries) == 0 && len(s.sealed) == 0 {
		s.expiryFloor = time.Time{}
	}
}

// pushSealed queues k behind the sealed records.
func (s *shard) pushSealed(k *krec) {
	s.noteQueued(k)
	s.sealed = append(s.sealed, k)
	s.countSealed(s.sealed[len(s.sealed)-1:], 1)
	s.env.sched.noteSealed(s)
}

// popSealed removes the first sealed record and returns it.
func (s *shard) popSealed() *krec {
	k := s.sealed[0]
	s.countSealed(s.sealed[:1], -1)
	s.sealed[0] = nil
	s.sealed = s.sealed[1:]
	s.clearFloorIfEmpty()
	return k
}

// replaceSealed replaces the sealed queue (after expiry re-packed part of
// it; expire then makes the expiry floor exact).
func (s *shard) replaceSealed(q []*krec) {
	s.countSealed(s.sealed, -1)
	s.sealed = q
	s.countSealed(s.sealed, 1)
}

// setState changes the shard's state, keeping the sealed totals to active
// shards only (a stale or held shard's records cannot fill a call).
func (s *shard) setState(st shardState) {
	if was, now := s.state == shardActive, st == shardActive; was && !now {
		s.countSealed(s.sealed, -1)
		s.state = st
	} else {
		s.state = st
		if !was && now {
			s.countSealed(s.sealed, 1)
		}
	}
}

// countSealed adds (sign 1) or removes (sign -1) ks from the sealed totals
// of an active shard. pushSealed, popSealed, replaceSealed and setState
// are the only callers: the totals are kept in this one place.
func (s *shard) countSealed(ks []*krec, sign int64) {
	if s.state != shardActive || len(ks) == 0 {
		return
	}
	var b int64
	for _, k := range ks {
		b += int64(k.size)
	}
	s.env.sealedKrecs.Add(sign * int64(len(ks)))
	s.env.sealedBytes.Add(sign * b)
}

// oldestUnsent returns the put time and epoch of the oldest record waiting
// for its first send (sealed or open), and false when there is none.
func (s *shard) oldestUnsent() (time.Time, uint32, bool) {
	switch {
	case len(s.sealed) > 0:
		f := s.sealed[0].recs[0]
		return s.sealed[0].oldest, f.epoch, true
	case len(s.aggRecs) > 0:
		return s.openOldest(), s.aggRecs[0].epoch, true
	}
	return time.Time{}, 0, false
}

// openOldest returns the put time of the earliest record of the open
// aggregate, which holds at least one.
func (s *shard) openOldest() time.Time {
	return s.aggRecs[0].p.base.Add(time.Duration(s.aggOld))
}

// nextExpiry returns the earliest TTL deadline among the shard's records, or
// a time before it (see expiryFloor), zero when it holds none.
func (s *shard) nextExpiry() time.Time {
	t := s.expiryFloor // early at worst: that visit's scan makes it exact
	if len(s.aggRecs) > 0 {
		t = earliest(t, s.openOldest().Add(s.env.opts.RecordTTL))
	}
	return t
}

// call is one PutRecords call being built or in flight.
type call struct {
	p     *Producer // whose call it is
	krecs []*krec
	bytes int
	// inflightAtStart is the call window's bytes in flight when the call
	// started, this call included.
	inflightAtStart int64
	state           atomic.Uint32 // callInFlight, callHandled, callAbandoned
	start           time.Time     // when it was sent, zero while it waits in the pool's queue; guarded by Producer.callsMu
}

const (
	callInFlight uint32 = iota // queued in the pool or in flight
	callHandled
	callAbandoned
)

// fits reports whether k may join c: within the count limit and the call
// window's byte bound; the first record always fits.
func (c *call) fits(k *krec, o *Options, callBytes int) bool {
	return len(c.krecs) < o.CollectionMaxCount && (len(c.krecs) == 0 || c.bytes+k.size <= callBytes)
}

func (c *call) full(o *Options, callBytes int) bool {
	return len(c.krecs) >= o.CollectionMaxCount || c.bytes >= callBytes
}

// takeInto moves the shard's sendable Kinesis records into c, retries first,
// expiring first what has outlived its TTL. It returns when the shard should
// be visited again: now (it has more, but c is full), a time, or zero (never
// by itself: an event will wake it).
//
// A shard sends when its oldest record has lingered for Linger, when the
// sealed records of all shards fill a call, when a Flush covers it, or when
// the producer closes. In Ordered mode a shard sends only with nothing in
// flight, one Kinesis record per call, retries strictly first.
func (s *shard) takeInto(c *call, now time.Time, callBytes int, out *outbox) time.Time {
	o := s.env.opts
	s.expire(now, out)
	if s.state != shardActive {
		return s.nextExpiry()
	}
	ordered := o.Ordered
	if ordered && s.inflight > 0 {
		return s.nextExpiry() // its completion wakes the shard
	}
	var next time.Time
	// Retries first.
	if len(s.retries) > 0 {
		kept := s.retries[:0]
		blocked := false
		for i, k := range s.retries {
			switch {
			case blocked:
			case k.notBefore.After(now):
				next = earliest(next, k.notBefore)
				blocked = ordered // strictly in order
			case !c.fits(k, o, callBytes):
				blocked, next = true, now
			case !s.lim.take(now, k.size):
				blocked, next = true, earliest(next, s.lim.when(now, k.size))
			default:
				s.send(c, k)
				if ordered {
					kept = append(kept, s.retries[i+1:]...)
					clear(s.retries[len(kept):])
					s.retries = kept
					s.clearFloorIfEmpty()
					return s.nextExpiry()
				}
				continue
			}
			kept = append(kept, k)
		}
		clear(s.retries[len(kept):])
		s.retries = kept
		s.clearFloorIfEmpty()
		if blocked || (ordered && len(s.retries) > 0) {
			return earliest(next, s.nextExpiry())
		}
	}
	oldest, ep, ok := s.oldestUnsent()
	if !ok {
		return earliest(next, s.nextExpiry())
	}
	lingerAt := oldest.Add(o.Linger)
	due := !now.Add(lingerSlack(o.Linger)).Before(lingerAt) || s.env.forced(ep)
	if !due && !(s.env.sealedFull() && len(s.sealed) > 0) {
		return earliest(next, lingerAt)
	}
	// The open aggregate is sealed only once everything sealed before it
	// has gone into the call: while sealed records wait (for the rate
	// limiter, or for room in a call), the open one keeps filling instead
	// of going out as a small record.
	for {
		if len(s.sealed) == 0 {
			if !due || len(s.aggRecs) == 0 {
				break
			}
			s.seal()
		}
		k := s.sealed[0]
		if !c.fits(k, o, callBytes) {
			return now
		}
		if !s.lim.take(now, k.size) {
			// Wake when the limiter allows, not at the (past) linger
			// time, which would spin the dispatcher.
			return earliest(next, s.lim.when(now, k.size))
		}
		s.send(c, s.popSealed())
		if ordered {
			return s.nextExpiry()
		}
	}
	if oldest, _, ok := s.oldestUnsent(); ok {
		next = earliest(next, oldest.Add(o.Linger))
	}
	return earliest(next, s.nextExpiry())
}

// send moves k into call c.
func (s *shard) send(c *call, k *krec) {
	k.state = krecInFlight
	c.krecs = append(c.krecs, k)
	c.bytes += k.size
	s.inflight++
}

// expire fails the user records whose TTL has ended while they waited in the
// shard, re-packing the live records of a Kinesis record that expired in
// part. A shard that cannot send (stale, held) seals its open aggregate
// first, so that its records expire too.
func (s *shard) expire(now time.Time, out *outbox) {
	if s.state != shardActive && len(s.aggRecs) > 0 {
		s.seal()
	}
	if s.expiryFloor.IsZero() || s.expiryFloor.After(now) {
		return // nothing queued has expired
	}
	if q, changed := s.expireQueue(s.retries, now, out); changed {
		s.retries = q
	}
	if q, changed := s.expireQueue(s.sealed, now, out); changed {
		s.replaceSealed(q)
	}
	// The scan visited every queued record: the floor becomes exact.
	s.expiryFloor = time.Time{}
	for _, q := range [][]*krec{s.retries, s.sealed} {
		for _, k := range q {
			s.noteQueued(k)
		}
	}
}

// expireQueue returns q with each expired Kinesis record replaced by its
// live user records, re-packed, and whether anything expired.
func (s *shard) expireQueue(q []*krec, now time.Time, out *outbox) ([]*krec, bool) {
	var res []*krec
	for i, k := range q {
		if k.deadline.After(now) {
			if res != nil {
				res = append(res, k)
			}
			continue
		}
		if res == nil {
			res = append(make([]*krec, 0, len(q)), q[:i]...)
		}
		live := expireRecs(k, now, s.env, out)
		res = append(res, pack(s, live, k.notBefore, s.env)...)
	}
	if res == nil {
		return q, false
	}
	return res, true
}

// requeue puts k, which failed with a retryable error, back for another
// attempt from k.notBefore on: first in Ordered mode (nothing of the shard
// was sent after it), else among the other retries. The shard is not
// retired.
func (s *shard) requeue(k *krec) {
	k.state = krecQueued
	s.noteQueued(k)
	if s.env.opts.Ordered {
		s.retries = append(s.retries, nil)
		copy(s.retries[1:], s.retries)
		s.retries[0] = k
	} else {
		s.retries = append(s.retries, k)
	}
	s.env.sched.at(s, k.notBefore)
}

// pushFront puts re-packed Kinesis records ahead of everything the shard
// holds, in their order: they are older than anything put since.
func (s *shard) pushFront(ks []*krec) {
	if len(ks) == 0 {
		return
	}
	s.retries = append(ks, s.retries...)
	t := ks[0].notBefore
	for _, k := range ks {
		t = earliest(t, k.notBefore)
		s.noteQueued(k)
	}
	s.env.sched.at(s, t)
}

// retire marks the shard retired and returns every record it holds, oldest
// first (retries, then sealed, then the open aggregate), dissolved into user
// records. The caller re-routes them.
func (s *shard) retire() []*Future {
	s.setState(shardRetired)
	var moved []*Future
	for _, k := range s.retries {
		moved = append(moved, k.dissolve(s.env.putAgg)...)
	}
	for _, k := range s.sealed {
		moved = append(moved, k.dissolve(s.env.putAgg)...)
	}
	if open := s.aggRecs; len(open) > 1 {
		// Their data is in the aggregator (see noteAggregated).
		k := newAggregate(s, s.agg, open, s.aggOld, s.env.opts.RecordTTL)
		moved = append(moved, k.dissolve(s.env.putAgg)...)
	} else {
		moved = append(moved, open...)
		if s.agg != nil {
			s.env.putAgg(s.agg)
		}
	}
	s.agg, s.aggRecs, s.retries, s.sealed = nil, nil, nil, nil
	s.expiryFloor = time.Time{}
	return moved
}

// drainAll takes every record the shard holds out of it, for Shutdown's
// abort: the caller fails them.
func (s *shard) drainAll() []*krec {
	if len(s.aggRecs) > 0 {
		s.seal()
	}
	ks := append(s.retries, s.sealed...)
	for len(s.sealed) > 0 {
		s.popSealed()
	}
	s.retries, s.sealed = nil, nil
	s.expiryFloor = time.Time{}
	return ks
}

// expireRecs fails the user records of k whose TTL ends before at and
// returns the others, dissolved (they carry k's attempts). k ends.
func expireRecs(k *krec, at time.Time, env *shardEnv, out *outbox) []*Future {
	ttl := env.opts.RecordTTL
	var dead, live []*Future
	for _, f := range k.recs {
		if f.putTime().Add(ttl).After(at) {
			live = append(live, f)
		} else {
			dead = append(dead, f)
		}
	}
	c := errClass{code: "RecordExpired", message: "record TTL ended before it was delivered", retryable: true}
	if a, ok := k.hist.last(); ok {
		c.code, c.message = a.ErrorCode, a.ErrorMessage
	}
	k.dissolve(env.putAgg) // all get their data back and k's attempts
	out.fail(dead, nil, c, ErrRecordExpired)
	return live
}

// pack packs user records of shard s (each with its data) into Kinesis
// records, in order, to be sent from notBefore on.
func pack(s *shard, recs []*Future, notBefore time.Time, env *shardEnv) []*krec {
	o := env.opts
	var out []*krec
	var agg *aggregation.Aggregator
	var group []*Future
	flush := func() {
		switch {
		case len(group) == 0:
		case len(group) == 1 && group[0].id.IsZero():
			env.putAgg(agg)
			k := newPlain(s, group[0], o.RecordTTL)
			k.notBefore = notBefore
			out = append(out, k)
		default:
			k := newAggregate(s, agg, group, dropCopies(group), o.RecordTTL)
			k.notBefore = notBefore
			out = append(out, k)
		}
		agg, group = nil, nil
	}
	for _, f := range recs {
		if !o.AggregationEnabled {
			k := s.single(f)
			k.notBefore = notBefore
			out = append(out, k)
			continue
		}
		if agg != nil && agg.Add(f.record()) != nil {
			flush()
		}
		if agg == nil {
			agg = env.getAgg()
			if agg.Add(f.record()) != nil { // larger than an aggregate
				env.putAgg(agg)
				agg = nil
				k := s.single(f)
				k.notBefore = notBefore
				out = append(out, k)
				continue
			}
		}
		group = append(group, f)
		if agg.Full() {
			flush()
		}
	}
	if agg != nil {
		flush()
	}
	return out
}

// lingerSlack is how much earlier than its Linger a shard's records may go
// to share a call with the records of other shards that are due: a stream
// of thousands of shards with a trickle of records each would otherwise
// send one small call per shard's deadline. It applies to linger deadlines
// only: a rate limiter's, a backoff's or a TTL's time is exact, so that a
// shard waiting for one is not visited again and again before it.
func lingerSlack(linger time.Duration) time.Duration { return linger / 4 }

// earliest returns the earlier of two times, a zero time meaning "none".
func earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero() || a.Before(b):
		return a
	}
	return b
}
