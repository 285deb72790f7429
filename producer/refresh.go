package producer

import (
	"log/slog"
	"math/rand/v2"
	"runtime"
	"slices"
	"time"

	"github.com/kplgo/kpl/aggregation"
)

// wrongShard is an aggregate that the service stored on another shard than
// the map predicted, waiting for a refreshed map to decide whether it
// landed where all its user records belong.
type wrongShard struct {
	k        *krec
	shardID  string
	sequence string
	// holding is set while the aggregate counts in retiredInflight: its
	// shard is retired, so that newer records of its keys are in new
	// shards, which Ordered mode must hold until it is judged and, if
	// need be, sent again ahead of them.
	holding bool
}

// release counts w out of retiredInflight if it holds new shards; the
// caller opens them (openHeldLocked) once it has re-routed w's records.
func (p *Producer) release(w *wrongShard) {
	if w.holding {
		w.holding = false
		p.retiredInflight.Add(-1)
	}
}

// requestRefresh asks the refresher for a new shard map, without blocking.
func (p *Producer) requestRefresh() {
	select {
	case p.refreshCh <- struct{}{}:
	default:
	}
}

// wrongShardResult handles a Kinesis record stored on shard actual instead
// of its predicted shard: the map is out of date there (a reshard). A plain
// record was routed by its own hash key, so it is where it belongs. An
// aggregate is valid only if every user record's hash key lies in the
// actual shard (otherwise the KCL drops it whole): then it succeeded; else
// its records are sent again, routed by a fresh map.
//
// The predicted shard is marked stale and the record queued before the
// refresh is requested, and the shard counts k out of flight only after:
// a refresh that runs in between finds both, and in Ordered mode the shard
// sends nothing newer in the meantime.
func (p *Producer) wrongShardResult(k *krec, actual, seq string, now time.Time, out *outbox) {
	p.stats.wrongShard.Add(1)
	s := k.shard
	out.logf(slog.LevelInfo, "producer: record stored on another shard than predicted; refreshing the shard map", "shard", s.id, "stored_on", actual)
	p.mapMu.Lock()
	m := p.smap.Load()
	x, known := m.byID[actual]
	s.mu.Lock()
	retired := s.state == shardRetired
	if s.state == shardActive {
		s.setState(shardStale)
		p.staleShards = append(p.staleShards, s)
	}
	s.mu.Unlock()
	holding := false
	switch {
	case len(k.recs) == 1:
		out.succeed(k, actual, seq)
	case known && holdsAll(x, k):
		out.succeed(k, actual, seq)
	default:
		// A retired shard's aggregate keeps counting in retiredInflight
		// (it does not land below) until a refresh judges it.
		holding = retired
		p.wrongPending = append(p.wrongPending, &wrongShard{k: k, shardID: actual, sequence: seq, holding: holding})
	}
	p.mapMu.Unlock()
	p.requestRefresh()
	p.land(s, errClass{}, now, !holding)
}

// holdsAll reports whether every user record of k belongs to shard x (nil:
// not in the map), which is what a KCL reader demands of an aggregate it
// reads from x.
func holdsAll(x *shard, k *krec) bool {
	if x == nil {
		return false
	}
	return inRange(x.start, x.end, k)
}

// inRange reports whether every user record of k has a hash key in [start,
// end].
func inRange(start, end aggregation.HashKey, k *krec) bool {
	for _, f := range k.recs {
		if f.hash.Cmp(start) < 0 || f.hash.Cmp(end) > 0 {
			return false
		}
	}
	return true
}

// wholeWhereStored reports whether the aggregate of w is whole on the shard
// it was stored on: every user record of it in that shard's range, looked
// up in the new map m, the old map, then in closed (the stream's closed
// shards, listed when a landing shard was in neither map: a child created
// and closed again between two refreshes). A landing shard found nowhere
// counts as not whole: its records are sent again, which may store them
// twice, rather than risk losing them.
func wholeWhereStored(w *wrongShard, m, old *shardMap, closed map[string]shardInfo) bool {
	if x := m.byID[w.shardID]; x != nil {
		return holdsAll(x, w.k)
	}
	if x := old.byID[w.shardID]; x != nil {
		return holdsAll(x, w.k)
	}
	if in, ok := closed[w.shardID]; ok {
		return inRange(in.start, in.end, w.k)
	}
	return false
}

// unknownLanding reports whether some wrong-shard aggregate of wrong landed
// on a shard that neither the current map nor infos (the shards about to be
// installed) holds. p.mapMu is held.
func (p *Producer) unknownLanding(wrong []*wrongShard, infos []shardInfo) bool {
	m := p.smap.Load()
	return slices.ContainsFunc(wrong, func(w *wrongShard) bool { return !landingKnown(w, m, infos, nil) })
}

// landingKnown reports whether the shard w landed on is in map m, in infos
// or in closed, so that its range is known.
func landingKnown(w *wrongShard, m *shardMap, infos []shardInfo, closed map[string]shardInfo) bool {
	if _, ok := closed[w.shardID]; ok || m.byID[w.shardID] != nil {
		return true
	}
	return slices.ContainsFunc(infos, func(in shardInfo) bool { return in.id == w.shardID })
}

// reroute routes user records (each with its data) through the current
// shard map into new Kinesis records at the front of their shards, in
// order, to be sent from notBefore on.
func (p *Producer) reroute(recs []*Future, notBefore time.Time, out *outbox) {
	if len(recs) == 0 {
		return
	}
	p.mapMu.Lock()
	p.rerouteLocked(p.smap.Load(), recs, notBefore)
	p.mapMu.Unlock()
}

// rerouteLocked is reroute into map m; p.mapMu is held, so the map cannot
// change under it.
func (p *Producer) rerouteLocked(m *shardMap, recs []*Future, notBefore time.Time) {
	var order []*shard
	groups := make(map[*shard][]*Future)
	for _, f := range recs {
		s := m.find(f.hash)
		if _, ok := groups[s]; !ok {
			order = append(order, s)
		}
		groups[s] = append(groups[s], f)
	}
	for _, s := range order {
		s.mu.Lock()
		s.pushFront(pack(s, groups[s], notBefore, &p.env))
		s.mu.Unlock()
	}
}

// retiredLanded counts one Kinesis record of a retired shard out of flight;
// the last one opens the shards that wait for it (Ordered mode).
func (p *Producer) retiredLanded() {
	if p.retiredInflight.Add(-1) != 0 {
		return
	}
	p.mapMu.Lock()
	defer p.mapMu.Unlock()
	p.openHeldLocked()
}

// openHeldLocked makes the held shards active once nothing of the retired
// shards is in flight. p.mapMu is held.
func (p *Producer) openHeldLocked() {
	if p.retiredInflight.Load() != 0 {
		return
	}
	for _, s := range p.heldShards {
		s.mu.Lock()
		if s.state == shardHeld {
			s.setState(shardActive)
		}
		s.mu.Unlock()
		p.env.sched.makeDue(s)
	}
	p.heldShards = nil
}

// refresher reloads the shard map when asked (and periodically if
// configured), backing off while ListShards fails.
func (p *Producer) refresher() {
	defer p.wg.Done()
	var tick <-chan time.Time
	if p.opts.ShardMapRefreshInterval > 0 {
		t := time.NewTicker(p.opts.ShardMapRefreshInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-p.refreshCh:
		case <-tick:
		case <-p.stop:
			return
		}
		delay := p.opts.RefreshBaseDelay
		for {
			err := p.refresh()
			if err == nil {
				break
			}
			p.stats.refreshErr.Add(1)
			p.log.log(slog.LevelWarn, "producer: shard map refresh failed", "retry_in", delay, "error", err)
			p.expireWrongPending(time.Now())
			if !p.pause(delay/2 + rand.N(delay/2+1)) {
				return
			}
			delay = min(2*delay, p.opts.RefreshMaxDelay)
		}
		if !p.pause(p.opts.RefreshBaseDelay) { // at most one refresh per base delay
			return
		}
	}
}

// pause sleeps for d unless the producer stops first.
func (p *Producer) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-p.stop:
		return false
	}
}

// expireWrongPending fails the wrong-shard records whose TTL has ended while
// refreshes fail.
func (p *Producer) expireWrongPending(now time.Time) {
	out := p.newOutbox()
	c := errClass{code: "RecordExpired", message: "record TTL ended while the shard map was refreshed", retryable: true}
	p.mapMu.Lock()
	kept := p.wrongPending[:0]
	for _, w := range p.wrongPending {
		if w.k.deadline.After(now) {
			kept = append(kept, w)
			continue
		}
		p.release(w)
		// It is stored, on a shard not judged yet: a reader may well
		// keep it.
		w.k.ownHistory().maybeStored = true
		out.fail(w.k.dissolve(p.env.putAgg), nil, c, ErrRecordExpired)
	}
	clear(p.wrongPending[len(kept):])
	p.wrongPending = kept
	if p.opts.Ordered {
		p.openHeldLocked()
	}
	p.mapMu.Unlock()
	p.deliver(&out)
}

// refresh loads the open shards and installs them. Shards that stay keep
// their buffers and rate. Shards that left are retired; their records, and
// the aggregates that landed on the wrong shard, are re-routed into the new
// shards before the new map is published, so that in Ordered mode nothing
// put later can go ahead of them; new shards send nothing until the calls
// in flight from retired shards have landed.
func (p *Producer) refresh() error {
	infos, err := p.listShards(p.reqCtx)
	if err != nil {
		return err
	}
	p.stats.refreshes.Add(1)
	// The refresh judges the wrong-shard aggregates pending now, and
	// reopens the shards stale now; what comes in while it runs waits for
	// the next refresh. An aggregate that landed on a shard which is
	// already closed again can be judged only by that shard's range: list
	// the closed shards too, outside the lock (on failure such an
	// aggregate waits for the next refresh, which the refresher retries
	// with backoff: sending it again could store it twice).
	p.mapMu.Lock()
	wrong, stale := p.wrongPending, p.staleShards
	p.wrongPending, p.staleShards = nil, nil
	unknown := p.unknownLanding(wrong, infos)
	p.mapMu.Unlock()
	var closed map[string]shardInfo
	var closedErr error
	if unknown {
		if closed, closedErr = p.listAllShards(p.reqCtx); closedErr != nil {
			closed = nil
		}
	}
	if hook := p.testRefreshJudging.Load(); hook != nil {
		(*hook)()
	}
	now := time.Now()
	out := p.newOutbox()
	defer p.deliver(&out)

	p.mapMu.Lock()
	defer p.mapMu.Unlock()
	if p.aborting() {
		// Shutdown gave up meanwhile; its abort could not see wrong.
		for _, w := range wrong {
			p.release(w)
			p.failClosed(&out, []*krec{w.k})
		}
		return nil
	}
	old := p.smap.Load()
	if closedErr != nil {
		// The aggregates whose landing shard is in neither map cannot be
		// judged: they wait, ahead of those that came in meanwhile, their
		// shards stale (reopen) or held (retired below), for the next
		// refresh.
		var later []*wrongShard
		wrong = slices.DeleteFunc(wrong, func(w *wrongShard) bool {
			if landingKnown(w, old, infos, nil) {
				return false
			}
			later = append(later, w)
			return true
		})
		p.wrongPending = append(later, p.wrongPending...)
	}

	if sameShards(old, infos) {
		// The map was right after all (another refresh fixed it): send
		// again what did not land where it belongs, then let the stale
		// shards go on.
		var again []*Future
		for _, w := range wrong {
			p.release(w)
			if wholeWhereStored(w, old, old, closed) {
				out.succeed(w.k, w.shardID, w.sequence)
				continue
			}
			p.stats.retry("WrongShard", 1, uint64(len(w.k.recs)))
			again = append(again, w.k.dissolve(p.env.putAgg)...)
		}
		p.rerouteLocked(old, again, now)
		p.reopen(stale)
		if p.opts.Ordered {
			p.openHeldLocked()
		}
		return closedErr
	}

	m := newShardMap(len(infos))
	var fresh []*shard
	for _, in := range infos {
		s, ok := old.byID[in.id]
		if !ok || s.start != in.start || s.end != in.end {
			s = newShard(in, &p.env, shardHeld, now)
			fresh = append(fresh, s)
		}
		m.add(s)
	}
	m.index()
	// Retire the shards that left. A Put that finds one retired waits for
	// the new map.
	var moved []*Future
	retired := 0
	for _, s := range old.shards {
		if m.byID[s.id] == s {
			continue
		}
		s.mu.Lock()
		p.retiredInflight.Add(int64(s.inflight))
		moved = append(moved, s.retire()...)
		s.mu.Unlock()
		// An aggregate of s that came in wrong while this refresh ran
		// waits for the next one: newer records of its keys are in new
		// shards now, which it holds until then.
		for _, w := range p.wrongPending {
			if w.k.shard == s && !w.holding {
				w.holding = true
				p.retiredInflight.Add(1)
			}
		}
		p.env.sched.forget(s)
		retired++
	}
	// Wrong-shard records are older than anything still buffered.
	var first []*Future
	for _, w := range wrong {
		p.release(w)
		if wholeWhereStored(w, m, old, closed) {
			out.succeed(w.k, w.shardID, w.sequence)
			continue
		}
		p.stats.retry("WrongShard", 1, uint64(len(w.k.recs)))
		first = append(first, w.k.dissolve(p.env.putAgg)...)
	}
	p.rerouteLocked(m, append(first, moved...), now)
	p.smap.Store(m)
	p.reopen(stale)
	if p.opts.Ordered {
		p.heldShards = append(p.heldShards, fresh...)
		p.openHeldLocked()
	} else {
		for _, s := range fresh {
			s.mu.Lock()
			s.setState(shardActive)
			s.mu.Unlock()
			p.env.sched.makeDue(s)
		}
	}
	out.logf(slog.LevelInfo, "producer: shard map changed", "shards", len(m.shards), "was", len(old.shards), "retired", retired, "rerouted", len(first)+len(moved))
	return closedErr
}

// reopen makes stale shards that are still in the map active again, but
// for one with a wrong-shard aggregate still pending (it came in while the
// refresh ran): that one stays stale, so that it sends nothing newer first,
// until a refresh judges the aggregate. p.mapMu is held.
func (p *Producer) reopen(stale []*shard) {
	for _, s := range stale {
		if slices.ContainsFunc(p.wrongPending, func(w *wrongShard) bool { return w.k.shard == s }) {
			p.staleShards = append(p.staleShards, s)
			continue
		}
		s.mu.Lock()
		if s.state == shardStale {
			s.setState(shardActive)
		}
		s.mu.Unlock()
		p.env.sched.makeDue(s)
	}
}

// shardFor returns the active (or stale or held) shard for hash key h with
// its lock held, waiting for a refresh that is retiring the one it finds.
func (p *Producer) shardFor(f *Future) *shard {
	for {
		s := p.smap.Load().find(f.hash)
		s.mu.Lock()
		if s.state != shardRetired {
			return s
		}
		s.mu.Unlock()
		runtime.Gosched() // a refresh is about to publish the new map
	}
}
