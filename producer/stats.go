package producer

import (
	"maps"
	"sync"
	"sync/atomic"
)

// Stats is a snapshot of the producer's cumulative counters, taken by
// Producer.Stats. Counters only grow; BufferedRecords, BufferedBytes and
// Shards are current values.
type Stats struct {
	// UserRecordsPut counts records accepted by Put and PutRecord.
	UserRecordsPut uint64
	// UserRecordsSucceeded counts records delivered.
	UserRecordsSucceeded uint64
	// UserRecordsFailed counts records that failed (expired included).
	UserRecordsFailed uint64
	// UserRecordsExpired counts records that failed because their TTL ended.
	UserRecordsExpired uint64
	// UserRecordsRetried counts user records scheduled for another attempt.
	UserRecordsRetried uint64
	// KinesisRecordsSent counts Kinesis records (aggregates or plain records)
	// sent in PutRecords calls, retries included.
	KinesisRecordsSent uint64
	// KinesisRecordsSucceeded counts Kinesis records the service stored.
	KinesisRecordsSucceeded uint64
	// PutRecordsCalls counts PutRecords calls made.
	PutRecordsCalls uint64
	// PutRecordsErrors counts PutRecords calls that failed as a whole.
	PutRecordsErrors uint64
	// BytesSent counts data plus partition key bytes of Kinesis records sent,
	// retries included.
	BytesSent uint64
	// BytesSucceeded counts data plus partition key bytes of Kinesis records
	// stored.
	BytesSucceeded uint64
	// Retries counts Kinesis records scheduled for another attempt.
	Retries uint64
	// RetriesByCode splits Retries by error code.
	RetriesByCode map[string]uint64
	// FailuresByCode splits UserRecordsFailed by the error code of the
	// last attempt ("RecordExpired" for a record that expired before any
	// attempt, "ProducerClosed" for a Shutdown that gave up).
	FailuresByCode map[string]uint64
	// Throttles counts Kinesis records refused with
	// ProvisionedThroughputExceededException (or a throttled call).
	Throttles uint64
	// WrongShard counts Kinesis records stored on another shard than the
	// shard map predicted.
	WrongShard uint64
	// ShardMapRefreshes counts successful shard map loads (the first
	// included).
	ShardMapRefreshes uint64
	// ShardMapRefreshErrors counts failed shard map loads.
	ShardMapRefreshErrors uint64
	// Shards is the number of open shards in the current map.
	Shards int
	// BufferedRecords is the number of records accepted and not yet
	// resolved. A record's room is given back just before its result is
	// delivered, so a PutAsync callback no longer sees its own record here.
	BufferedRecords int64
	// BufferedBytes is their data plus partition key bytes.
	BufferedBytes int64
	// CallsAllowed is how many PutRecords calls may be in flight now:
	// MaxConnections, lowered while calls time out or find the service
	// unavailable, raised again by every call that returns.
	CallsAllowed int
	// CallBytesAllowed is the largest PutRecords call allowed now, in bytes:
	// CollectionMaxSize, lowered and raised with CallsAllowed.
	CallBytesAllowed int
	// PutLatency is the histogram of the time from Put to each record's
	// result, success or failure.
	PutLatency Histogram
	// CallDuration is the histogram of PutRecords call durations.
	CallDuration Histogram
}

// UserRecordsPerKinesisRecord returns the average number of user records per
// stored Kinesis record, the aggregation factor; 0 before any success.
func (s Stats) UserRecordsPerKinesisRecord() float64 {
	if s.KinesisRecordsSucceeded == 0 {
		return 0
	}
	return float64(s.UserRecordsSucceeded) / float64(s.KinesisRecordsSucceeded)
}

// KinesisRecordsPerCall returns the average number of Kinesis records per
// PutRecords call; 0 before any call.
func (s Stats) KinesisRecordsPerCall() float64 {
	if s.PutRecordsCalls == 0 {
		return 0
	}
	return float64(s.KinesisRecordsSent) / float64(s.PutRecordsCalls)
}

// counters are the producer's live counters. The hot ones are atomics; the
// per-code map has its own lock.
type counters struct {
	succeeded, failed, expired, userRetried      atomic.Uint64
	krecsSent, krecsSucceeded, calls, callErrors atomic.Uint64
	bytesSent, bytesSucceeded, retries           atomic.Uint64
	throttles, wrongShard, refreshes, refreshErr atomic.Uint64

	putLatency, callDuration latencyHistogram

	mu       sync.Mutex        // guards byCode and failures
	byCode   map[string]uint64 // retries by error code
	failures map[string]uint64 // failed user records by error code
}

// outcome counts n user records that failed with code.
func (c *counters) outcome(code string, n int) {
	c.mu.Lock()
	if c.failures == nil {
		c.failures = make(map[string]uint64)
	}
	c.failures[code] += uint64(n)
	c.mu.Unlock()
}

func (c *counters) failureCodes() map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := maps.Clone(c.failures)
	if m == nil {
		m = map[string]uint64{}
	}
	return m
}

func (c *counters) retry(code string, krecs, users uint64) {
	c.retries.Add(krecs)
	c.userRetried.Add(users)
	c.mu.Lock()
	if c.byCode == nil {
		c.byCode = make(map[string]uint64)
	}
	c.byCode[code] += krecs
	c.mu.Unlock()
}

func (c *counters) codes() map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := maps.Clone(c.byCode)
	if m == nil {
		m = map[string]uint64{}
	}
	return m
}
