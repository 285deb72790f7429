package producer

import (
	"context"
	"sync"
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
	// Attempts lists every PutRecords attempt, the successful one last. It
	// may be shared with other records of the same aggregate: do not modify
	// it.
	Attempts []Attempt
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
// use.
type Future struct {
	p *Producer

	// The user record; immutable after Put. data is dropped on completion.
	pk      string
	ehk     string
	data    []byte
	hash    aggregation.HashKey
	putTime time.Time
	size    int32 // len(data) + len(pk)
	bucket  uint8 // flush epoch bucket
	// prior holds attempts made before the record was moved to another
	// Kinesis record (re-routing, expiry of neighbours). Owned by whoever
	// owns the record's Kinesis record.
	prior []Attempt

	done atomic.Bool
	mu   sync.Mutex    // guards ch
	ch   chan struct{} // made on the first Done call before completion
	res  Result
	err  error
}

// Done returns a channel that is closed when the result is available. It
// does not block.
func (f *Future) Done() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ch == nil {
		if f.done.Load() {
			return f.p.closedCh
		}
		f.ch = make(chan struct{})
	}
	return f.ch
}

// Wait blocks until the record's result is available or ctx ends. The error
// is a *RecordError when the record failed (errors.Is(err,
// ErrRecordExpired) after its TTL), or ctx.Err().
func (f *Future) Wait(ctx context.Context) (Result, error) {
	if f.done.Load() {
		return f.res, f.err
	}
	select {
	case <-f.Done():
		return f.res, f.err
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
}

// complete publishes the result. It is called exactly once.
func (f *Future) complete(res Result, err error) {
	f.res, f.err = res, err
	f.data = nil
	f.prior = nil
	f.mu.Lock()
	f.done.Store(true)
	if f.ch != nil {
		close(f.ch)
	}
	f.mu.Unlock()
}

// record returns the user record.
func (f *Future) record() aggregation.Record {
	return aggregation.Record{PartitionKey: f.pk, ExplicitHashKey: f.ehk, Data: f.data}
}
