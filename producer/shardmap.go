package producer

import (
	"context"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kplgo/kpl/aggregation"
)

// shardMap is an immutable, sorted view of the open shards.
type shardMap struct {
	shards []*shard              // sorted by start
	starts []aggregation.HashKey // starts[i] is shards[i].start: find searches it
	byID   map[string]*shard

	// buckets narrows find's search: a hash key whose top bits are b is
	// held by one of shards[buckets[b]] to shards[buckets[b+1]]. With
	// several buckets per shard, as index makes them, that is one or two
	// shards of a stream split evenly. Empty until index.
	buckets []uint32
	shift   uint // 64 minus the bits of the bucket number
}

// newShardMap returns an empty map with room for n shards.
func newShardMap(n int) *shardMap {
	return &shardMap{shards: make([]*shard, 0, n), starts: make([]aggregation.HashKey, 0, n), byID: make(map[string]*shard, n)}
}

// add appends s, which starts after every shard already in the map.
func (m *shardMap) add(s *shard) {
	m.shards = append(m.shards, s)
	m.starts = append(m.starts, s.start)
	m.byID[s.id] = s
}

// maxBucketBits bounds the buckets of a shard map: 2^14 of them, 64 KiB.
const maxBucketBits = 14

// index builds the buckets, once every shard is added: four or more per
// shard (at least 4 in all, so that shift < 64), up to 2^maxBucketBits.
func (m *shardMap) index() {
	if len(m.shards) == 0 {
		return
	}
	bits := uint(0)
	for bits < maxBucketBits && 1<<bits < 4*len(m.shards) {
		bits++
	}
	m.shift = 64 - bits
	m.buckets = make([]uint32, 1<<bits+1)
	i := 0 // the last shard starting at or before bucket b's first key
	for b := range 1 << bits {
		first := aggregation.HashKey{Hi: uint64(b) << m.shift}
		for i+1 < len(m.starts) && m.starts[i+1].Cmp(first) <= 0 {
			i++
		}
		m.buckets[b] = uint32(i)
	}
	m.buckets[1<<bits] = uint32(len(m.shards) - 1)
}

// find returns the shard whose range holds h: the last shard starting at or
// before h. A hash key in a gap of the map goes to the shard before the gap;
// the service then routes it and the response shows the map is stale.
//
// It searches the dense starts within h's bucket, not the shards: at
// thousands of shards, reading each probed shard would cost a cache miss
// per step, and a search over all the starts a dozen steps.
func (m *shardMap) find(h aggregation.HashKey) *shard {
	lo, hi := 0, len(m.starts)
	if m.buckets != nil {
		b := h.Hi >> m.shift
		lo, hi = int(m.buckets[b]), int(m.buckets[b+1])+1
	}
	starts := m.starts
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if starts[mid].Cmp(h) <= 0 {
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
	infos, err := p.listShardsFiltered(ctx, types.ShardFilterTypeAtLatest)
	if err != nil {
		return nil, err
	}
	if len(infos) == 0 {
		return nil, fmt.Errorf("producer: stream %s has no open shards", p.stream)
	}
	return infos, nil
}

// listAllShards returns every shard of the stream the service lists, the
// closed ones (within the retention period) too, by id. A shard's hash key
// range never changes, so a closed shard's range still tells whether an
// aggregate stored on it is whole there.
func (p *Producer) listAllShards(ctx context.Context) (map[string]shardInfo, error) {
	infos, err := p.listShardsFiltered(ctx, types.ShardFilterTypeFromTrimHorizon)
	if err != nil {
		return nil, err
	}
	all := make(map[string]shardInfo, len(infos))
	for _, in := range infos {
		all[in.id] = in
	}
	return all, nil
}

// listShardsFiltered loads the shards ListShards returns with filter, all
// pages, sorted by starting hash key; with ShardFilterTypeAtLatest, only
// open shards are kept (a closed one is dropped even from a server that
// ignored the filter).
func (p *Producer) listShardsFiltered(ctx context.Context, filter types.ShardFilterType) ([]shardInfo, error) {
	in := &kinesis.ListShardsInput{
		StreamName:  p.streamName,
		StreamARN:   p.streamARN,
		ShardFilter: &types.ShardFilter{Type: filter},
	}
	var infos []shardInfo
	for {
		cctx, cancel := context.WithTimeout(ctx, p.opts.RequestTimeout)
		out, err := p.client.ListShards(cctx, in, p.callOpts...)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("producer: list shards of %s: %w", p.stream, err)
		}
		for _, sh := range out.Shards {
			if filter == types.ShardFilterTypeAtLatest && sh.SequenceNumberRange != nil && sh.SequenceNumberRange.EndingSequenceNumber != nil {
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
