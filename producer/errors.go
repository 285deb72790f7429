package producer

import (
	"errors"
	"fmt"
	"strings"

	"github.com/kplgo/kpl/aggregation"
)

// ErrClosed is returned by Put and PutRecord after Close (or Shutdown) has
// begun, and is wrapped by the *RecordError of records that a Shutdown whose
// context ended could not deliver.
var ErrClosed = errors.New("producer: closed")

// ErrRecordTooLarge is returned by Put and PutRecord when the data plus the
// partition key exceed the largest record the stream accepts:
// aggregation.MaxRecordSize (1 MiB), or up to 10 MiB on a stream whose
// record size limit was raised (see Options.SkipStreamLimits).
var ErrRecordTooLarge = errors.New("producer: record too large")

// ErrBufferFull is returned by Put and PutRecord when Options.FailWhenFull is
// set and the buffer already holds Options.MaxBufferedRecords records or
// Options.MaxBufferedBytes bytes.
var ErrBufferFull = errors.New("producer: buffer full")

// ErrRecordExpired is wrapped by the *RecordError of a record whose
// Options.RecordTTL ended before it could be delivered.
var ErrRecordExpired = errors.New("producer: record expired")

// RecordError is the failure result of one user record, returned by
// Future.Wait. It carries every attempt made to send the record.
type RecordError struct {
	// Code is the error code of the last attempt, e.g.
	// "ProvisionedThroughputExceededException", "InvalidArgumentException",
	// "NetworkError", or "ProducerClosed".
	Code string
	// Message is the error message of the last attempt.
	Message string
	// Retryable reports whether the last error was one the producer retries;
	// a retryable error ends a record only through its TTL or a Shutdown.
	Retryable bool
	// Attempts lists the PutRecords attempts, oldest first: all of them up
	// to eight, else the first three and the last five. It may be shared
	// with other records of the same aggregate: do not modify it.
	Attempts []Attempt
	// AttemptCount is the number of attempts made, those Attempts leaves
	// out included.
	AttemptCount int
	// MaybeStored reports that the record may be in the stream although it
	// failed: some attempt ended without the service saying it was not
	// stored (a timeout, a network error, an HTTP 5xx, an invalid
	// response), or was in flight when a Shutdown gave up on it. Sending it
	// again may store it twice; with Options.RecordIDs a de-duplicating
	// consumer drops the second copy. When false, no attempt stored it.
	MaybeStored bool
	// PartitionKey, ExplicitHashKey, Data and ID are the record that
	// failed, as it was put (ID as the producer gave it, with
	// Options.RecordIDs), so that a caller can send it again, store it
	// aside or report it. Data must not be modified; it may share memory
	// with the data of other failed records of one aggregate.
	PartitionKey    string
	ExplicitHashKey string
	Data            []byte
	ID              aggregation.RecordID

	sentinel error // ErrRecordExpired, ErrClosed or nil
	cause    error // the request error, when the whole call failed
}

// Error describes the failure.
func (e *RecordError) Error() string {
	var b strings.Builder
	b.WriteString("producer: record failed")
	if e.sentinel != nil {
		b.Reset()
		b.WriteString(e.sentinel.Error())
	}
	fmt.Fprintf(&b, " after %d attempt(s)", max(e.AttemptCount, len(e.Attempts)))
	if e.Code != "" {
		b.WriteString(": ")
		b.WriteString(e.Code)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

// Unwrap returns ErrRecordExpired or ErrClosed where they apply, and the
// request error (e.g. a *smithy.OperationError) when the whole call failed,
// so errors.Is and errors.As see both.
func (e *RecordError) Unwrap() []error {
	var errs []error
	if e.sentinel != nil {
		errs = append(errs, e.sentinel)
	}
	if e.cause != nil {
		errs = append(errs, e.cause)
	}
	return errs
}
