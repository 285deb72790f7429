package producer

import (
	"time"
)

// dispatch is the one goroutine that builds PutRecords calls. It visits only
// the shards the scheduler names (due now, or whose deadline has passed), so
// its cost per call grows with the shards in the call, not with the shards
// in the map.
func (p *Producer) dispatch() {
	defer p.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	out := p.newOutbox()
	// What the last pass saw of Flush and Close, from their initial
	// values: a Flush before the first pass still counts as a change.
	var lastForce uint32
	wasClosing := false
	for {
		if p.aborting() {
			p.abortAll()
		}
		now := time.Now()
		force := p.env.forceBelow.Load()
		closing := p.env.closing.Load()
		all := force != lastForce || (closing && !wasClosing)
		lastForce, wasClosing = force, closing
		next := p.env.sched.promote(now, lingerSlack(p.opts.Linger), p.env.sealedFull(), all)
		for p.window.room(p.inflightCalls.Load()) {
			c := p.collect(now, &out)
			if c == nil {
				break
			}
			p.startCall(c)
		}
		p.deliver(&out)
		if next.IsZero() {
			next = now.Add(time.Hour)
		}
		timer.Reset(max(next.Sub(now), 0))
		select {
		case <-p.env.sched.wake:
		case <-timer.C:
		case <-p.stop:
			return
		}
	}
}

// collect builds one call from the due shards; nil when nothing is
// sendable now. A shard with more than the call could take stays first in
// line for the next call.
func (p *Producer) collect(now time.Time, out *outbox) *call {
	q := p.env.sched
	callBytes := p.window.callBytes()
	if room := int(p.window.budget.Load() - p.window.inflight.Load()); room < callBytes {
		callBytes = max(room, 1) // the first record always fits
	}
	c := &call{p: p}
	for !c.full(&p.opts, callBytes) {
		s := q.next()
		if s == nil {
			break
		}
		s.mu.Lock()
		var at time.Time
		if s.state != shardRetired {
			at = s.takeInto(c, now, callBytes, out)
		}
		s.mu.Unlock()
		switch {
		case at.IsZero():
		case !at.After(now):
			q.pushFront(s)
		default:
			q.at(s, at)
		}
		if !at.IsZero() && !at.After(now) {
			break // the call is full for this shard
		}
	}
	if len(c.krecs) == 0 {
		return nil
	}
	return c
}

// startCall hands c to a sender of the pool. With a shared pool the
// senders may all be busy with other producers' calls: it waits, unless
// the producer stops or aborts. The call is registered from now on, so
// that an abort also fails a call that waits in the pool's queue behind
// another producer's (Shutdown's ctx is this producer's alone).
func (p *Producer) startCall(c *call) {
	p.inflightCalls.Add(1)
	c.inflightAtStart = p.window.start(c.bytes)
	p.callsMu.Lock()
	p.calls[c] = struct{}{}
	p.callsMu.Unlock()
	select {
	case p.pool.work <- c:
		return
	case <-p.stop:
	case <-p.abortCh:
	}
	p.inflightCalls.Add(-1)
	p.window.done(c.bytes)
	out := p.newOutbox()
	p.withdraw(c, &out)
}

// withdraw takes c, registered but never sent, out of the calls and fails
// its records as never sent, unless an abort has failed them already.
func (p *Producer) withdraw(c *call, out *outbox) {
	p.callsMu.Lock()
	mine := c.state.CompareAndSwap(callInFlight, callAbandoned) // else abortAll failed it
	delete(p.calls, c)
	p.callsMu.Unlock()
	if mine {
		p.failClosed(out, c.krecs)
		p.deliver(out)
	}
}

// abortAll fails everything the producer still holds: Shutdown's context
// ended. Calls in flight are abandoned: their records fail now, and their
// responses, if they ever come, are ignored.
func (p *Producer) abortAll() {
	out := p.newOutbox()
	p.mapMu.Lock()
	m := p.smap.Load()
	for _, s := range m.shards {
		s.mu.Lock()
		ks := s.drainAll()
		s.mu.Unlock()
		p.failClosed(&out, ks)
	}
	for _, w := range p.wrongPending {
		p.release(w)
		p.failClosed(&out, []*krec{w.k})
	}
	p.wrongPending = nil
	p.mapMu.Unlock()

	p.callsMu.Lock()
	var abandoned []*call
	for cl := range p.calls {
		if cl.state.CompareAndSwap(callInFlight, callAbandoned) {
			abandoned = append(abandoned, cl)
			delete(p.calls, cl)
		}
	}
	p.callsMu.Unlock()
	now := time.Now()
	for _, cl := range abandoned {
		if cl.start.IsZero() { // still in the pool's queue: never sent
			p.failClosed(&out, cl.krecs)
			continue
		}
		for _, k := range cl.krecs {
			if k.buf != nil {
				k.buf.abandoned.Store(true) // the client may still read it
			}
			// The call may have stored it: an attempt of unknown outcome.
			k.attempted(Attempt{Time: cl.start, Duration: now.Sub(cl.start), ErrorCode: "ProducerClosed", ErrorMessage: "the producer shut down while the call was in flight"}, true)
		}
		p.failClosed(&out, cl.krecs)
	}
	p.deliver(&out)
}

// closedClass is the failure of a record that a Shutdown gave up on; cause,
// when not empty, is the retryable error its last attempt met.
func closedClass(cause errClass) errClass {
	c := errClass{code: "ProducerClosed", message: "the producer shut down before the record was delivered", cause: cause.cause}
	if cause.message != "" {
		c.message += ": " + cause.message
	}
	return c
}

// failClosed fails every user record of ks with ErrClosed.
func (p *Producer) failClosed(out *outbox, ks []*krec) {
	for _, k := range ks {
		out.fail(k.dissolve(p.env.putAgg), nil, closedClass(errClass{}), ErrClosed)
	}
}
