package producer

import (
	"log/slog"
	"time"
)

// outbox collects what one step of the producer resolved (futures to
// complete, buffer room to give back, buffers to reuse, log lines) while
// locks are held, and delivers it after they are released: results and log
// lines never reach user code under a producer lock.
type outbox struct {
	done  []*Future
	rel   release
	logs  []logLine
	stats *counters
}

// logLine is a deferred log call.
type logLine struct {
	level slog.Level
	msg   string
	attrs []any
}

// release counts the records resolved in one step, applied to the buffer in
// one go before their futures are complete, and to their flush epochs after.
type release struct {
	recs, bytes int64
	buckets     [2]int64
}

func (r *release) add(f *Future) {
	r.recs++
	r.bytes += int64(f.size)
	r.buckets[f.epoch&1]++
}

// succeed resolves every user record of k, stored on shard shardID at
// sequence number seq.
func (o *outbox) succeed(k *krec, shardID, seq string) {
	k.state = krecDone
	k.resShard, k.resSeq, k.aggregated = shardID, seq, k.isAgg
	k.atts = attemptList(nil, k.hist) // once per Kinesis record, not per user record
	// Count first, so that Stats read after a Future completes include it.
	o.stats.succeeded.Add(uint64(len(k.recs)))
	o.stats.krecsSucceeded.Add(1)
	o.stats.bytesSucceeded.Add(uint64(k.size))
	for i, f := range k.recs {
		f.sub = uint32(i)
		f.k = k
		o.rel.add(f)
		o.done = append(o.done, f)
	}
	// The records of an aggregate hold no data (dropCopies): only a plain
	// record's is dropped, and the others' lines holding it stay untouched.
	if !k.isAgg {
		k.recs[0].data = nil
	}
	k.dropData()
	k.recs, k.one, k.data = nil, [1]*Future{}, nil // futures keep k: drop what they do not need
}

// fail resolves recs with an error: the last attempt's class c, and
// sentinel (ErrRecordExpired, ErrClosed or nil). hist, when not nil, holds
// the attempts of the Kinesis record that carried them, after each record's
// prior ones.
func (o *outbox) fail(recs []*Future, hist *history, c errClass, sentinel error) {
	if len(recs) == 0 {
		return
	}
	o.stats.failed.Add(uint64(len(recs)))
	if sentinel == ErrRecordExpired {
		o.stats.expired.Add(uint64(len(recs)))
	}
	o.stats.outcome(c.code, len(recs))
	what := "failed"
	if sentinel != nil {
		what = sentinel.Error()
	}
	o.logf(slog.LevelWarn, "producer: records "+what, "records", len(recs), "code", c.code, "message", c.message)
	// Records that share a prior history share one attempt list.
	var atts []Attempt
	var attsOf *history
	for i, f := range recs {
		if i == 0 || f.prior != attsOf {
			atts, attsOf = attemptList(f.prior, hist), f.prior
		}
		o.rel.add(f)
		f.err = &RecordError{
			Code: c.code, Message: c.message, Retryable: c.retryable,
			Attempts:     atts,
			AttemptCount: f.prior.count() + hist.count(),
			MaybeStored:  f.prior.mayHaveStored() || hist.mayHaveStored(),
			PartitionKey: f.pk, ExplicitHashKey: f.ehk, Data: f.data, ID: f.id,
			sentinel: sentinel, cause: c.cause,
		}
		f.data = nil // the error holds it
		o.done = append(o.done, f)
	}
}

func (o *outbox) logf(level slog.Level, msg string, attrs ...any) {
	o.logs = append(o.logs, logLine{level: level, msg: msg, attrs: attrs})
}

// newOutbox returns an empty outbox of the producer.
func (p *Producer) newOutbox() outbox { return outbox{stats: &p.stats} }

// deliver gives back the buffer room, completes the futures, counts them out
// of their flush epochs, reuses the buffers and writes the log lines. No lock
// may be held. The room goes back before the results, so that a PutAsync
// callback that Puts finds the room of its own record; the flush epochs count
// the records until after, so that Flush and Close wait for the results.
func (p *Producer) deliver(o *outbox) {
	for _, l := range o.logs {
		p.log.log(l.level, l.msg, l.attrs...)
	}
	p.budget.release(&o.rel)
	if len(o.done) > 0 {
		// Latencies go into the shared histogram once per step, not once
		// per record, and before the results, so that Stats read by
		// whoever sees a result include it.
		ns := p.nanos(time.Now())
		var lat latencyBatch
		for _, f := range o.done {
			lat.add(time.Duration(ns - f.put))
		}
		lat.addTo(&p.stats.putLatency)
		for _, f := range o.done {
			f.complete(ns)
		}
		if h := p.opts.OnFailure; h != nil {
			for _, f := range o.done {
				if re, ok := f.err.(*RecordError); ok {
					h(re)
				}
			}
		}
	}
	p.budget.delivered(&o.rel)
	clear(o.done)
	o.done, o.logs = o.done[:0], nil
}
