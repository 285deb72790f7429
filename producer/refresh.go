package producer

import (
	"math/rand/v2"
	"time"
)

// wrongShard is a Kinesis record that the service stored on another shard
// than the map predicted, waiting for a refreshed map to decide whether it
// landed where its user records belong.
type wrongShard struct {
	k        *krec
	shardID  string
	sequence string
}

// requestRefresh asks the refresher for a new shard map, without blocking.
func (p *Producer) requestRefresh() {
	select {
	case p.refreshCh <- struct{}{}:
	default:
	}
}

// wrongShardResult handles a Kinesis record stored on shard actual instead of
// its predicted shard: the map is out of date (a reshard). A plain record was
// routed by its own hash key, so it is where it belongs. An aggregate is
// valid only if every user record's hash key lies in the actual shard
// (otherwise the KCL drops it whole): then it succeeded; else its records are
// sent again, routed by a fresh map.
func (p *Producer) wrongShardResult(k *krec, actual, seq string, now time.Time, rel *release) {
	p.stats.wrongShard.Add(1)
	p.requestRefresh()
	p.log.Infof("producer: record predicted for shard %s stored on %s; refreshing the shard map", k.shard.id, actual)
	if len(k.recs) == 1 {
		p.succeed(k, actual, seq, now, rel)
		return
	}
	m := p.smap.Load()
	if x, ok := m.byID[actual]; ok {
		p.resolveWrong(&wrongShard{k: k, shardID: actual, sequence: seq}, x, now, rel)
		return
	}
	s := k.shard
	s.mu.Lock()
	if !s.retired {
		s.stale = true // send nothing more from it until the map is fresh
	}
	s.mu.Unlock()
	p.wrongMu.Lock()
	p.wrongPending = append(p.wrongPending, &wrongShard{k: k, shardID: actual, sequence: seq})
	p.wrongMu.Unlock()
}

// holdsAll reports whether every user record of k belongs to shard x (nil:
// not in the map), which is what a KCL reader demands of an aggregate it
// reads from x.
func holdsAll(x *shard, k *krec) bool {
	if x == nil {
		return false
	}
	for _, f := range k.recs {
		if !x.contains(f.hash) {
			return false
		}
	}
	return true
}

// resolveWrong completes w if all its user records belong to shard x, and
// re-routes them otherwise.
func (p *Producer) resolveWrong(w *wrongShard, x *shard, now time.Time, rel *release) {
	if holdsAll(x, w.k) {
		p.succeed(w.k, w.shardID, w.sequence, now, rel)
		return
	}
	p.stats.retry("WrongShard", 1, uint64(len(w.k.recs)))
	p.reroute(p.dissolve(w.k), now, now, rel)
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
			p.log.Warnf("producer: shard map refresh failed (retrying in up to %v): %v", delay, err)
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

// refresh loads the open shards and installs them. Shards that stay keep
// their buffers and rate; shards that left are retired and their records
// re-routed, ahead of newer records, through the new map.
func (p *Producer) refresh() error {
	infos, err := p.listShards(p.reqCtx)
	if err != nil {
		return err
	}
	p.stats.refreshes.Add(1)
	now := time.Now()
	var rel release
	defer p.apply(&rel)

	p.wrongMu.Lock()
	wrong := p.wrongPending
	p.wrongPending = nil
	p.wrongMu.Unlock()

	old := p.smap.Load()
	if sameShards(old, infos) {
		for _, s := range old.shards {
			s.mu.Lock()
			s.stale = false
			s.mu.Unlock()
		}
		for _, w := range wrong {
			p.resolveWrong(w, old.byID[w.shardID], now, &rel)
		}
		p.kick()
		return nil
	}

	m := &shardMap{byID: make(map[string]*shard, len(infos))}
	for _, in := range infos {
		s, ok := old.byID[in.id]
		if ok && s.start == in.start && s.end == in.end {
			s.mu.Lock()
			s.stale = false
			s.mu.Unlock()
		} else {
			s = p.newShard(in, now)
			s.afterRetired = p.opts.Ordered
		}
		m.shards = append(m.shards, s)
		m.byID[s.id] = s
	}
	// Publish first, then retire: a Put that finds its shard retired reloads
	// the map and finds the new one.
	p.wrongMu.Lock()
	p.smap.Store(m)
	var moved []*Future
	for _, s := range old.shards {
		if m.byID[s.id] == s {
			continue
		}
		s.mu.Lock()
		s.retired = true
		p.retiredInflight.Add(int64(s.inflight))
		p.retiredPuts += s.putCount
		for _, k := range s.front {
			moved = append(moved, p.dissolve(k)...)
		}
		for _, k := range s.ready {
			p.readyKrecs.Add(-1)
			p.readyBytes.Add(-int64(k.size))
			moved = append(moved, p.dissolve(k)...)
		}
		moved = append(moved, s.aggRecs...)
		p.putAgg(s.agg)
		s.agg, s.aggRecs, s.front, s.ready, s.oldest = nil, nil, nil, nil, time.Time{}
		s.mu.Unlock()
	}
	p.wrongMu.Unlock()
	p.log.Infof("producer: shard map of %s now has %d open shards (was %d); %d buffered records re-routed",
		p.streamName, len(m.shards), len(old.shards), len(moved))

	// Wrong-shard records are older than anything still buffered.
	var first []*Future
	for _, w := range wrong {
		if holdsAll(m.byID[w.shardID], w.k) {
			p.succeed(w.k, w.shardID, w.sequence, now, &rel)
			continue
		}
		p.stats.retry("WrongShard", 1, uint64(len(w.k.recs)))
		first = append(first, p.dissolve(w.k)...)
	}
	p.reroute(append(first, moved...), now, now, &rel)
	p.kick()
	return nil
}
