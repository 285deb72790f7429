package spool

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kplgo/kpl/aggregation"
	"github.com/kplgo/kpl/producer"
)

// Putter is the part of *producer.Producer that a Forwarder uses. A Putter
// that also has the callback method of AsyncPutter gets its results through
// it; otherwise the Forwarder waits for the futures.
type Putter interface {
	PutRecord(ctx context.Context, r aggregation.Record) (*producer.Future, error)
}

// AsyncPutter is a producer that reports each record's result by calling
// done exactly once: for an immediate refusal with the bare error (not a
// *producer.RecordError) before PutAsync returns, else with the result or
// *producer.RecordError Future.Wait would give, from any goroutine.
type AsyncPutter interface {
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
	// the producer. The default is 10,000.
	MaxInFlight int
	// Waiters is the number of goroutines that wait for results, each for
	// its share of the records in put order: a record retried for long holds
	// back the acknowledgement (not the delivery) of the records behind it
	// in its share. The default is 16.
	Waiters int
	// RetryDelay is the pause after the producer refused a record for a
	// passing reason (its buffer full with FailWhenFull).
	// The default is 10ms.
	RetryDelay time.Duration
	// Logger receives log lines; nil, the default, is silent.
	Logger Logger
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
	sem  chan struct{} // one token per record in flight

	running                        atomic.Bool
	forwarded, delivered, returned atomic.Uint64
	deadLettered, refused          atomic.Uint64
	// Set by resolve on an immediate refusal, read by Run after each put.
	producerClosed, backoff atomic.Bool
}

// ForwarderStats is a snapshot of a Forwarder's counters.
type ForwarderStats struct {
	// Forwarded counts records handed to the producer (PutRecord or
	// PutAsync called), Refused ones included.
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
	o := ForwarderOptions{MaxInFlight: 50_000, Waiters: 16, RetryDelay: 10 * time.Millisecond}
	for _, fn := range optFns {
		fn(&o)
	}
	switch {
	case s == nil || p == nil:
		return nil, errors.New("spool: nil spool or producer")
	case o.MaxInFlight <= 0:
		return nil, fmt.Errorf("spool: MaxInFlight %d must be positive", o.MaxInFlight)
	case o.Waiters <= 0:
		return nil, fmt.Errorf("spool: Waiters %d must be positive", o.Waiters)
	case o.RetryDelay <= 0:
		return nil, fmt.Errorf("spool: RetryDelay %v must be positive", o.RetryDelay)
	}
	f := &Forwarder{s: s, p: p, opts: o, log: o.Logger, sem: make(chan struct{}, o.MaxInFlight)}
	if f.log == nil {
		f.log = nopLogger{}
	}
	return f, nil
}

// Run forwards records until ctx ends, then waits for the results of the
// records in flight and returns nil. Shut the producer down (Shutdown with a
// bound) after ctx ends to make that wait short: records it fails with
// ErrClosed stay in the spool. Run returns early with ErrClosed when the
// spool closes, ErrProducerClosed when the producer does, or the spool's
// error when it fails. Run may be called once.
func (f *Forwarder) Run(ctx context.Context) error {
	if !f.running.CompareAndSwap(false, true) {
		return errors.New("spool: Forwarder.Run called twice")
	}
	async, _ := f.p.(AsyncPutter)
	var w *futureWatcher
	if async == nil {
		w = newFutureWatcher(f.opts.Waiters, f.opts.MaxInFlight, f.resolve)
		defer w.stop()
	}
	defer func() { // wait for every result: each frees its slot
		for range cap(f.sem) {
			f.sem <- struct{}{}
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
		f.send(ctx, e, async, w)
		switch {
		case ctx.Err() != nil:
			return nil // stopping: a producer closed after ctx ended is expected
		case f.producerClosed.Load():
			return ErrProducerClosed
		case f.backoff.Swap(false):
			t := time.NewTimer(f.opts.RetryDelay)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil
			}
		}
	}
}

// send puts one record into the producer; its result reaches resolve. It is
// the only code that knows how results arrive: through the callback of an
// AsyncPutter, or through a Future that a waiter goroutine waits for.
func (f *Forwarder) send(ctx context.Context, e *Entry, async AsyncPutter, w *futureWatcher) {
	if async != nil {
		async.PutAsync(ctx, e.Record, func(_ producer.Result, err error) { f.resolve(e, err) })
		return
	}
	fut, err := f.p.PutRecord(ctx, e.Record)
	if err != nil {
		f.resolve(e, err)
		return
	}
	w.watch(fut, e)
}

// resolve settles one record by its result and frees its slot.
func (f *Forwarder) resolve(e *Entry, err error) {
	defer func() { <-f.sem }()
	if err == nil {
		f.s.Ack(e)
		f.delivered.Add(1)
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
		f.s.Return(e)
		f.returned.Add(1)
		return
	}
	if derr := f.s.DeadLetter(e, code, msg, attempts); derr != nil {
		f.log.Warnf("spool: dead letter: %v; the record stays in the spool", derr)
		f.s.Return(e)
		f.returned.Add(1)
		return
	}
	f.deadLettered.Add(1)
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

// Stats returns a snapshot of the counters. It is safe to call concurrently
// with Run.
func (f *Forwarder) Stats() ForwarderStats {
	return ForwarderStats{
		Forwarded:    f.forwarded.Load(),
		Delivered:    f.delivered.Load(),
		Returned:     f.returned.Load(),
		DeadLettered: f.deadLettered.Load(),
		Refused:      f.refused.Load(),
		InFlight:     len(f.sem),
	}
}

// futureWatcher turns the producer's *Future results into calls of done. It
// is the only code that knows results come as futures: a callback API in
// the producer would replace it with a direct call of done.
type futureWatcher struct {
	chans []chan watched
	next  int
	wg    sync.WaitGroup
}

type watched struct {
	fut *producer.Future
	e   *Entry
}

// newFutureWatcher starts n goroutines, each waiting for its futures in
// order; capacity is the most futures pending at once.
func newFutureWatcher(n, capacity int, done func(*Entry, error)) *futureWatcher {
	w := &futureWatcher{chans: make([]chan watched, n)}
	for i := range w.chans {
		ch := make(chan watched, capacity/n+1) // n of them hold capacity

		w.chans[i] = ch
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for it := range ch {
				_, err := it.fut.Wait(context.Background())
				done(it.e, err)
			}
		}()
	}
	return w
}

// watch arranges for done(e, result) once fut has its result. It does not
// block while fewer than capacity futures are pending: it skips the
// goroutines whose share is full (their oldest record is slow).
func (w *futureWatcher) watch(fut *producer.Future, e *Entry) {
	it := watched{fut, e}
	for range w.chans {
		ch := w.chans[w.next]
		w.next = (w.next + 1) % len(w.chans)
		select {
		case ch <- it:
			return
		default:
		}
	}
	w.chans[w.next] <- it // cannot happen within capacity
}

// stop waits for every pending result and stops the goroutines.
func (w *futureWatcher) stop() {
	for _, ch := range w.chans {
		close(ch)
	}
	w.wg.Wait()
}
