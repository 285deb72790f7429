package producer

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kplgo/kpl/aggregation"
)

// shard is one open shard: its hash key range, its buffers and its rate
// limiter.
type shard struct {
	id         string
	start, end aggregation.HashKey

	mu sync.Mutex // guards every field below
	// retired: the shard left the map; its content moved to other shards.
	retired bool
	// stale: a response showed the map is out of date for this shard;
	// nothing is sent from it until the next refresh.
	stale bool
	// afterRetired: created by a refresh that retired shards (Ordered mode
	// waits for their in-flight calls before sending from this shard).
	afterRetired bool
	agg          *aggregation.Aggregator // the open aggregate
	aggRecs      []*Future               // its user records, in order
	front        []*krec                 // retries and re-routed records, oldest first
	ready        []*krec                 // sealed Kinesis records, oldest first
	oldest       time.Time               // put time of the oldest record in ready/agg; zero if none
	inflight     int                     // Kinesis records of this shard in flight
	lim          limiter
	putCount     uint64 // user records added to this shard
}

// contains reports whether h is in the shard's hash key range.
func (s *shard) contains(h aggregation.HashKey) bool {
	return s.start.Cmp(h) <= 0 && h.Cmp(s.end) <= 0
}

// shardMap is an immutable, sorted view of the open shards.
type shardMap struct {
	shards []*shard // sorted by start
	byID   map[string]*shard
}

// find returns the shard whose range holds h: the last shard starting at or
// before h. A hash key in a gap of the map goes to the shard before the gap;
// the service then routes it and the response shows the map is stale.
func (m *shardMap) find(h aggregation.HashKey) *shard {
	lo, hi := 0, len(m.shards)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if m.shards[mid].start.Cmp(h) <= 0 {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == 0 {
		return m.shards[0]
	}
	return m.shards[lo-1]
}

// shardInfo is one open shard as ListShards reports it.
type shardInfo struct {
	id         string
	start, end aggregation.HashKey
}

// listShards loads the open shards of the stream, all pages, sorted by
// starting hash key.
func (p *Producer) listShards(ctx context.Context) ([]shardInfo, error) {
	in := &kinesis.ListShardsInput{
		StreamName:  aws.String(p.streamName),
		ShardFilter: &types.ShardFilter{Type: types.ShardFilterTypeAtLatest},
	}
	var infos []shardInfo
	for {
		cctx, cancel := context.WithTimeout(ctx, p.opts.RequestTimeout)
		out, err := p.client.ListShards(cctx, in, p.callOpts...)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("producer: list shards of %s: %w", p.streamName, err)
		}
		for _, sh := range out.Shards {
			if sh.SequenceNumberRange != nil && sh.SequenceNumberRange.EndingSequenceNumber != nil {
				continue // closed: a server that ignored the filter
			}
			if sh.HashKeyRange == nil {
				return nil, fmt.Errorf("producer: shard %s has no hash key range", aws.ToString(sh.ShardId))
			}
			start, err := aggregation.ParseHashKey(aws.ToString(sh.HashKeyRange.StartingHashKey))
			if err != nil {
				return nil, fmt.Errorf("producer: shard %s: starting hash key: %w", aws.ToString(sh.ShardId), err)
			}
			end, err := aggregation.ParseHashKey(aws.ToString(sh.HashKeyRange.EndingHashKey))
			if err != nil {
				return nil, fmt.Errorf("producer: shard %s: ending hash key: %w", aws.ToString(sh.ShardId), err)
			}
			infos = append(infos, shardInfo{id: aws.ToString(sh.ShardId), start: start, end: end})
		}
		if out.NextToken == nil || *out.NextToken == "" {
			break
		}
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
	if len(infos) == 0 {
		return nil, fmt.Errorf("producer: stream %s has no open shards", p.streamName)
	}
	slices.SortFunc(infos, func(a, b shardInfo) int { return a.start.Cmp(b.start) })
	return infos, nil
}

// sameShards reports whether the map holds exactly these shards.
func sameShards(m *shardMap, infos []shardInfo) bool {
	if m == nil || len(m.shards) != len(infos) {
		return false
	}
	for i, in := range infos {
		s := m.shards[i]
		if s.id != in.id || s.start != in.start || s.end != in.end {
			return false
		}
	}
	return true
}

// hashCache maps partition keys to their hash keys. Lookups do not lock; when
// it holds more than its bound it is replaced by an empty one.
type hashCache struct {
	m sync.Map // string -> aggregation.HashKey
	n atomic.Int64
}

// hashOf returns the hash key of a partition key, validating keys it has not
// seen (a cached key is known to be valid).
func (p *Producer) hashOf(pk string) (aggregation.HashKey, error) {
	c := p.hashes.Load()
	if v, ok := c.m.Load(pk); ok {
		return v.(aggregation.HashKey), nil
	}
	if err := aggregation.ValidatePartitionKey(pk); err != nil {
		return aggregation.HashKey{}, err
	}
	h := aggregation.PartitionKeyHash(pk)
	if c.n.Add(1) > int64(p.opts.HashCacheSize) {
		p.hashes.CompareAndSwap(c, &hashCache{})
		return h, nil
	}
	c.m.Store(pk, h)
	return h, nil
}
