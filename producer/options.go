package producer

import (
	"fmt"
	"math"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/kplgo/kpl/aggregation"
)

// Service limits of one PutRecords call.
const (
	// MaxPutRecordsCount is the most entries one PutRecords call takes.
	MaxPutRecordsCount = 500
	// MaxPutRecordsSize is the most bytes (data plus partition keys) one
	// PutRecords call takes.
	MaxPutRecordsSize = 5 << 20
	// MaxLargePutRecordsSize is the most bytes one PutRecords call takes on
	// a stream whose records may be larger than 1 MiB (UpdateMaxRecordSize).
	MaxLargePutRecordsSize = 10 << 20
	// MaxLargeRecordSize is the largest record limit a stream can have
	// (10 MiB).
	MaxLargeRecordSize = 10 << 20
	// largeRecordBurst is the burst of a shard's byte bucket on such a
	// stream: the service averages 1 MiB/s per shard but lets it burst to
	// 10 MiB.
	largeRecordBurst = 10 << 20
)

// Per-shard write limits of the service, which Options.RateLimit scales.
const (
	// ShardBytesPerSecond is the write limit of one shard in bytes per second.
	ShardBytesPerSecond = 1 << 20
	// ShardRecordsPerSecond is the write limit of one shard in Kinesis records
	// per second.
	ShardRecordsPerSecond = 1000
)

// Options configure a Producer. New starts from the defaults documented on
// each field and applies the caller's option functions to them, as the AWS
// SDK does.
type Options struct {
	// AggregationEnabled packs many user records into one Kinesis record per
	// shard (the KPL format). The default is true.
	AggregationEnabled bool
	// AggregationMaxSize bounds an aggregated Kinesis record, its partition
	// key "a" included. Records that do not fit into an empty aggregate go out
	// alone. The default is 51200 (the KPL's); at most 1 MiB.
	AggregationMaxSize int
	// AggregationMaxCount bounds the user records of one aggregate. The
	// default is 4294967295 (the KPL's), or the largest int where int has
	// 32 bits.
	AggregationMaxCount int
	// CollectionMaxCount bounds the Kinesis records of one PutRecords call.
	// The default is 500, the service's limit.
	CollectionMaxCount int
	// CollectionMaxSize bounds the bytes (data plus partition keys) of one
	// PutRecords call. The default is 5 MiB, the service's limit; up to
	// 10 MiB for a stream that takes records above 1 MiB (a larger value
	// is held to 5 MiB on other streams). A record larger than the bound
	// goes in a call of its own.
	CollectionMaxSize int
	// Linger is the longest a record waits for more records to share its
	// aggregate and call (the KPL's RecordMaxBufferedTime). 0 sends at once.
	// A record may go up to a quarter of Linger earlier, to share a call
	// with the records of other shards that are due. The default is 100ms.
	Linger time.Duration
	// RecordTTL bounds the time from Put until a record is delivered; a
	// record that cannot be delivered in time fails with ErrRecordExpired and
	// every attempt. It must be longer than Linger. The default is 30s.
	RecordTTL time.Duration
	// MaxConnections bounds the PutRecords calls in flight. The default is 24.
	MaxConnections int
	// RequestTimeout bounds one PutRecords call. The default is 6s.
	RequestTimeout time.Duration
	// RateLimit is the per-shard send rate in percent of the shard limits
	// (1 MiB/s and 1,000 records/s). Throttling lowers a shard's rate below
	// it and success raises it back (see DESIGN.md). 0 or less turns rate
	// limiting off. The default is 150, the KPL's.
	RateLimit int
	// MaxBufferedRecords bounds the user records accepted and not yet
	// resolved (buffered, in flight, or waiting for a retry). The default is
	// 200,000.
	MaxBufferedRecords int
	// MaxBufferedBytes bounds the bytes (data plus partition keys) of those
	// records. A single record larger than the bound is accepted when nothing
	// else is buffered. The default is 64 MiB.
	MaxBufferedBytes int
	// FailWhenFull makes Put return ErrBufferFull instead of blocking when
	// the buffer is full. The default is false.
	FailWhenFull bool
	// Ordered keeps the order of records with the same partition key (more
	// precisely, the same shard) end to end, across retries: at most one
	// PutRecords call is in flight per shard, it carries at most one Kinesis
	// record of that shard, and retried records go ahead of new ones. It
	// costs throughput: raise AggregationMaxSize to carry more per call. The
	// default is false.
	Ordered bool
	// RecordIDs gives every user record an id (producer id, sequence
	// number) in the tags of its KPL record, the same on every copy of the
	// record (retries, re-packing), so that a consumer can drop the
	// duplicates that at-least-once delivery makes (package dedupe). Each
	// shard is a lane with its own producer id (128 random bits of the
	// producer plus the lane number) and consecutive sequence numbers, so a
	// run of records costs one pair of tags per aggregate. Every Kinesis
	// record is then an aggregate, a single record too. A record put with
	// its own Record.ID (a spool replaying what a killed process accepted)
	// keeps it, whether or not this is set. The default is false.
	RecordIDs bool
	// OnFailure, when set, is called with every record that fails, after
	// its Future or PutAsync callback has its result: a single place to
	// count, store aside or re-send failed records, whichever way they
	// were put. The *RecordError carries the record (key, data, id), its
	// attempts and its final code. It is called on one of the producer's
	// goroutines with no producer lock held and must not block for long.
	// The default is nil.
	OnFailure func(*RecordError)
	// SkipStreamLimits keeps New from reading the stream's record size
	// limit with DescribeStreamSummary (for callers not allowed to call
	// it). By default, when the client has DescribeStreamSummary, New
	// reads MaxRecordSizeInKiB: it sets the largest record Put accepts, the
	// PutRecords call limit (CollectionMaxSize, which may be up to 10 MiB,
	// above 1 MiB records, else at most 5 MiB) and
	// the burst of each shard's byte bucket (10 MiB for large records). A
	// call that fails (access denied, an endpoint without it) leaves the
	// default 1 MiB limits, with a log line.
	SkipStreamLimits bool
	// Pool, when set, makes the producer share the pool's senders, buffer
	// bound and encoder with the other producers of the pool (see Pool):
	// MaxBufferedRecords and MaxBufferedBytes are then the pool's, and
	// MaxConnections bounds this producer's share of the pool's senders;
	// HashCacheSize is the pool's too.
	// The default nil gives the producer a private pool.
	Pool *Pool
	// Logger receives log lines; nil (the default) is silent.
	Logger Logger

	// RetryBaseDelay is the base of the exponential backoff between attempts
	// of a failed record: the n-th retry waits a random time in
	// [0, min(RetryMaxDelay, RetryBaseDelay*2^(n-1))) (full jitter). The
	// default is 100ms.
	RetryBaseDelay time.Duration
	// RetryMaxDelay caps the backoff. The default is 5s.
	RetryMaxDelay time.Duration
	// RefreshBaseDelay is the backoff base between failed shard map
	// refreshes, and the least time between two refreshes. The default is
	// 100ms.
	RefreshBaseDelay time.Duration
	// RefreshMaxDelay caps the refresh backoff. The default is 10s.
	RefreshMaxDelay time.Duration
	// ShardMapRefreshInterval, when positive, also refreshes the shard map
	// periodically. The default 0 refreshes only when a response shows the
	// map is stale.
	ShardMapRefreshInterval time.Duration
	// HashCacheSize bounds the cache of partition key hashes. The default is
	// 4,096 keys: a table that stays in the CPU's cache, where a hot key
	// (a ticker symbol) costs a compare; with many distinct keys a larger
	// table only trades an MD5 (about 100-150 ns) for a cache miss.
	HashCacheSize int
	// KeepClientRetries leaves the SDK client's own retryer in place. By
	// default (false) every call the producer makes passes ClientOptions, so
	// the SDK makes one attempt per call and the producer's retrier decides.
	KeepClientRetries bool
}

// kplMaxCount is the KPL's AggregationMaxCount, 4294967295, held to the
// range of int (so that the package builds for 32-bit platforms).
const kplMaxCount = int(min(uint64(4294967295), uint64(math.MaxInt)))

// DefaultOptions returns the options New starts from, the defaults
// documented on each field, so that a caller can tell what its option
// functions lead to before calling New.
func DefaultOptions() Options { return defaultOptions() }

// defaultOptions returns the documented defaults.
func defaultOptions() Options {
	return Options{
		AggregationEnabled:  true,
		AggregationMaxSize:  51200,
		AggregationMaxCount: kplMaxCount,
		CollectionMaxCount:  MaxPutRecordsCount,
		CollectionMaxSize:   MaxPutRecordsSize,
		Linger:              100 * time.Millisecond,
		RecordTTL:           30 * time.Second,
		MaxConnections:      24,
		RequestTimeout:      6 * time.Second,
		RateLimit:           150,
		MaxBufferedRecords:  200_000,
		MaxBufferedBytes:    64 << 20,
		RetryBaseDelay:      100 * time.Millisecond,
		RetryMaxDelay:       5 * time.Second,
		RefreshBaseDelay:    100 * time.Millisecond,
		RefreshMaxDelay:     10 * time.Second,
		HashCacheSize:       1 << 12,
	}
}

// validate reports the first out-of-range option.
func (o *Options) validate() error {
	switch {
	case o.AggregationMaxSize <= 0 || o.AggregationMaxSize > aggregation.MaxRecordSize:
		return fmt.Errorf("producer: AggregationMaxSize %d outside [1, %d]", o.AggregationMaxSize, aggregation.MaxRecordSize)
	case o.AggregationMaxCount <= 0:
		return fmt.Errorf("producer: AggregationMaxCount %d must be positive", o.AggregationMaxCount)
	case o.CollectionMaxCount <= 0 || o.CollectionMaxCount > MaxPutRecordsCount:
		return fmt.Errorf("producer: CollectionMaxCount %d outside [1, %d]", o.CollectionMaxCount, MaxPutRecordsCount)
	case o.CollectionMaxSize <= 0 || o.CollectionMaxSize > MaxLargePutRecordsSize:
		return fmt.Errorf("producer: CollectionMaxSize %d outside [1, %d]", o.CollectionMaxSize, MaxLargePutRecordsSize)
	case o.Linger < 0:
		return fmt.Errorf("producer: Linger %v is negative", o.Linger)
	case o.RecordTTL <= 0:
		return fmt.Errorf("producer: RecordTTL %v must be positive", o.RecordTTL)
	case o.Linger >= o.RecordTTL:
		// A record lingering past its TTL would be sent after it: the TTL
		// bounds the whole time to delivery, the linger included.
		return fmt.Errorf("producer: Linger %v must be shorter than RecordTTL %v", o.Linger, o.RecordTTL)
	case o.MaxConnections <= 0:
		return fmt.Errorf("producer: MaxConnections %d must be positive", o.MaxConnections)
	case o.RequestTimeout <= 0:
		return fmt.Errorf("producer: RequestTimeout %v must be positive", o.RequestTimeout)
	case o.MaxBufferedRecords <= 0:
		return fmt.Errorf("producer: MaxBufferedRecords %d must be positive", o.MaxBufferedRecords)
	case o.MaxBufferedBytes <= 0:
		return fmt.Errorf("producer: MaxBufferedBytes %d must be positive", o.MaxBufferedBytes)
	case o.RetryBaseDelay <= 0 || o.RetryMaxDelay < o.RetryBaseDelay:
		return fmt.Errorf("producer: RetryBaseDelay %v and RetryMaxDelay %v must satisfy 0 < base <= max", o.RetryBaseDelay, o.RetryMaxDelay)
	case o.RefreshBaseDelay <= 0 || o.RefreshMaxDelay < o.RefreshBaseDelay:
		return fmt.Errorf("producer: RefreshBaseDelay %v and RefreshMaxDelay %v must satisfy 0 < base <= max", o.RefreshBaseDelay, o.RefreshMaxDelay)
	case o.HashCacheSize <= 0:
		return fmt.Errorf("producer: HashCacheSize %d must be positive", o.HashCacheSize)
	}
	return nil
}

// ClientOptions returns a Kinesis client option that turns off the SDK's own
// retries and its client-side retry rate limiter, so that they do not fight
// the producer's retrier (which retries only the failed entries of a call,
// with backoff and a TTL). Use it when building the client:
//
//	client := kinesis.NewFromConfig(cfg, producer.ClientOptions())
//
// The producer also passes it on each of its own calls unless
// Options.KeepClientRetries is set, so a client built without it is fine too.
func ClientOptions() func(*kinesis.Options) {
	return func(o *kinesis.Options) {
		o.Retryer = aws.NopRetryer{}
		o.RetryMaxAttempts = 0
	}
}
