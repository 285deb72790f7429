package loadgen

import (
	"context"
	"fmt"
	"math/big"
	"sort"
	"strconv"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kplgo/kpl/aggregation"
)

// CountingClient is an in-process stand-in for Kinesis that only counts: it
// lists a fixed set of shards splitting the hash key space evenly, and
// answers every PutRecords entry (and PutRecord call) with success on the
// shard that owns its hash key, with an increasing sequence number. It measures a producer's own
// overhead. It is safe for concurrent use.
type CountingClient struct {
	shards []types.Shard
	starts []aggregation.HashKey // StartingHashKey of each shard, ascending
	ids    []string

	calls, records, bytes, seq atomic.Int64
}

// NewCountingClient returns a client whose stream has n shards (at least 1).
func NewCountingClient(n int) *CountingClient {
	if n < 1 {
		n = 1
	}
	c := &CountingClient{}
	space := new(big.Int).Lsh(big.NewInt(1), 128)
	for i := 0; i < n; i++ {
		lo := new(big.Int).Div(new(big.Int).Mul(space, big.NewInt(int64(i))), big.NewInt(int64(n)))
		hi := new(big.Int).Div(new(big.Int).Mul(space, big.NewInt(int64(i+1))), big.NewInt(int64(n)))
		hi.Sub(hi, big.NewInt(1))
		id := fmt.Sprintf("shardId-%012d", i)
		start, err := aggregation.ParseHashKey(lo.String())
		if err != nil {
			panic(err) // cannot happen: lo is in range by construction
		}
		c.shards = append(c.shards, types.Shard{
			ShardId: aws.String(id),
			HashKeyRange: &types.HashKeyRange{
				StartingHashKey: aws.String(lo.String()),
				EndingHashKey:   aws.String(hi.String()),
			},
			SequenceNumberRange: &types.SequenceNumberRange{StartingSequenceNumber: aws.String("1")},
		})
		c.starts = append(c.starts, start)
		c.ids = append(c.ids, id)
	}
	return c
}

// ListShards returns every shard in one page.
func (c *CountingClient) ListShards(context.Context, *kinesis.ListShardsInput, ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	return &kinesis.ListShardsOutput{Shards: append([]types.Shard(nil), c.shards...)}, nil
}

// PutRecords acknowledges every entry.
func (c *CountingClient) PutRecords(_ context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	c.calls.Add(1)
	out := make([]types.PutRecordsResultEntry, len(in.Records))
	var n int64
	for i, e := range in.Records {
		pk := aws.ToString(e.PartitionKey)
		n += int64(len(e.Data) + len(pk))
		shard, err := c.owner(pk, e.ExplicitHashKey)
		if err != nil {
			return nil, err
		}
		out[i] = types.PutRecordsResultEntry{ShardId: shard, SequenceNumber: c.nextSeq()}
	}
	c.records.Add(int64(len(in.Records)))
	c.bytes.Add(n)
	return &kinesis.PutRecordsOutput{Records: out, FailedRecordCount: aws.Int32(0)}, nil
}

// PutRecord acknowledges the record, as PutRecords does an entry.
func (c *CountingClient) PutRecord(_ context.Context, in *kinesis.PutRecordInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordOutput, error) {
	pk := aws.ToString(in.PartitionKey)
	shard, err := c.owner(pk, in.ExplicitHashKey)
	if err != nil {
		return nil, err
	}
	c.calls.Add(1)
	c.records.Add(1)
	c.bytes.Add(int64(len(in.Data) + len(pk)))
	return &kinesis.PutRecordOutput{ShardId: shard, SequenceNumber: c.nextSeq()}, nil
}

// owner returns the id of the shard that owns a record of partition key pk
// and explicit hash key ehk (nil: none), as the service routes it; an
// invalid explicit hash key is refused as the service refuses it.
func (c *CountingClient) owner(pk string, ehk *string) (*string, error) {
	var h aggregation.HashKey
	if ehk != nil {
		var err error
		if h, err = aggregation.ParseHashKey(*ehk); err != nil {
			return nil, &types.InvalidArgumentException{Message: aws.String(err.Error())}
		}
	} else {
		h = aggregation.PartitionKeyHash(pk)
	}
	return &c.ids[c.shardOf(h)], nil
}

// nextSeq returns the next sequence number.
func (c *CountingClient) nextSeq() *string { return aws.String(strconv.FormatInt(c.seq.Add(1), 10)) }

func (c *CountingClient) shardOf(h aggregation.HashKey) int {
	i := sort.Search(len(c.starts), func(i int) bool { return c.starts[i].Cmp(h) > 0 })
	return i - 1
}

// Counters returns the calls, records and bytes received so far.
func (c *CountingClient) Counters() SinkCounters {
	return SinkCounters{Calls: c.calls.Load(), KinesisRecords: c.records.Load(), Bytes: c.bytes.Load()}
}
