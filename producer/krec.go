package producer

import (
	"time"

	"github.com/kplgo/kpl/aggregation"
)

// krecState is where a Kinesis record is in its life. The transitions are:
//
//	queued -> inFlight          a call takes it (shard.take)
//	inFlight -> done            stored, failed for good, or abandoned by Shutdown
//	inFlight -> queued          a retryable failure puts it back (shard.requeue)
//	queued|inFlight -> dissolved its user records are re-packed into new
//	                            Kinesis records (partial expiry, a reshard, a
//	                            wrong-shard landing): it is never sent again
type krecState uint8

const (
	krecQueued krecState = iota
	krecInFlight
	krecDone
	krecDissolved
)

// krec is one Kinesis record: an aggregate of user records or one plain user
// record. It belongs to the shard its hash key predicts.
type krec struct {
	shard *shard
	recs  []*Future // user records, in order; recs[i] has sub-sequence number i
	one   [1]*Future
	agg   *aggregation.Aggregator // the aggregate until it is encoded; nil for a plain record
	data  []byte                  // the encoded aggregate, or the plain record's data
	pk    string
	ehk   *string
	size  int // len(data) + len(pk): what the service counts

	state krecState
	isAgg bool     // an aggregate (of one record or more), not a plain record
	buf   *callBuf // the call buffer data is a window of; nil if data is k's own
	hist  *history // attempts of this Kinesis record

	notBefore time.Time // earliest next attempt (retry backoff)
	oldest    time.Time // put time of its oldest user record
	deadline  time.Time // oldest + RecordTTL

	// Outcome, written before its user records complete and read by them.
	resShard, resSeq string
	aggregated       bool
	atts             []Attempt // hist as a list, shared by its user records' Results
}

// newPlain returns a Kinesis record carrying user record f as itself.
func newPlain(s *shard, f *Future, ttl time.Duration) *krec {
	k := &krec{shard: s}
	k.one[0] = f
	k.recs = k.one[:]
	k.data, k.pk, k.size = f.data, f.pk, int(f.size)
	if k.data == nil {
		k.data = []byte{} // the SDK refuses a nil Data
	}
	if f.ehk != "" {
		k.ehk = &f.ehk
	}
	k.oldest = f.putTime()
	k.deadline = k.oldest.Add(ttl)
	return k
}

// newAggregate returns a Kinesis record for a sealed aggregate of recs, the
// earliest of them put at oldest (an offset like Future.put). The aggregate
// holds copies of recs' data; the callers have dropped the records' own
// references (see dropCopies), so that the data is held once.
func newAggregate(s *shard, agg *aggregation.Aggregator, recs []*Future, oldest int64, ttl time.Duration) *krec {
	k := &krec{shard: s, recs: recs, agg: agg, pk: aggregation.AggregatePartitionKey, isAgg: true}
	k.size = agg.Size() + len(aggregation.AggregatePartitionKey)
	k.oldest = recs[0].p.base.Add(time.Duration(oldest))
	k.deadline = k.oldest.Add(ttl)
	return k
}

// dropCopies drops the data references of recs, which an aggregator holds
// copies of, and returns the earliest put offset among them.
func dropCopies(recs []*Future) int64 {
	oldest := recs[0].put
	for _, f := range recs {
		f.data = nil
		oldest = min(oldest, f.put)
	}
	return oldest
}

// attempted adds attempt a to k's history; maybeStored tells that a may
// have stored k although it did not succeed.
func (k *krec) attempted(a Attempt, maybeStored bool) {
	k.ownHistory().add(a)
	if maybeStored {
		k.hist.maybeStored = true
	}
}

// ownHistory returns k's history, made when k has none yet.
func (k *krec) ownHistory() *history {
	if k.hist == nil {
		k.hist = &history{}
	}
	return k.hist
}

// dissolve ends k and returns its user records, each with its data (aliasing
// k's encoded bytes: shared, not copied) and k's attempts as its prior
// history, ready to be packed again. An aggregate not yet encoded is encoded
// first and its aggregator given back through free.
func (k *krec) dissolve(free func(*aggregation.Aggregator)) []*Future {
	k.state = krecDissolved
	recs := k.recs // may alias k.one, which is left as it is
	if k.agg != nil {
		k.data = k.agg.AppendEncoded(nil)
		free(k.agg)
		k.agg = nil
	}
	k.ownData()  // the user records will alias it: it must not be reused
	if k.isAgg { // its records' data is in it
		urs, err := aggregation.Deaggregate(k.data, k.pk, "")
		if err != nil || len(urs) != len(recs) {
			// The producer encoded k itself: this cannot fail unless
			// memory was corrupted, and going on would send wrong data.
			panic("producer: internal error: cannot decode an aggregate the producer encoded")
		}
		for i, f := range recs {
			f.data = urs[i].Data
		}
	}
	if k.hist.count() > 0 {
		// One frozen history shared by all the records of k.
		var shared *history
		for _, f := range recs {
			if f.prior == recs[0].prior {
				if shared == nil {
					shared = merged(f.prior, k.hist)
				}
				f.prior = shared
			} else {
				f.prior = merged(f.prior, k.hist)
			}
		}
	}
	k.recs, k.data, k.agg = nil, nil, nil
	return recs
}
