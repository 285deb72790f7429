// Package kinesisread reads a whole stream back, every shard from its trim
// horizon, for verification: the read-back verifier and the integration
// tests use it to check what the producer wrote.
package kinesisread

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kplgo/kpl/aggregation"
	"github.com/kplgo/kpl/internal/ctxtime"
)

// API is the part of the Kinesis client that reading needs; *kinesis.Client
// satisfies it.
type API interface {
	ListShards(context.Context, *kinesis.ListShardsInput, ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	GetShardIterator(context.Context, *kinesis.GetShardIteratorInput, ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(context.Context, *kinesis.GetRecordsInput, ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
}

var _ API = (*kinesis.Client)(nil)

// Shard is one shard's records, in the order the shard holds them.
type Shard struct {
	Shard   types.Shard
	Records []types.Record
}

// ListAllShards lists every shard of the stream, open and closed, sorted by
// shard id.
func ListAllShards(ctx context.Context, client API, stream string) ([]types.Shard, error) {
	var shards []types.Shard
	in := &kinesis.ListShardsInput{StreamName: aws.String(stream)}
	for {
		out, err := client.ListShards(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list shards of %s: %w", stream, err)
		}
		shards = append(shards, out.Shards...)
		if out.NextToken == nil {
			break
		}
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
	sort.Slice(shards, func(i, j int) bool { return aws.ToString(shards[i].ShardId) < aws.ToString(shards[j].ShardId) })
	return shards, nil
}

// HashKeyRange parses the shard's hash key range; ok is false when the shard
// has none or it does not parse.
func HashKeyRange(sh types.Shard) (start, end aggregation.HashKey, ok bool) {
	if sh.HashKeyRange == nil {
		return start, end, false
	}
	start, errStart := aggregation.ParseHashKey(aws.ToString(sh.HashKeyRange.StartingHashKey))
	end, errEnd := aggregation.ParseHashKey(aws.ToString(sh.HashKeyRange.EndingHashKey))
	return start, end, errStart == nil && errEnd == nil
}

// ReadAll reads every shard of the stream from its trim horizon until it has
// caught up (an empty read at the tip, or the end of a closed shard). Shards
// come parents first (see parentsFirst), so that a key's records, read in
// the order of the result, are in the order the stream holds them across
// splits and merges.
func ReadAll(ctx context.Context, client API, stream string) ([]Shard, error) {
	shards, err := ListAllShards(ctx, client, stream)
	if err != nil {
		return nil, err
	}
	shards = parentsFirst(shards)
	out := make([]Shard, 0, len(shards))
	for _, sh := range shards {
		recs, err := ReadShard(ctx, client, stream, aws.ToString(sh.ShardId))
		if err != nil {
			return nil, err
		}
		out = append(out, Shard{Shard: sh, Records: recs})
	}
	return out, nil
}

// parentsFirst orders shards, sorted by shard id as ListAllShards returns
// them, so that each comes after its parent and adjacent parent when those
// are listed, and otherwise by shard id.
func parentsFirst(sorted []types.Shard) []types.Shard {
	listed := make(map[string]bool, len(sorted))
	for _, sh := range sorted {
		listed[aws.ToString(sh.ShardId)] = true
	}
	done := make(map[string]bool, len(sorted))
	ready := func(id *string) bool { return id == nil || !listed[*id] || done[*id] }
	out := make([]types.Shard, 0, len(sorted))
	for len(out) < len(sorted) {
		progress := false
		for _, sh := range sorted {
			id := aws.ToString(sh.ShardId)
			if done[id] || !ready(sh.ParentShardId) || !ready(sh.AdjacentParentShardId) {
				continue
			}
			done[id] = true
			out = append(out, sh)
			progress = true
		}
		if !progress { // a cycle, which no stream has: keep the rest by id
			for _, sh := range sorted {
				if !done[aws.ToString(sh.ShardId)] {
					done[aws.ToString(sh.ShardId)] = true
					out = append(out, sh)
				}
			}
		}
	}
	return out
}

// ReadShard reads one shard from its trim horizon until it has caught up:
// an empty page at the tip, or a page at the tip whose last record arrived
// after the read began, so that a shard still being written to ends too
// (what arrives after the read began may be missing).
func ReadShard(ctx context.Context, client API, stream, shardID string) ([]types.Record, error) {
	began := time.Now()
	it, err := client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
		StreamName:        aws.String(stream),
		ShardId:           aws.String(shardID),
		ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
	})
	if err != nil {
		return nil, fmt.Errorf("shard iterator for %s: %w", shardID, err)
	}
	var records []types.Record
	iter := it.ShardIterator
	for iter != nil {
		out, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(10000)})
		if err != nil {
			var throttled *types.ProvisionedThroughputExceededException
			if errors.As(err, &throttled) {
				if err := ctxtime.Sleep(ctx, 200*time.Millisecond); err != nil {
					return nil, err
				}
				continue
			}
			return nil, fmt.Errorf("get records from %s: %w", shardID, err)
		}
		records = append(records, out.Records...)
		if atTip := out.MillisBehindLatest == nil || *out.MillisBehindLatest == 0; atTip {
			if len(out.Records) == 0 {
				break
			}
			if at := out.Records[len(out.Records)-1].ApproximateArrivalTimestamp; at != nil && !at.Before(began) {
				break
			}
		}
		iter = out.NextShardIterator
	}
	return records, nil
}
