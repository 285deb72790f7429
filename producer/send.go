package producer

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kplgo/kpl/aggregation"
)

// sendScratch is a sender's reusable space for encoding.
type sendScratch struct {
	dsts [][]byte
	aggs []*aggregation.Aggregator
}

// send encodes the Kinesis records of c, makes the PutRecords call and
// applies its outcome.
func (p *Producer) send(c *call, w *sendScratch, out *outbox) {
	// startCall registered the call, so that an abort can abandon it; an
	// abort that did while it waited in the queue has failed its records.
	// After the abort has begun no call starts.
	if p.aborting() {
		p.withdraw(c, out)
		return
	}
	p.callsMu.Lock()
	if c.state.Load() != callInFlight {
		p.callsMu.Unlock()
		return
	}
	c.start = time.Now() // in flight from now on
	p.callsMu.Unlock()

	w.dsts, w.aggs = p.pool.enc.encodeCall(c, p.env.putAgg, w.dsts, w.aggs)
	entries := make([]types.PutRecordsRequestEntry, len(c.krecs))
	for i, k := range c.krecs {
		entries[i] = types.PutRecordsRequestEntry{Data: k.data, PartitionKey: &k.pk, ExplicitHashKey: k.ehk}
	}
	p.stats.calls.Add(1)
	p.stats.krecsSent.Add(uint64(len(entries)))
	p.stats.bytesSent.Add(uint64(c.bytes))

	ctx, cancel := context.WithTimeout(p.reqCtx, p.opts.RequestTimeout)
	start := time.Now()
	res, err := p.client.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: p.streamName, StreamARN: p.streamARN, Records: entries}, p.callOpts...)
	dur := time.Since(start)
	cancel()
	p.stats.callDuration.observe(dur)
	if !c.state.CompareAndSwap(callInFlight, callHandled) {
		return // abandoned by Shutdown: its records have failed already
	}
	p.callsMu.Lock()
	delete(p.calls, c)
	p.callsMu.Unlock()
	if err == nil && (res == nil || len(res.Records) != len(entries)) {
		n := 0
		if res != nil {
			n = len(res.Records)
		}
		err = &invalidResponseError{msg: fmt.Sprintf("PutRecords returned %d results for %d records", n, len(entries))}
	}
	p.handle(c, res, err, start, dur, out)
	p.deliver(out)
}

// outcome is what one entry of a response says of its Kinesis record.
type outcome uint8

const (
	outStored     outcome = iota // stored on its predicted shard
	outWrongShard                // stored, on another shard
	outRetry                     // failed, retryable
	outFatal                     // failed, not retryable
)

// handle applies the result of call c to each of its Kinesis records.
func (p *Producer) handle(c *call, res *kinesis.PutRecordsOutput, err error, start time.Time, dur time.Duration, out *outbox) {
	now := time.Now()
	var whole errClass
	if err != nil {
		whole = classify(err)
		p.stats.callErrors.Add(1)
		out.logf(slog.LevelWarn, "producer: PutRecords failed", "records", len(c.krecs), "code", whole.code, "message", whole.message)
		if whole.refresh {
			p.requestRefresh()
		}
		if congestionSignal(whole) && p.window.congested(now) {
			out.logf(slog.LevelWarn, "producer: endpoint congested: fewer calls in flight", "code", whole.code, "calls", p.window.allowed())
		}
	} else {
		p.window.succeeded(now, c.bytes, dur, c.inflightAtStart)
	}
	for i, k := range c.krecs {
		cl, shardID, seq := whole, "", ""
		if err == nil {
			e := res.Records[i]
			switch code := aws.ToString(e.ErrorCode); {
			case code != "":
				cl = classifyCode(code, aws.ToString(e.ErrorMessage))
			case aws.ToString(e.ShardId) == "" || aws.ToString(e.SequenceNumber) == "":
				// Neither an error nor where it was stored: the
				// record may or may not be stored; like a timeout,
				// only sending it again can deliver it.
				cl = errClass{code: "InvalidResponse", message: "a PutRecords result entry has no error code, shard id or sequence number", retryable: true, maybeStored: true}
			default:
				shardID, seq = aws.ToString(e.ShardId), aws.ToString(e.SequenceNumber)
			}
		}
		k.attempted(Attempt{Time: start, Duration: dur, ErrorCode: cl.code, ErrorMessage: cl.message}, cl.maybeStored)
		var o outcome
		switch {
		case cl.code == "" && shardID == k.shard.id:
			o = outStored
		case cl.code == "":
			o = outWrongShard
		case cl.retryable && !p.aborting():
			o = outRetry
		default:
			o = outFatal
		}
		if cl.throttle {
			p.stats.throttles.Add(1)
		}
		p.apply(k, o, cl, shardID, seq, now, out)
	}
}

// apply carries out one outcome for Kinesis record k, which was in flight,
// and counts it out of its shard's flight, in that order: in Ordered mode
// the shard must not send anything newer before a retry of k is back at its
// front.
func (p *Producer) apply(k *krec, o outcome, cl errClass, shardID, seq string, now time.Time, out *outbox) {
	s := k.shard
	switch o {
	case outStored:
		out.succeed(k, shardID, seq)
		p.landed(s, cl, now)
	case outFatal:
		sentinel := error(nil)
		if cl.retryable { // only Shutdown ends a retryable record early
			sentinel = ErrClosed
			cl = closedClass(cl)
		}
		out.fail(k.dissolve(p.env.putAgg), nil, cl, sentinel)
		p.landed(s, cl, now)
	case outWrongShard:
		p.wrongShardResult(k, shardID, seq, now, out)
	case outRetry:
		p.stats.retry(cl.code, 1, uint64(len(k.recs)))
		at := now.Add(p.backoff(k.hist.count()))
		k.ownData() // it outlives its call: its call buffer can go back
		s.mu.Lock()
		if s.state != shardRetired && at.Before(k.deadline) {
			k.notBefore = at
			s.requeue(k)
			s.mu.Unlock()
			p.landed(s, cl, now)
			return
		}
		s.mu.Unlock()
		// Part of k expires before its next attempt, or its shard is
		// gone: its live records are packed again, through the map.
		live := expireRecs(k, at, &p.env, out)
		p.reroute(live, at, out)
		p.landed(s, cl, now)
	}
}

// landed counts a Kinesis record of s out of flight and feeds its outcome
// to the shard's rate limiter. A shard that may now send more is visited.
func (p *Producer) landed(s *shard, cl errClass, now time.Time) { p.land(s, cl, now, true) }

// land is landed; with countRetired false, a retired shard's record stays
// in retiredInflight (a wrong-shard aggregate that holds new shards).
func (p *Producer) land(s *shard, cl errClass, now time.Time, countRetired bool) {
	s.mu.Lock()
	s.inflight--
	retired := s.state == shardRetired
	if cl.throttle {
		s.lim.throttled(now)
	} else if cl.code == "" {
		s.lim.succeeded(now)
	}
	// In Ordered mode a shard with a call in flight is visited only to be
	// put off (to its TTL); the landing of that call must wake it, also
	// when the record was requeued (the visit then finds its backoff).
	wake := !retired && p.opts.Ordered && s.inflight == 0
	s.mu.Unlock()
	if retired && countRetired {
		p.retiredLanded()
	}
	if wake {
		p.env.sched.makeDue(s)
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
