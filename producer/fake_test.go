package producer

import (
	"context"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kplgo/kpl/aggregation"
)

// fakeShard is one shard of the fake stream.
type fakeShard struct {
	id         string
	start, end aggregation.HashKey
	records    []types.PutRecordsRequestEntry
}

// fakeClient is a scripted, in-memory Kinesis stream. By default every entry
// succeeds and is stored on the shard owning its hash key; script overrides
// a call's outcome.
type fakeClient struct {
	mu        sync.Mutex
	shards    []*fakeShard // open shards, sorted
	closed    []*fakeShard // shards closed by split
	pageSize  int          // ListShards page size; 0 = all
	calls     int
	listCalls int
	// script, if set, is asked first for each PutRecords call (n counts
	// calls from 1). It returns per-entry error codes ("" = store normally),
	// or a whole-call error.
	// script runs without the client's lock held.
	script func(ctx context.Context, n int, in *kinesis.PutRecordsInput) (codes []string, err error)
	// listErr, if set, fails ListShards.
	listErr func(n int) error
	// route, if set, overrides the shard an entry is stored on.
	route func(h aggregation.HashKey) *fakeShard
	seq   int
}

var _ Client = (*fakeClient)(nil)

// maxHash is 2^128-1.
var maxHash = aggregation.HashKey{Hi: ^uint64(0), Lo: ^uint64(0)}

// newFakeClient makes a stream of n shards splitting the hash space evenly.
func newFakeClient(n int) *fakeClient {
	c := &fakeClient{}
	total := new(big.Int).Lsh(big.NewInt(1), 128)
	step := new(big.Int).Div(total, big.NewInt(int64(n)))
	for i := range n {
		lo := new(big.Int).Mul(step, big.NewInt(int64(i)))
		hi := new(big.Int).Sub(new(big.Int).Mul(step, big.NewInt(int64(i+1))), big.NewInt(1))
		if i == n-1 {
			hi = new(big.Int).Sub(total, big.NewInt(1))
		}
		c.shards = append(c.shards, &fakeShard{
			id:    fmt.Sprintf("shardId-%012d", i),
			start: mustHash(lo.String()),
			end:   mustHash(hi.String()),
		})
	}
	return c
}

func mustHash(s string) aggregation.HashKey {
	h, err := aggregation.ParseHashKey(s)
	if err != nil {
		panic(err)
	}
	return h
}

// split replaces the shard at index i by two children split at mid.
func (c *fakeClient) split(i int, mid aggregation.HashKey, nextID int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.shards[i]
	midMinus := mustHash(new(big.Int).Sub(bigOf(mid), big.NewInt(1)).String())
	a := &fakeShard{id: fmt.Sprintf("shardId-%012d", nextID), start: p.start, end: midMinus}
	b := &fakeShard{id: fmt.Sprintf("shardId-%012d", nextID+1), start: mid, end: p.end}
	c.closed = append(c.closed, p)
	c.shards = append(c.shards[:i:i], append([]*fakeShard{a, b}, c.shards[i+1:]...)...)
}

func bigOf(h aggregation.HashKey) *big.Int {
	b, _ := new(big.Int).SetString(h.String(), 10)
	return b
}

func (c *fakeClient) ListShards(ctx context.Context, in *kinesis.ListShardsInput, _ ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.listCalls++
	if c.listErr != nil {
		if err := c.listErr(c.listCalls); err != nil {
			return nil, err
		}
	}
	start := 0
	if in.NextToken != nil {
		start, _ = strconv.Atoi(*in.NextToken)
	} else if in.StreamName == nil {
		return nil, fmt.Errorf("no stream name")
	}
	out := &kinesis.ListShardsOutput{}
	if in.NextToken == nil && (in.ShardFilter == nil || in.ShardFilter.Type != types.ShardFilterTypeAtLatest) {
		// Every shard, the closed ones too, as the service lists them
		// without the AT_LATEST filter (in one page).
		for _, s := range append(c.shards[:len(c.shards):len(c.shards)], c.closed...) {
			out.Shards = append(out.Shards, fakeShardEntry(s))
		}
		for i := len(c.shards); i < len(out.Shards); i++ {
			out.Shards[i].SequenceNumberRange.EndingSequenceNumber = aws.String("1")
		}
		return out, nil
	}
	end := len(c.shards)
	if c.pageSize > 0 && start+c.pageSize < end {
		end = start + c.pageSize
	}
	for _, s := range c.shards[start:end] {
		out.Shards = append(out.Shards, fakeShardEntry(s))
	}
	if end < len(c.shards) {
		out.NextToken = aws.String(strconv.Itoa(end))
	}
	return out, nil
}

// fakeShardEntry is s as ListShards lists an open shard.
func fakeShardEntry(s *fakeShard) types.Shard {
	return types.Shard{
		ShardId: aws.String(s.id),
		HashKeyRange: &types.HashKeyRange{
			StartingHashKey: aws.String(s.start.String()),
			EndingHashKey:   aws.String(s.end.String()),
		},
		SequenceNumberRange: &types.SequenceNumberRange{StartingSequenceNumber: aws.String("0")},
	}
}

func (c *fakeClient) owner(h aggregation.HashKey) *fakeShard {
	if c.route != nil {
		if s := c.route(h); s != nil {
			return s
		}
	}
	// Binary search: the open shards are sorted and cover the hash space.
	i, _ := slices.BinarySearchFunc(c.shards, h, func(s *fakeShard, h aggregation.HashKey) int {
		switch {
		case s.end.Cmp(h) < 0:
			return -1
		case s.start.Cmp(h) > 0:
			return 1
		}
		return 0
	})
	if i < len(c.shards) && c.shards[i].start.Cmp(h) <= 0 && h.Cmp(c.shards[i].end) <= 0 {
		return c.shards[i]
	}
	return c.shards[len(c.shards)-1]
}

func (c *fakeClient) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	c.mu.Lock()
	c.calls++
	n, script := c.calls, c.script
	c.mu.Unlock()
	var codes []string
	if script != nil {
		var err error
		codes, err = script(ctx, n, in)
		if err != nil {
			return nil, err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	out := &kinesis.PutRecordsOutput{}
	var failed int32
	for i, e := range in.Records {
		if i < len(codes) && codes[i] != "" {
			failed++
			out.Records = append(out.Records, types.PutRecordsResultEntry{ErrorCode: aws.String(codes[i]), ErrorMessage: aws.String("scripted " + codes[i])})
			continue
		}
		var h aggregation.HashKey
		if e.ExplicitHashKey != nil {
			h = mustHash(*e.ExplicitHashKey)
		} else {
			h = aggregation.PartitionKeyHash(*e.PartitionKey)
		}
		s := c.owner(h)
		s.records = append(s.records, types.PutRecordsRequestEntry{Data: append([]byte(nil), e.Data...), PartitionKey: e.PartitionKey, ExplicitHashKey: e.ExplicitHashKey})
		c.seq++
		out.Records = append(out.Records, types.PutRecordsResultEntry{ShardId: aws.String(s.id), SequenceNumber: aws.String(strconv.Itoa(c.seq))})
	}
	out.FailedRecordCount = aws.Int32(failed)
	return out, nil
}

// stored returns every user record stored, per shard id, deaggregated, in
// order, along with the shards that held them.
func (c *fakeClient) stored() map[string][]aggregation.UserRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string][]aggregation.UserRecord{}
	for _, s := range append(c.shards[:len(c.shards):len(c.shards)], c.closed...) {
		for _, r := range s.records {
			urs, err := aggregation.Deaggregate(r.Data, aws.ToString(r.PartitionKey), aws.ToString(r.ExplicitHashKey))
			if err != nil {
				panic(err)
			}
			out[s.id] = append(out[s.id], urs...)
		}
	}
	return out
}

// shardByID returns a shard, open or closed.
func (c *fakeClient) shardByID(id string) *fakeShard {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range append(c.shards[:len(c.shards):len(c.shards)], c.closed...) {
		if s.id == id {
			return s
		}
	}
	return nil
}

// counts returns the number of PutRecords and ListShards calls so far.
func (c *fakeClient) counts() (puts, lists int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls, c.listCalls
}

// ownerOf returns the id of the open shard owning h.
func (c *fakeClient) ownerOf(h aggregation.HashKey) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.owner(h).id
}
