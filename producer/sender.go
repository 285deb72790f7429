package producer

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kplgo/kpl/aggregation"
)

// krec is one Kinesis record: an aggregate of user records, or one plain
// user record. It belongs to one shard (the one its hash key predicts).
type krec struct {
	shard *shard
	recs  []*Future // user records, in order; recs[i] has sub-sequence number i
	one   [1]*Future
	agg   *aggregation.Aggregator // the aggregate until encoded; nil for a plain record
	data  []byte
	pk    string
	ehk   *string
	size  int // len(data) + len(pk), what the service counts

	attempts []Attempt
	// Outcome, set before its user records complete.
	resShard, resSeq string
	aggregated       bool
	ownData          bool // data is the producer's (an encoded aggregate), reusable after success

	notBefore time.Time // earliest next attempt (retries)
	oldest    time.Time // put time of the oldest user record
	deadline  time.Time // oldest + RecordTTL
}

// setPlain makes k carry the single user record f as itself.
func (k *krec) setPlain(f *Future) {
	k.one[0] = f
	k.recs = k.one[:]
	k.data, k.pk, k.size = f.data, f.pk, int(f.size)
	if k.data == nil {
		k.data = []byte{} // the SDK refuses a nil Data
	}
	if f.ehk != "" {
		k.ehk = &f.ehk
	}
}

// batch is one PutRecords call.
type batch struct {
	krecs []*krec
	bytes int
}

// fits reports whether k may join call b. The byte bound is the call
// window's (CollectionMaxSize unless the endpoint is congested); the first
// record always fits.
func (p *Producer) fits(b *batch, k *krec) bool {
	return len(b.krecs) < p.opts.CollectionMaxCount && (len(b.krecs) == 0 || b.bytes+k.size <= p.window.callBytes())
}

func (p *Producer) batchFull(b *batch) bool {
	return len(b.krecs) >= p.opts.CollectionMaxCount || b.bytes >= p.window.callBytes()
}

// seal closes the open aggregate of s and queues it. s.mu is held. It
// reports whether enough is ready for a full call.
func (p *Producer) seal(s *shard) bool {
	n := s.agg.Count()
	if n == 0 {
		return false
	}
	k := &krec{shard: s, recs: s.aggRecs}
	s.aggRecs = make([]*Future, 0, n)
	if n == 1 {
		k.setPlain(k.recs[0])
		s.agg.Reset()
	} else {
		k.agg = s.agg
		k.pk = aggregation.AggregatePartitionKey
		k.size = s.agg.Size() + len(aggregation.AggregatePartitionKey)
		s.agg = p.getAgg()
	}
	k.oldest = k.recs[0].putTime()
	k.deadline = k.oldest.Add(p.opts.RecordTTL)
	s.ready = append(s.ready, k)
	return p.addReady(k)
}

// sealSingle queues f alone. s.mu is held.
func (p *Producer) sealSingle(s *shard, f *Future) bool {
	k := &krec{shard: s}
	k.setPlain(f)
	k.oldest = f.putTime()
	k.deadline = k.oldest.Add(p.opts.RecordTTL)
	s.ready = append(s.ready, k)
	return p.addReady(k)
}

func (p *Producer) addReady(k *krec) bool {
	c := p.readyKrecs.Add(1)
	b := p.readyBytes.Add(int64(k.size))
	return c >= int64(p.opts.CollectionMaxCount) || b >= int64(p.window.callBytes())
}

// encode turns an aggregate into bytes. The aggregate's explicit hash key is
// its first user record's hash key, which lies in the shard's range.
func (p *Producer) encode(k *krec) {
	if k.agg == nil {
		return
	}
	var buf []byte
	if b, ok := p.bufPool.Get().(*[]byte); ok && cap(*b) >= k.agg.Size() {
		buf = (*b)[:0]
	} else {
		buf = make([]byte, 0, max(k.agg.Size(), p.opts.AggregationMaxSize))
	}
	k.data = k.agg.AppendEncoded(buf)
	k.ownData = true
	ehk := k.recs[0].hash.String()
	k.ehk = &ehk
	p.putAgg(k.agg)
	k.agg = nil
}

// dispatch is the one goroutine that moves Kinesis records from the shards
// into PutRecords calls, and expires what waited too long.
func (p *Producer) dispatch() {
	defer p.wg.Done()
	defer close(p.work)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	sweepEvery := min(max(p.opts.RecordTTL/8, 5*time.Millisecond), time.Second)
	lastSweep := time.Now()
	rr := 0
	for {
		now := time.Now()
		if p.aborting.Load() {
			p.abortQueued()
		}
		if now.Sub(lastSweep) >= sweepEvery {
			p.sweep(now)
			lastSweep = now
		}
		force := p.forcing.Load() > 0
		next := now.Add(time.Hour)
		for p.inflightCalls.Load() < p.window.allowed() {
			b, at := p.collect(now, force, rr)
			rr++
			if b == nil {
				next = at
				break
			}
			p.inflightCalls.Add(1)
			p.work <- b // never blocks: capacity MaxConnections
			next = now.Add(time.Hour)
		}
		if p.bufRecs.Load() > 0 {
			next = minTime(next, lastSweep.Add(sweepEvery))
		}
		timer.Reset(max(next.Sub(now), 0))
		select {
		case <-p.wake:
		case <-timer.C:
		case <-p.stop:
			return
		}
	}
}

// collect builds one call from the shards, starting at a rotating shard so
// that no shard starves. It returns nil and the time something becomes
// sendable when nothing is sendable now.
func (p *Producer) collect(now time.Time, force bool, rr int) (*batch, time.Time) {
	m := p.smap.Load()
	n := len(m.shards)
	full := force || p.readyKrecs.Load() >= int64(p.opts.CollectionMaxCount) || p.readyBytes.Load() >= int64(p.window.callBytes())
	b := &batch{}
	next := now.Add(time.Hour)
	for i := 0; i < n && !p.batchFull(b); i++ {
		s := m.shards[(rr+i)%n]
		s.mu.Lock()
		at := p.takeFrom(s, b, now, force, full)
		s.mu.Unlock()
		next = minTime(next, at)
	}
	if len(b.krecs) == 0 {
		return nil, next
	}
	return b, next
}

// takeFrom moves the sendable Kinesis records of s into b, retries first. It
// returns when s next has something sendable. s.mu is held.
//
// A shard sends when its oldest record has lingered for Linger, when enough
// is ready across shards for a full call, or when a Flush or Close forces it.
// In Ordered mode a shard sends only with nothing in flight, one Kinesis
// record per call, retries strictly first.
func (p *Producer) takeFrom(s *shard, b *batch, now time.Time, force, full bool) time.Time {
	far := now.Add(time.Hour)
	if s.retired || s.stale {
		return far
	}
	ordered := p.opts.Ordered
	if ordered {
		if s.inflight > 0 {
			return far // its completion wakes the dispatcher
		}
		if s.afterRetired {
			if p.retiredInflight.Load() > 0 {
				return far
			}
			s.afterRetired = false
		}
	}
	next := far
	if len(s.front) > 0 {
		if ordered {
			k := s.front[0]
			switch {
			case k.notBefore.After(now):
				return k.notBefore
			case !p.fits(b, k):
				return now
			case !s.lim.take(now, k.size):
				return s.lim.when(now, k.size)
			}
			s.front[0] = nil
			s.front = s.front[1:]
			p.take(b, s, k)
			return far
		}
		kept := s.front[:0]
		blocked := false
		for _, k := range s.front {
			switch {
			case blocked:
			case k.notBefore.After(now):
				next = minTime(next, k.notBefore)
			case !p.fits(b, k):
				blocked, next = true, now
			case !s.lim.take(now, k.size):
				blocked, next = true, minTime(next, s.lim.when(now, k.size))
			default:
				p.take(b, s, k)
				continue
			}
			kept = append(kept, k)
		}
		clear(s.front[len(kept):])
		s.front = kept
		if blocked {
			return next
		}
	}
	if s.oldest.IsZero() {
		return next
	}
	lingerAt := s.oldest.Add(p.opts.Linger)
	lingerDue := force || !now.Before(lingerAt)
	if !lingerDue && !full && !(ordered && len(s.ready) > 0) {
		return minTime(next, lingerAt)
	}
	// A lingering open aggregate is sealed only once everything ready before
	// it has gone into the call: while sealed records wait (for the rate
	// limiter, or for room in a call), the open one keeps filling instead of
	// going out as a small record.
	limited := false
	for {
		if len(s.ready) == 0 {
			if !lingerDue || s.agg.Count() == 0 {
				break
			}
			p.seal(s)
		}
		k := s.ready[0]
		if !p.fits(b, k) {
			next = now
			break
		}
		if !s.lim.take(now, k.size) {
			next = minTime(next, s.lim.when(now, k.size))
			limited = true
			break
		}
		s.ready[0] = nil
		s.ready = s.ready[1:]
		p.readyKrecs.Add(-1)
		p.readyBytes.Add(-int64(k.size))
		p.take(b, s, k)
		if ordered {
			next = far
			break
		}
	}
	switch {
	case len(s.ready) > 0:
		s.oldest = s.ready[0].oldest
	case s.agg.Count() > 0:
		s.oldest = s.aggRecs[0].putTime()
	default:
		s.oldest = time.Time{}
	}
	// A shard held back by its rate limiter wakes when the limiter allows,
	// not at its (past) linger time, which would spin the dispatcher.
	if !s.oldest.IsZero() && !(ordered && s.inflight > 0) && !limited {
		next = minTime(next, maxTime(s.oldest.Add(p.opts.Linger), now))
	}
	return next
}

func (p *Producer) take(b *batch, s *shard, k *krec) {
	b.krecs = append(b.krecs, k)
	b.bytes += k.size
	s.inflight++
}

// worker sends the calls the dispatcher builds.
func (p *Producer) worker() {
	defer p.wg.Done()
	for b := range p.work {
		p.send(b)
		p.inflightCalls.Add(-1)
		p.kick()
	}
}

// send makes one PutRecords call and handles its result.
func (p *Producer) send(b *batch) {
	entries := make([]types.PutRecordsRequestEntry, len(b.krecs))
	for i, k := range b.krecs {
		p.encode(k)
		entries[i] = types.PutRecordsRequestEntry{Data: k.data, PartitionKey: &k.pk, ExplicitHashKey: k.ehk}
	}
	p.stats.calls.Add(1)
	p.stats.krecsSent.Add(uint64(len(entries)))
	p.stats.bytesSent.Add(uint64(b.bytes))

	ctx, cancel := timeoutCtx(p.reqCtx, p.opts.RequestTimeout)
	start := time.Now()
	out, err := p.client.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: &p.streamName, Records: entries}, p.callOpts...)
	dur := time.Since(start)
	cancel()
	if err == nil && (out == nil || len(out.Records) != len(entries)) {
		n := 0
		if out != nil {
			n = len(out.Records)
		}
		err = &invalidResponseError{msg: fmt.Sprintf("PutRecords returned %d results for %d records", n, len(entries))}
	}
	p.handle(b, out, err, start, dur)
}

// release counts the records resolved while handling a call, applied in one
// go after their futures are complete.
type release struct {
	recs, bytes int64
	buckets     [2]int64
}

func (r *release) add(f *Future) {
	r.recs++
	r.bytes += int64(f.size)
	r.buckets[f.bucket]++
}

func (p *Producer) apply(r *release) {
	if r.recs == 0 {
		return
	}
	p.pending[0].Add(-r.buckets[0])
	p.pending[1].Add(-r.buckets[1])
	p.bufBytes.Add(-r.bytes)
	p.bufRecs.Add(-r.recs)
	*r = release{}
	if p.progWaiters.Load() > 0 {
		p.broadcast()
	}
}

// handle resolves, retries or fails each Kinesis record of a call.
func (p *Producer) handle(b *batch, out *kinesis.PutRecordsOutput, err error, start time.Time, dur time.Duration) {
	now := time.Now()
	var rel release
	var call errClass
	if err != nil {
		call = classify(err)
		p.stats.callErrors.Add(1)
		p.log.Warnf("producer: PutRecords of %d records failed: %s: %s", len(b.krecs), call.code, call.message)
		if call.refresh {
			p.requestRefresh()
		}
		if congestionSignal(call) && p.window.congested(now) {
			p.log.Warnf("producer: endpoint congested (%s): at most %d calls in flight", call.code, p.window.allowed())
		}
	} else {
		p.window.succeeded(b.bytes, dur)
	}
	for i, k := range b.krecs {
		var c errClass
		var shardID, seq string
		if err != nil {
			c = call
		} else if e := out.Records[i]; aws.ToString(e.ErrorCode) != "" {
			c = classifyCode(aws.ToString(e.ErrorCode), aws.ToString(e.ErrorMessage))
		} else {
			shardID, seq = aws.ToString(e.ShardId), aws.ToString(e.SequenceNumber)
		}
		k.attempts = append(k.attempts, Attempt{Time: start, Duration: dur, ErrorCode: c.code, ErrorMessage: c.message})
		s := k.shard
		// Resolve or requeue first, then count k out of its shard's
		// flight: in Ordered mode the shard must not send anything newer
		// before a retry of k is back at its front.
		switch {
		case c.code == "" && shardID == s.id:
			p.succeed(k, shardID, seq, now, &rel)
		case c.code == "":
			p.wrongShardResult(k, shardID, seq, now, &rel)
		default:
			if c.throttle {
				p.stats.throttles.Add(1)
			}
			switch {
			case p.aborting.Load():
				p.fail(k, c, ErrClosed, &rel)
			case c.retryable:
				p.retry(k, c, now, &rel)
			default:
				p.fail(k, c, nil, &rel)
			}
		}
		s.mu.Lock()
		s.inflight--
		if s.retired {
			p.retiredInflight.Add(-1)
		}
		if c.throttle {
			s.lim.throttled(now)
		} else if c.code == "" {
			s.lim.succeeded(now)
		}
		s.mu.Unlock()
	}
	p.apply(&rel)
}

// attemptsOf returns f's attempts: its prior ones and k's.
func attemptsOf(f *Future, k *krec) []Attempt {
	att := k.attempts[:len(k.attempts):len(k.attempts)]
	if f.prior == nil {
		return att
	}
	return append(f.prior[:len(f.prior):len(f.prior)], att...)
}

// succeed completes every user record of k.
func (p *Producer) succeed(k *krec, shardID, seq string, now time.Time, rel *release) {
	k.resShard, k.resSeq, k.aggregated = shardID, seq, len(k.recs) > 1
	// Count first, so that Stats read after a Future completes include it.
	p.stats.succeeded.Add(uint64(len(k.recs)))
	p.stats.krecsSucceeded.Add(1)
	p.stats.bytesSucceeded.Add(uint64(k.size))
	ns := p.nanos(now)
	for i, f := range k.recs {
		f.sub = uint32(i)
		f.k = k
		rel.add(f)
		f.complete(ns)
	}
	if k.ownData {
		b := k.data[:0]
		p.bufPool.Put(&b)
	}
	k.recs, k.one, k.data = nil, [1]*Future{}, nil // futures keep k: drop what they do not need
}

// fail completes every user record of k with an error.
func (p *Producer) fail(k *krec, c errClass, sentinel error, rel *release) {
	p.failRecs(k.recs, k, c, sentinel, rel)
}

func (p *Producer) failRecs(recs []*Future, k *krec, c errClass, sentinel error, rel *release) {
	if len(recs) == 0 {
		return
	}
	// Count and log first, so that whoever sees a Future complete finds it
	// in Stats and the log.
	p.stats.failed.Add(uint64(len(recs)))
	if sentinel == ErrRecordExpired {
		p.stats.expired.Add(uint64(len(recs)))
	}
	what := "failed"
	if sentinel != nil {
		what = sentinel.Error()
	}
	p.log.Warnf("producer: %d records: %s: %s %s", len(recs), what, c.code, c.message)
	ns := p.nanos(time.Now())
	for _, f := range recs {
		var att []Attempt
		if k != nil {
			att = attemptsOf(f, k)
		} else {
			att = f.prior[:len(f.prior):len(f.prior)]
		}
		rel.add(f)
		f.err = &RecordError{
			Code: c.code, Message: c.message, Retryable: c.retryable, Attempts: att,
			sentinel: sentinel, cause: c.cause,
		}
		f.complete(ns)
	}
}

// backoff returns the wait before attempt n+1 after n attempts: full jitter
// over an exponentially growing window.
func (p *Producer) backoff(n int) time.Duration {
	d := p.opts.RetryMaxDelay
	if n-1 < 30 {
		if w := p.opts.RetryBaseDelay << (n - 1); w > 0 && w < d {
			d = w
		}
	}
	return rand.N(d) + 1
}

// retry schedules k again after a backoff, failing the user records whose
// TTL would end first.
func (p *Producer) retry(k *krec, c errClass, now time.Time, rel *release) {
	p.stats.retry(c.code, 1, uint64(len(k.recs)))
	at := now.Add(p.backoff(len(k.attempts)))
	if at.Before(k.deadline) {
		k.notBefore = at
		p.requeue(k, now)
		return
	}
	live := p.expire(k, at, c, rel)
	p.reroute(live, at, now, rel)
}

// expire fails the user records of k whose TTL ends before at and returns the
// others, dissolved (they carry k's attempts).
func (p *Producer) expire(k *krec, at time.Time, c errClass, rel *release) []*Future {
	var dead, live []*Future
	for _, f := range k.recs {
		if f.putTime().Add(p.opts.RecordTTL).After(at) {
			live = append(live, f)
		} else {
			dead = append(dead, f)
		}
	}
	if c.code == "" {
		c = errClass{code: "RecordExpired", message: "record TTL ended before it was sent", retryable: true}
	}
	p.failRecs(dead, k, c, ErrRecordExpired, rel)
	return p.dissolveRecs(k, live)
}

// dissolve returns k's user records, each carrying k's attempts, and gives
// back k's aggregate.
func (p *Producer) dissolve(k *krec) []*Future {
	return p.dissolveRecs(k, k.recs)
}

func (p *Producer) dissolveRecs(k *krec, recs []*Future) []*Future {
	if k.agg != nil {
		p.putAgg(k.agg)
		k.agg = nil
	}
	if len(k.attempts) > 0 {
		for _, f := range recs {
			f.prior = append(f.prior[:len(f.prior):len(f.prior)], k.attempts...)
		}
	}
	return recs
}

// requeue puts a failed k back on its shard for a retry: first in Ordered
// mode (nothing of that shard was sent after it), else with the other
// retries. If the shard has left the map, its records are re-routed.
func (p *Producer) requeue(k *krec, now time.Time) {
	s := k.shard
	s.mu.Lock()
	if s.retired {
		s.mu.Unlock()
		var rel release
		p.reroute(p.dissolve(k), k.notBefore, now, &rel)
		p.apply(&rel)
		return
	}
	if p.opts.Ordered {
		s.front = append(s.front, nil)
		copy(s.front[1:], s.front)
		s.front[0] = k
	} else {
		s.front = append(s.front, k)
	}
	s.mu.Unlock()
	p.kick()
}

// reroute routes user records through the current shard map into new
// Kinesis records at the front of their shards, in order, to be sent from
// notBefore on. Records whose TTL has ended fail.
func (p *Producer) reroute(recs []*Future, notBefore, now time.Time, rel *release) {
	if len(recs) == 0 {
		return
	}
	var live []*Future
	var dead []*Future
	for _, f := range recs {
		if f.putTime().Add(p.opts.RecordTTL).After(now) {
			live = append(live, f)
		} else {
			dead = append(dead, f)
		}
	}
	if len(dead) > 0 {
		c := errClass{code: "RecordExpired", message: "record TTL ended before it was delivered", retryable: true}
		if att := dead[0].prior; len(att) > 0 {
			c.code, c.message = att[len(att)-1].ErrorCode, att[len(att)-1].ErrorMessage
		}
		p.failRecs(dead, nil, c, ErrRecordExpired, rel)
	}
	for len(live) > 0 {
		m := p.smap.Load()
		// Group by shard, keeping order within each shard.
		var order []*shard
		groups := make(map[*shard][]*Future)
		for _, f := range live {
			s := m.find(f.hash)
			if _, ok := groups[s]; !ok {
				order = append(order, s)
			}
			groups[s] = append(groups[s], f)
		}
		live = live[:0]
		for _, s := range order {
			s.mu.Lock()
			if s.retired { // a newer map exists: route these again
				s.mu.Unlock()
				live = append(live, groups[s]...)
				continue
			}
			ks := p.build(s, groups[s], notBefore)
			s.front = append(ks, s.front...)
			s.mu.Unlock()
		}
	}
	p.kick()
}

// build packs user records of shard s into Kinesis records, in order.
func (p *Producer) build(s *shard, recs []*Future, notBefore time.Time) []*krec {
	var out []*krec
	var k *krec
	var agg *aggregation.Aggregator
	flush := func() {
		if k == nil {
			return
		}
		if agg.Count() == 1 {
			f := k.recs[0]
			k.recs = nil
			k.setPlain(f)
			p.putAgg(agg)
		} else {
			k.agg = agg
			k.pk = aggregation.AggregatePartitionKey
			k.size = agg.Size() + len(aggregation.AggregatePartitionKey)
		}
		out = append(out, k)
		k, agg = nil, nil
	}
	single := func(f *Future) {
		flush()
		sk := &krec{shard: s, notBefore: notBefore, oldest: f.putTime(), deadline: f.putTime().Add(p.opts.RecordTTL)}
		sk.setPlain(f)
		out = append(out, sk)
	}
	for _, f := range recs {
		if !p.opts.AggregationEnabled {
			single(f)
			continue
		}
		if k != nil && agg.Add(f.record()) != nil {
			flush()
		}
		if k == nil {
			agg = p.getAgg()
			if agg.Add(f.record()) != nil {
				p.putAgg(agg)
				agg = nil
				single(f)
				continue
			}
			k = &krec{shard: s, notBefore: notBefore, oldest: f.putTime()}
		}
		k.recs = append(k.recs, f)
		k.oldest = minTime(k.oldest, f.putTime())
		k.deadline = k.oldest.Add(p.opts.RecordTTL)
		if agg.Full() {
			flush()
		}
	}
	flush()
	return out
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// sweep fails the user records whose TTL has ended while they waited in a
// shard (behind a rate limit, a retry backoff or a stale shard map).
func (p *Producer) sweep(now time.Time) {
	if p.bufRecs.Load() == 0 {
		return
	}
	var rel release
	m := p.smap.Load()
	for _, s := range m.shards {
		s.mu.Lock()
		if s.stale && s.agg.Count() > 0 {
			p.seal(s)
		}
		s.front = p.sweepQueue(s, s.front, now, false, &rel)
		s.ready = p.sweepQueue(s, s.ready, now, true, &rel)
		if len(s.ready) > 0 {
			s.oldest = s.ready[0].oldest
		}
		s.mu.Unlock()
	}
	p.wrongMu.Lock()
	kept := p.wrongPending[:0]
	for _, w := range p.wrongPending {
		if w.k.deadline.After(now) {
			kept = append(kept, w)
			continue
		}
		p.fail(w.k, errClass{code: "RecordExpired", message: "record TTL ended while the shard map was refreshed", retryable: true}, ErrRecordExpired, &rel)
	}
	clear(p.wrongPending[len(kept):])
	p.wrongPending = kept
	p.wrongMu.Unlock()
	p.apply(&rel)
}

// sweepQueue replaces each expired Kinesis record of q by its live user
// records, in place. s.mu is held.
func (p *Producer) sweepQueue(s *shard, q []*krec, now time.Time, ready bool, rel *release) []*krec {
	var out []*krec
	for i, k := range q {
		if k.deadline.After(now) {
			if out != nil {
				out = append(out, k)
			}
			continue
		}
		if out == nil {
			out = append(make([]*krec, 0, len(q)), q[:i]...)
		}
		if ready {
			p.readyKrecs.Add(-1)
			p.readyBytes.Add(-int64(k.size))
		}
		var c errClass
		if n := len(k.attempts); n > 0 {
			c = errClass{code: k.attempts[n-1].ErrorCode, message: k.attempts[n-1].ErrorMessage, retryable: true}
		}
		live := p.expire(k, now, c, rel)
		if len(live) == 0 {
			continue
		}
		for _, nk := range p.build(s, live, k.notBefore) {
			if ready {
				p.addReady(nk)
			}
			out = append(out, nk)
		}
	}
	if out == nil {
		return q
	}
	return out
}

// abortQueued fails everything waiting in the shards: Shutdown's context
// ended.
func (p *Producer) abortQueued() {
	c := errClass{code: "ProducerClosed", message: "the producer shut down before the record was delivered"}
	var rel release
	m := p.smap.Load()
	for _, s := range m.shards {
		s.mu.Lock()
		p.seal(s)
		for _, k := range s.front {
			p.fail(k, c, ErrClosed, &rel)
		}
		for _, k := range s.ready {
			p.readyKrecs.Add(-1)
			p.readyBytes.Add(-int64(k.size))
			if k.agg != nil {
				p.putAgg(k.agg)
				k.agg = nil
			}
			p.fail(k, c, ErrClosed, &rel)
		}
		s.front, s.ready, s.oldest = nil, nil, time.Time{}
		s.mu.Unlock()
	}
	p.wrongMu.Lock()
	for _, w := range p.wrongPending {
		p.fail(w.k, c, ErrClosed, &rel)
	}
	p.wrongPending = nil
	p.wrongMu.Unlock()
	p.apply(&rel)
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
