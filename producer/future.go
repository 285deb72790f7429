package producer

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/kplgo/kpl/aggregation"
)

// Result is the outcome of one user record that was delivered.
type Result struct {
	// ShardID is the shard that stored the record.
	ShardID string
	// SequenceNumber is the sequence number of the Kinesis record that
	// carried the user record.
	SequenceNumber string
	// SubSequenceNumber is the user record's index in its aggregate (0 when
	// not aggregated), as the KCL reports it.
	SubSequenceNumber uint64
	// Aggregated reports whether the record travelled inside an aggregate.
	Aggregated bool
	// Attempts lists the PutRecords attempts, the successful one last: all
	// of them up to eight, else the first three and the last five
	// (AttemptCount has the total). It may be shared with other records of
	// the same aggregate: do not modify it.
	Attempts []Attempt
	// AttemptCount is the number of PutRecords attempts made for the
	// record, those Attempts leaves out included.
	AttemptCount int
	// Latency is the time from Put to the acknowledgement.
	Latency time.Duration
}

// Attempt is one PutRecords attempt for a record.
type Attempt struct {
	// Time is when the call started.
	Time time.Time
	// Duration is how long the call took.
	Duration time.Duration
	// ErrorCode is empty for success, else the entry's or the call's error
	// code.
	ErrorCode string
	// ErrorMessage is the error message, if any.
	ErrorMessage string
}

// Future is the pending result of one user record accepted by Put. Each
// accepted record gets exactly one result. A Future is safe for concurrent
// use; it costs one small allocation and no goroutine or channel unless Done
// is called before the result is in.
type Future struct {
	// The first cache line holds what completing a delivered record reads
	// and writes, so that resolving an aggregate of hundreds of records
	// touches one line of each (a Future takes 192 bytes, three whole lines:
	// TestFutureLayout).
	state atomic.Uint32 // futureDone | futureWaited
	sub   uint32
	put   int64  // put time, nanoseconds since p.base
	size  int32  // len(data) + len(pk)
	epoch uint32 // flush epoch
	// Outcome, written before state gets futureDone.
	k   *krec // the Kinesis record that delivered it
	lat time.Duration
	// done, when set, receives the result instead of waiters (PutAsync).
	done func(Result, error)
	// ch is the channel Done returns, made by the first call to Done before
	// the result is in; it is closed once, by complete or by Done (see
	// there).
	ch atomic.Pointer[chan struct{}]
	p  *Producer

	// The user record; immutable after Put. data is the record's data
	// while no aggregate holds a copy of it (until its aggregate is sealed,
	// for a plain record, and again while it is re-packed), so that the
	// producer holds the data once.
	pk   string
	ehk  string
	data []byte
	// prior holds the attempts made before the record was moved to
	// another Kinesis record (re-routing, expiry of neighbours), shared
	// with the records it moved with. Owned by whoever owns the record's
	// Kinesis record until completion; read-only after.
	prior *history
	hash  aggregation.HashKey
	id    aggregation.RecordID // zero: none
	err   error                // the outcome of a failed record
}

const (
	futureDone   = 1 << iota // the outcome is written
	futureWaited             // ch is set and its closing is complete's
)

// Done returns a channel that is closed when the result is available. It
// does not block.
//
// Exactly one of complete and the Done that publishes ch closes it: each
// sets its bit in state with one atomic Or, and whichever finds the other's
// bit already set closes (complete when it finds futureWaited, Done when it
// finds futureDone).
func (f *Future) Done() <-chan struct{} {
	if f.state.Load()&futureDone != 0 {
		if ch := f.ch.Load(); ch != nil {
			return *ch
		}
		return f.p.closedCh
	}
	if ch := f.ch.Load(); ch != nil {
		return *ch // the Done that made it sees to its closing
	}
	ch := make(chan struct{})
	if !f.ch.CompareAndSwap(nil, &ch) {
		return *f.ch.Load()
	}
	if f.state.Or(futureWaited)&futureDone != 0 {
		close(ch) // complete ran before futureWaited was set
	}
	return ch
}

// Wait blocks until the record's result is available or ctx ends. The error
// is a *RecordError when the record failed (errors.Is(err,
// ErrRecordExpired) after its TTL), or ctx.Err().
func (f *Future) Wait(ctx context.Context) (Result, error) {
	if f.state.Load()&futureDone == 0 {
		select {
		case <-f.Done():
		case <-ctx.Done():
			return Result{}, ctx.Err()
		}
	}
	return f.result()
}

// result builds the outcome; the future is complete.
func (f *Future) result() (Result, error) {
	if f.err != nil {
		var re *RecordError
		if errors.As(f.err, &re) {
			return Result{Attempts: re.Attempts, AttemptCount: re.AttemptCount, Latency: f.lat}, f.err
		}
		return Result{Latency: f.lat}, f.err
	}
	k := f.k
	r := Result{
		ShardID:        k.resShard,
		SequenceNumber: k.resSeq,
		Aggregated:     k.aggregated,
		Attempts:       k.atts,
		AttemptCount:   f.prior.count() + k.hist.count(),
		Latency:        f.lat,
	}
	if f.prior != nil { // moved between Kinesis records: its own list
		r.Attempts = attemptList(f.prior, k.hist)
	}
	if k.aggregated {
		r.SubSequenceNumber = uint64(f.sub)
	}
	return r, nil
}

// complete publishes the outcome (f.k or f.err must be set, and the data
// dropped: succeed and fail do both). It is called exactly once.
func (f *Future) complete(now int64) {
	f.lat = time.Duration(now - f.put)
	if f.done != nil {
		f.state.Or(futureDone)
		f.done(f.result())
		return
	}
	if f.state.Or(futureDone)&futureWaited != 0 {
		close(*f.ch.Load())
	}
}

// record returns the user record.
func (f *Future) record() aggregation.Record {
	return aggregation.Record{PartitionKey: f.pk, ExplicitHashKey: f.ehk, Data: f.data, ID: f.id}
}

// putTime returns the put time.
func (f *Future) putTime() time.Time { return f.p.base.Add(time.Duration(f.put)) }
