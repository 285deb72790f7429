package kinesistest

import (
	"context"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kplgo/kpl/aggregation"
	"github.com/kplgo/kpl/internal/ctxtime"
	"github.com/kplgo/kpl/producer"
)

// Per-entry error codes of the service, for Outcome.ErrorCode.
const (
	// CodeThrottled is the code of an entry over its shard's write limit.
	CodeThrottled = "ProvisionedThroughputExceededException"
	// CodeInternalFailure is the code of an entry the service failed to store.
	CodeInternalFailure = "InternalFailure"
)

// ClientOptions configures a Client. The zero value is one shard, any
// stream name, 1 MiB records.
type ClientOptions struct {
	// Stream is the stream name the client answers for; calls naming
	// another (by name or ARN) fail with ResourceNotFoundException. "" means
	// any name.
	Stream string
	// Shards is the number of shards, splitting the hash key space evenly
	// as CreateStream does. 0 means 1.
	Shards int
	// MaxRecordSizeInKiB is what DescribeStreamSummary reports. 0 means
	// 1024; negative makes DescribeStreamSummary fail with
	// AccessDeniedException, as for a caller without the permission.
	MaxRecordSizeInKiB int32
	// Latency delays every call; a call whose context ends meanwhile returns
	// the context's error and stores nothing. 0 means none; SetLatency
	// changes it.
	Latency time.Duration
}

// Entry is one PutRecords entry as the client's hook sees it.
type Entry struct {
	// Call numbers PutRecords calls from 1; Index is the entry's position
	// in its call.
	Call, Index int
	// PartitionKey, ExplicitHashKey and Data are the entry as sent. Data
	// must not be kept after the hook returns.
	PartitionKey    string
	ExplicitHashKey string
	Data            []byte
	// ShardID is the shard the entry's hash key routes to.
	ShardID string
}

// Outcome is what the hook decides for one entry. The zero value stores the
// entry on the shard it routes to.
type Outcome struct {
	// ErrorCode, when set, fails the entry with that code (CodeThrottled,
	// CodeInternalFailure) and ErrorMessage: it is not stored.
	ErrorCode    string
	ErrorMessage string
	// ShardID, when set, stores the entry on that shard instead of the one
	// it routes to, and reports that shard: a wrong-shard landing, as after
	// a reshard the producer has not seen yet.
	ShardID string
}

// StoredRecord is a record the client stored.
type StoredRecord struct {
	ShardID         string
	SequenceNumber  string
	PartitionKey    string
	ExplicitHashKey string
	Data            []byte
}

// Client is a scriptable in-memory fake of the Kinesis calls a producer
// makes: PutRecords, ListShards and DescribeStreamSummary. It implements
// producer.Client. A hook (SetEntryHook) decides each entry's outcome;
// FailCalls fails whole calls and SetLatency delays them. It copies what it
// stores. It is safe for concurrent use; the hook is called with no lock
// held, from the goroutine making the call.
type Client struct {
	opts   ClientOptions
	shards []types.Shard // in hash key order
	starts []aggregation.HashKey

	mu        sync.Mutex // guards the fields below
	latency   time.Duration
	hook      func(Entry) Outcome
	failCalls []error
	calls     int
	seq       map[string]int
	stored    []StoredRecord
}

var _ producer.Client = (*Client)(nil)

// NewClient returns a client with no hook: every entry is stored.
func NewClient(opts ClientOptions) *Client {
	if opts.Shards <= 0 {
		opts.Shards = 1
	}
	c := &Client{opts: opts, latency: opts.Latency, seq: map[string]int{}}
	space := new(big.Int).Lsh(big.NewInt(1), 128)
	step := new(big.Int).Div(space, big.NewInt(int64(opts.Shards)))
	for i := range opts.Shards {
		start := new(big.Int).Mul(step, big.NewInt(int64(i)))
		end := new(big.Int).Sub(new(big.Int).Add(start, step), big.NewInt(1))
		if i == opts.Shards-1 {
			end.Sub(space, big.NewInt(1))
		}
		c.shards = append(c.shards, types.Shard{
			ShardId:             aws.String(fmt.Sprintf("shardId-%012d", i)),
			HashKeyRange:        &types.HashKeyRange{StartingHashKey: aws.String(start.String()), EndingHashKey: aws.String(end.String())},
			SequenceNumberRange: &types.SequenceNumberRange{StartingSequenceNumber: aws.String(sequence(i, 0))},
		})
		hk, _ := aggregation.ParseHashKey(start.String())
		c.starts = append(c.starts, hk)
	}
	return c
}

// sequence formats shard i's n-th sequence number.
func sequence(i, n int) string { return fmt.Sprintf("49%05d%020d", i, n) }

// SetEntryHook sets the function that decides each PutRecords entry's
// outcome; nil stores every entry.
func (c *Client) SetEntryHook(hook func(Entry) Outcome) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hook = hook
}

// FailCalls makes the next PutRecords calls fail whole, one per error, in
// order; nothing of them is stored.
func (c *Client) FailCalls(errs ...error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failCalls = append(c.failCalls, errs...)
}

// SetLatency sets the delay of every later call.
func (c *Client) SetLatency(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.latency = d
}

// Calls returns the number of PutRecords calls made so far.
func (c *Client) Calls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

// Stored returns the stored records in the order they were stored.
func (c *Client) Stored() []StoredRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]StoredRecord(nil), c.stored...)
}

// Shards returns the stream's shards, as ListShards lists them.
func (c *Client) Shards() []types.Shard { return append([]types.Shard(nil), c.shards...) }

// wait applies the latency.
func (c *Client) wait(ctx context.Context) error {
	c.mu.Lock()
	d := c.latency
	c.mu.Unlock()
	return ctxtime.Sleep(ctx, d)
}

// checkStream returns the stream a call names, by name or ARN, and fails
// calls naming none or another stream.
func (c *Client) checkStream(name, arn *string) (string, error) {
	n := aws.ToString(name)
	if n == "" {
		if _, after, ok := strings.Cut(aws.ToString(arn), ":stream/"); ok {
			n = after
		}
	}
	if n == "" {
		return "", &types.InvalidArgumentException{Message: aws.String("Either StreamName or StreamARN must be provided.")}
	}
	if c.opts.Stream != "" && n != c.opts.Stream {
		return "", &types.ResourceNotFoundException{Message: aws.String("Stream " + n + " under account 000000000000 not found.")}
	}
	return n, nil
}

// route returns the index of the shard owning hash key k.
func (c *Client) route(k aggregation.HashKey) int {
	i := len(c.starts) - 1
	for i > 0 && k.Cmp(c.starts[i]) < 0 {
		i--
	}
	return i
}

// PutRecords stores the entries the hook lets through and fails the others,
// as the service does: whole-call errors from FailCalls and ctx, per-entry
// ErrorCode and FailedRecordCount from the hook.
func (c *Client) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	if err := c.wait(ctx); err != nil {
		return nil, err
	}
	if _, err := c.checkStream(in.StreamName, in.StreamARN); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.calls++
	call := c.calls
	if len(c.failCalls) > 0 {
		err := c.failCalls[0]
		c.failCalls = c.failCalls[1:]
		c.mu.Unlock()
		return nil, err
	}
	hook := c.hook
	c.mu.Unlock()

	// The service validates the whole call before it stores any entry.
	routes := make([]int, len(in.Records))
	for i, e := range in.Records {
		hk, err := aggregation.Record{PartitionKey: aws.ToString(e.PartitionKey), ExplicitHashKey: aws.ToString(e.ExplicitHashKey)}.HashKey()
		if err != nil {
			return nil, &types.InvalidArgumentException{Message: aws.String("Invalid ExplicitHashKey: " + err.Error())}
		}
		routes[i] = c.route(hk)
	}
	out := &kinesis.PutRecordsOutput{Records: make([]types.PutRecordsResultEntry, len(in.Records))}
	for i, e := range in.Records {
		r := aggregation.Record{PartitionKey: aws.ToString(e.PartitionKey), ExplicitHashKey: aws.ToString(e.ExplicitHashKey)}
		shard := routes[i]
		var o Outcome
		if hook != nil {
			o = hook(Entry{Call: call, Index: i, PartitionKey: r.PartitionKey, ExplicitHashKey: r.ExplicitHashKey,
				Data: e.Data, ShardID: aws.ToString(c.shards[shard].ShardId)})
		}
		if o.ErrorCode != "" {
			msg := o.ErrorMessage
			if msg == "" {
				msg = "Injected " + o.ErrorCode + "."
			}
			out.Records[i] = types.PutRecordsResultEntry{ErrorCode: aws.String(o.ErrorCode), ErrorMessage: aws.String(msg)}
			out.FailedRecordCount = aws.Int32(aws.ToInt32(out.FailedRecordCount) + 1)
			continue
		}
		id := aws.ToString(c.shards[shard].ShardId)
		if o.ShardID != "" {
			id = o.ShardID
		}
		c.mu.Lock()
		c.seq[id]++
		seq := sequence(shardIndex(id), c.seq[id])
		c.stored = append(c.stored, StoredRecord{ShardID: id, SequenceNumber: seq, PartitionKey: r.PartitionKey,
			ExplicitHashKey: r.ExplicitHashKey, Data: append([]byte(nil), e.Data...)})
		c.mu.Unlock()
		out.Records[i] = types.PutRecordsResultEntry{ShardId: aws.String(id), SequenceNumber: aws.String(seq)}
	}
	if out.FailedRecordCount == nil {
		out.FailedRecordCount = aws.Int32(0)
	}
	return out, nil
}

// shardIndex is the number in a shard id, 0 when it has none.
func shardIndex(id string) int {
	n, _ := strconv.Atoi(strings.TrimLeft(strings.TrimPrefix(id, "shardId-"), "0"))
	return n
}

// ListShards lists every shard in one page (all are open).
func (c *Client) ListShards(ctx context.Context, in *kinesis.ListShardsInput, _ ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	if err := c.wait(ctx); err != nil {
		return nil, err
	}
	if _, err := c.checkStream(in.StreamName, in.StreamARN); err != nil {
		return nil, err
	}
	return &kinesis.ListShardsOutput{Shards: c.Shards()}, nil
}

// DescribeStreamSummary reports the stream: ACTIVE, its shard count and
// ClientOptions.MaxRecordSizeInKiB (or AccessDeniedException when that is
// negative).
func (c *Client) DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, _ ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error) {
	if err := c.wait(ctx); err != nil {
		return nil, err
	}
	name, err := c.checkStream(in.StreamName, in.StreamARN)
	if err != nil {
		return nil, err
	}
	if c.opts.MaxRecordSizeInKiB < 0 {
		return nil, &types.AccessDeniedException{Message: aws.String("not authorized to perform kinesis:DescribeStreamSummary")}
	}
	kib := c.opts.MaxRecordSizeInKiB
	if kib == 0 {
		kib = 1024
	}
	return &kinesis.DescribeStreamSummaryOutput{StreamDescriptionSummary: &types.StreamDescriptionSummary{
		StreamName:           aws.String(name),
		StreamARN:            aws.String("arn:aws:kinesis:us-east-1:000000000000:stream/" + name),
		StreamStatus:         types.StreamStatusActive,
		OpenShardCount:       aws.Int32(int32(len(c.shards))),
		MaxRecordSizeInKiB:   aws.Int32(kib),
		RetentionPeriodHours: aws.Int32(24),
	}}, nil
}
