package spool

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kplgo/kpl/aggregation"
	"github.com/kplgo/kpl/internal/ctxtime"
	"github.com/kplgo/kpl/producer"
)

// Putter is the part of *producer.Producer that a Forwarder uses: PutAsync
// reports each record's result by calling done exactly once, for an
// immediate refusal with the bare error (not a *producer.RecordError) before
// PutAsync returns, else with the result or *producer.RecordError from any
// goroutine.
type Putter interface {
	PutAsync(ctx context.Context, r aggregation.Record, done func(producer.Result, error))
}

var _ Putter = (*producer.Producer)(nil)

// ErrProducerClosed is returned by Forwarder.Run when the producer refuses
// records because it is closed; the record it refused stays in the spool.
var ErrProducerClosed = errors.New("spool: producer closed")

// ForwarderOptions configure a Forwarder. NewForwarder starts from the
// defaults documented on each field.
type ForwarderOptions struct {
	// MaxInFlight bounds the records handed to the producer and not yet
	// resolved; they are the only records held in memory. Keep it at or
	// below the producer's MaxBufferedRecords, so that the producer takes
	// every record at once and a record's RecordTTL counts only time in
	// the producer. The default is 50,000.
	MaxInFlight int
	// RetryDelay is the pause after the producer refused a record for a
	// passing reason (its buffer full with FailWhenFull).
	// The default is 10ms.
	RetryDelay time.Duration
	// Logger receives log lines; nil, the default, is silent.
	Logger Logger
	// OnResolve, if set, is called once for every result, as the
	// forwarder resolves the record by it: how, the entry (its Record as
	// appended, with its id), the producer's Result (for Acknowledged) and
	// its error (nil for Acknowledged). It runs on the goroutine that
	// reports the result (a producer goroutine, or Run's for an immediate
	// refusal), on several at once, and must return quickly. e is valid
	// during the call; a Returned entry is handed out again once OnResolve
	// returns. Use it for accounting per record, such as the time from
	// append to acknowledgement. The default is nil.
	OnResolve func(e *Entry, how Resolution, res producer.Result, err error)
}

// Resolution is how a Forwarder resolved a record by its result.
type Resolution int

const (
	// Acknowledged: delivered, and removed from the spool (Spool.Ack).
	Acknowledged Resolution = iota
	// DeadLettered: failed for a reason retrying cannot fix, and written
	// to the dead-letter file (Spool.DeadLetter).
	DeadLettered
	// Returned: the producer gave up on it for a passing reason; it stays
	// in the spool and is sent again (Spool.Return).
	Returned
)

// String returns "acknowledged", "dead-lettered" or "returned".
func (r Resolution) String() string {
	switch r {
	case Acknowledged:
		return "acknowledged"
	case DeadLettered:
		return "dead-lettered"
	case Returned:
		return "returned"
	}
	return fmt.Sprintf("Resolution(%d)", int(r))
}

// Forwarder moves records from a Spool into a producer and resolves each one
// by its result: delivered records are acknowledged, records failed for a
// reason retrying cannot fix (validation, access, too large) go to the
// dead-letter file, and records the producer gave up on for a passing
// reason (ErrRecordExpired, ErrClosed) are returned to the spool and sent
// again. Records do not expire while they wait in the spool: the producer
// only sees a record once it is put, so only time inside the producer counts
// towards its RecordTTL.
type Forwarder struct {
	s    *Spool
	p    Putter
	opts ForwarderOptions
	log  Logger
	sem  chan struct{} // a token per record in flight, and one while Run waits in Next

	running                        atomic.Bool
	forwarded, delivered, returned atomic.Uint64
	deadLettered, refused          atomic.Uint64
	// Set by resolve on an immediate refusal, read by Run after each put.
	producerClosed, backoff atomic.Bool

	abandonOnce sync.Once
	abandoned   chan struct{} // closed by Abandon
}

// ForwarderStats is a snapshot of a Forwarder's counters.
type ForwarderStats struct {
	// Forwarded counts records handed to the producer (PutAsync called),
	// Refused ones included.
	Forwarded uint64
	// Delivered counts records acknowledged after success.
	Delivered uint64
	// Returned counts records given back to the spool to be sent again.
	Returned uint64
	// DeadLettered counts records written to the dead-letter file.
	DeadLettered uint64
	// Refused counts immediate refusals by the producer (the record was
	// returned, or dead-lettered when it can never be accepted).
	Refused uint64
	// InFlight is the number of records in the producer now.
	InFlight int
}

// NewForwarder returns a forwarder from s into p; call Run to start it.
func NewForwarder(s *Spool, p Putter, optFns ...func(*ForwarderOptions)) (*Forwarder, error) {
	o := ForwarderOptions{MaxInFlight: 50_000, RetryDelay: 10 * time.Millisecond}
	for _, fn := range optFns {
		fn(&o)
	}
	switch {
	case s == nil || p == nil:
		return nil, errors.New("spool: nil spool or producer")
	case o.MaxInFlight <= 0:
		return nil, fmt.Errorf("spool: MaxInFlight %d must be positive", o.MaxInFlight)
	case o.RetryDelay <= 0:
		return nil, fmt.Errorf("spool: RetryDelay %v must be positive", o.RetryDelay)
	}
	f := &Forwarder{s: s, p: p, opts: o, log: o.Logger, sem: make(chan struct{}, o.MaxInFlight), abandoned: make(chan struct{})}
	if f.log == nil {
		f.log = nopLogger{}
	}
	return f, nil
}

// Run forwards records until ctx ends, then waits for the results of the
// records in flight (and their OnResolve calls) and returns nil. Shut the
// producer down (Shutdown with a bound) after ctx ends to make that wait
// short: records it fails with ErrClosed stay in the spool. Abandon ends
// the wait of a producer that breaks that promise. Run returns early with
// ErrClosed when the spool closes, ErrProducerClosed when the producer
// does, or the spool's error when it fails. Run may be called once.
func (f *Forwarder) Run(ctx context.Context) error {
	if !f.running.CompareAndSwap(false, true) {
		return errors.New("spool: Forwarder.Run called twice")
	}
	defer func() { // wait for every result: each frees its slot
		for range cap(f.sem) {
			select {
			case f.sem <- struct{}{}:
			case <-f.abandoned:
				return // the tokens taken are freed by the results to come
			}
		}
		for range cap(f.sem) {
			<-f.sem
		}
	}()
	for {
		select {
		case f.sem <- struct{}{}:
		case <-ctx.Done():
			return nil
		case <-f.abandoned:
			return nil
		}
		e, err := f.s.Next(ctx)
		if err != nil {
			<-f.sem
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		f.forwarded.Add(1)
		f.p.PutAsync(ctx, e.Record, func(res producer.Result, err error) { f.resolve(e, res, err) })
		switch {
		case ctx.Err() != nil:
			return nil // stopping: a producer closed after ctx ended is expected
		case f.producerClosed.Load():
			return ErrProducerClosed
		case f.backoff.Swap(false):
			if ctxtime.Sleep(ctx, f.opts.RetryDelay) != nil {
				return nil
			}
		}
	}
}

// Abandon makes Run return at once, without waiting for the results of
// the records in flight: for a producer that does not resolve them after
// its Shutdown returned. Results that come later are still applied to the
// spool (once it is closed, they are lost, and their records are sent
// again after it is reopened). Abandon is safe to call at any time, more
// than once.
func (f *Forwarder) Abandon() {
	f.abandonOnce.Do(func() { close(f.abandoned) })
}

// resolve settles one record by its result, tells OnResolve, and frees its
// slot.
func (f *Forwarder) resolve(e *Entry, res producer.Result, err error) {
	defer func() { <-f.sem }()
	if err == nil {
		f.s.Ack(e)
		f.delivered.Add(1)
		f.notify(e, Acknowledged, res, err)
		return
	}
	retry, code, msg, attempts := classifyResult(err)
	if re := (*producer.RecordError)(nil); !errors.As(err, &re) {
		// An immediate refusal: the record never entered the producer.
		f.refused.Add(1)
		if errors.Is(err, producer.ErrClosed) {
			f.producerClosed.Store(true)
		} else if retry {
			f.backoff.Store(true)
		}
	}
	if retry {
		f.notify(e, Returned, res, err)
		f.s.Return(e)
		f.returned.Add(1)
		return
	}
	if derr := f.s.DeadLetter(e, code, msg, attempts); derr != nil {
		f.log.Warnf("spool: dead letter: %v; the record stays in the spool", derr)
		f.notify(e, Returned, res, err)
		f.s.Return(e)
		f.returned.Add(1)
		return
	}
	f.deadLettered.Add(1)
	f.notify(e, DeadLettered, res, err)
}

// notify calls OnResolve, if set.
func (f *Forwarder) notify(e *Entry, how Resolution, res producer.Result, err error) {
	if f.opts.OnResolve != nil {
		f.opts.OnResolve(e, how, res, err)
	}
}

// classifyResult tells whether a record's failure is worth another delivery,
// and otherwise its code, message and number of attempts. Passing failures:
// the record expired in the producer or the producer closed, a retryable
// record error, a full producer buffer, a cancelled put. Every other
// refusal by the producer (too large, an invalid key or id) cannot change
// by sending again.
func classifyResult(err error) (retry bool, code, msg string, attempts int) {
	var re *producer.RecordError
	switch {
	case errors.Is(err, producer.ErrRecordExpired), errors.Is(err, producer.ErrClosed),
		errors.Is(err, producer.ErrBufferFull),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return true, "", "", 0
	case errors.As(err, &re):
		return re.Retryable, re.Code, re.Message, len(re.Attempts)
	case errors.Is(err, producer.ErrRecordTooLarge):
		return false, "RecordTooLarge", err.Error(), 0
	case errors.Is(err, aggregation.ErrInvalidPartitionKey):
		return false, "InvalidPartitionKey", err.Error(), 0
	case errors.Is(err, aggregation.ErrInvalidExplicitHashKey):
		return false, "InvalidExplicitHashKey", err.Error(), 0
	}
	return false, "Refused", err.Error(), 0
}

// inFlight is the number of records put and not yet resolved (not the
// semaphore's length: Run holds a token while it waits for the next
// record). Each resolution counts in exactly one of delivered, returned and
// deadLettered; reading them before forwarded keeps the difference from
// going negative.
func (f *Forwarder) inFlight() int {
	resolved := f.delivered.Load() + f.returned.Load() + f.deadLettered.Load()
	return int(f.forwarded.Load() - resolved)
}

// Stats returns a snapshot of the counters. It is safe to call concurrently
// with Run.
func (f *Forwarder) Stats() ForwarderStats {
	return ForwarderStats{
		Forwarded:    f.forwarded.Load(),
		Delivered:    f.delivered.Load(),
		Returned:     f.returned.Load(),
		DeadLettered: f.deadLettered.Load(),
		Refused:      f.refused.Load(),
		InFlight:     f.inFlight(),
	}
}
