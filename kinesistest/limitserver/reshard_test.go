package limitserver_test

import (
	"fmt"
	"math/big"
	"runtime"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kplgo/kpl/internal/kinesisread"
	"github.com/kplgo/kpl/kinesistest/limitserver"
)

// putKeys puts one record per key, data "<key>/<round>", and checks that
// each landed on the open shard owning its hash key.
func putKeys(t *testing.T, c *kinesis.Client, stream string, keys []string, round int) {
	t.Helper()
	entries := make([]types.PutRecordsRequestEntry, len(keys))
	for i, k := range keys {
		entries[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String(k), Data: fmt.Appendf(nil, "%s/%d", k, round)}
	}
	out, err := c.PutRecords(ctxFor(t), &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries})
	if err != nil || aws.ToInt32(out.FailedRecordCount) != 0 {
		t.Fatalf("PutRecords: %v (%d failed)", err, aws.ToInt32(out.FailedRecordCount))
	}
	lo, err := c.ListShards(ctxFor(t), &kinesis.ListShardsInput{StreamName: aws.String(stream), ShardFilter: &types.ShardFilter{Type: types.ShardFilterTypeAtLatest}})
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		if got, want := aws.ToString(out.Records[i].ShardId), owner(t, lo.Shards, md5Key(k)); got != want {
			t.Errorf("round %d: key %s landed on %s, want %s", round, k, got, want)
		}
	}
}

// shardView is what a test checks of a listed shard.
type shardView struct {
	id, parent, adjacent string
	start, end           string
	closed               bool
}

func view(sh types.Shard) shardView {
	return shardView{
		id:       aws.ToString(sh.ShardId),
		parent:   aws.ToString(sh.ParentShardId),
		adjacent: aws.ToString(sh.AdjacentParentShardId),
		start:    aws.ToString(sh.HashKeyRange.StartingHashKey),
		end:      aws.ToString(sh.HashKeyRange.EndingHashKey),
		closed:   sh.SequenceNumberRange.EndingSequenceNumber != nil,
	}
}

func TestSplitAndMergeCloseParentsOpenChildrenAndReadBack(t *testing.T) {
	t.Parallel()
	srv := limitserver.New(limitserver.Options{KeepData: true, BytesPerSecond: -1, RecordsPerSecond: -1})
	c := start(t, srv)
	if _, err := c.CreateStream(ctxFor(t), &kinesis.CreateStreamInput{StreamName: aws.String("r"), ShardCount: aws.Int32(2)}); err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 40)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%d", i)
	}
	putKeys(t, c, "r", keys, 0)

	half := new(big.Int).Rsh(two128, 1)
	quarter := new(big.Int).Rsh(two128, 2)
	maxKey := new(big.Int).Sub(two128, big.NewInt(1))
	dec := func(v *big.Int) string { return v.String() }
	minus1 := func(v *big.Int) string { return new(big.Int).Sub(v, big.NewInt(1)).String() }

	if _, err := c.SplitShard(ctxFor(t), &kinesis.SplitShardInput{StreamName: aws.String("r"),
		ShardToSplit: aws.String("shardId-000000000000"), NewStartingHashKey: aws.String(dec(quarter))}); err != nil {
		t.Fatalf("SplitShard: %v", err)
	}
	putKeys(t, c, "r", keys, 1)
	if _, err := c.MergeShards(ctxFor(t), &kinesis.MergeShardsInput{StreamName: aws.String("r"),
		ShardToMerge: aws.String("shardId-000000000003"), AdjacentShardToMerge: aws.String("shardId-000000000001")}); err != nil {
		t.Fatalf("MergeShards: %v", err)
	}
	putKeys(t, c, "r", keys, 2)

	want := []shardView{
		{id: "shardId-000000000000", start: "0", end: minus1(half), closed: true},
		{id: "shardId-000000000001", start: dec(half), end: dec(maxKey), closed: true},
		{id: "shardId-000000000002", parent: "shardId-000000000000", start: "0", end: minus1(quarter)},
		{id: "shardId-000000000003", parent: "shardId-000000000000", start: dec(quarter), end: minus1(half), closed: true},
		{id: "shardId-000000000004", parent: "shardId-000000000003", adjacent: "shardId-000000000001", start: dec(quarter), end: dec(maxKey)},
	}
	all := listShards(t, c, "r")
	if len(all) != len(want) {
		t.Fatalf("ListShards lists %d shards, want %d", len(all), len(want))
	}
	for i, sh := range all {
		if got := view(sh); got != want[i] {
			t.Errorf("shard %d = %+v, want %+v", i, got, want[i])
		}
	}
	open, err := c.ListShards(ctxFor(t), &kinesis.ListShardsInput{StreamName: aws.String("r"), ShardFilter: &types.ShardFilter{Type: types.ShardFilterTypeAtLatest}})
	if err != nil {
		t.Fatal(err)
	}
	if len(open.Shards) != 2 || aws.ToString(open.Shards[0].ShardId) != "shardId-000000000002" || aws.ToString(open.Shards[1].ShardId) != "shardId-000000000004" {
		t.Errorf("AT_LATEST lists %v, want shards 2 and 4", open.Shards)
	}

	// Reading every shard finds every record once, each key's rounds in
	// order when parents are read before children.
	shards, err := kinesisread.ReadAll(ctxFor(t), c, "r")
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	seen := map[string]int{}
	for _, sh := range shards {
		for _, r := range sh.Records {
			seen[string(r.Data)]++
			if aws.ToString(r.PartitionKey) == "" {
				t.Errorf("record %s read without its partition key", r.Data)
			}
		}
	}
	if len(seen) != 3*len(keys) {
		t.Errorf("read %d distinct records, want %d", len(seen), 3*len(keys))
	}
	for d, n := range seen {
		if n != 1 {
			t.Errorf("record %s read %d times", d, n)
		}
	}

	// The end of a closed shard names its children and ends the iterator.
	it, err := c.GetShardIterator(ctxFor(t), &kinesis.GetShardIteratorInput{StreamName: aws.String("r"),
		ShardId: aws.String("shardId-000000000003"), ShardIteratorType: types.ShardIteratorTypeLatest})
	if err != nil {
		t.Fatal(err)
	}
	gr, err := c.GetRecords(ctxFor(t), &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	if err != nil {
		t.Fatal(err)
	}
	if gr.NextShardIterator != nil || len(gr.ChildShards) != 1 || aws.ToString(gr.ChildShards[0].ShardId) != "shardId-000000000004" ||
		len(gr.ChildShards[0].ParentShards) != 2 {
		t.Errorf("GetRecords at the end of a closed shard: next %v, children %+v", gr.NextShardIterator, gr.ChildShards)
	}
}

func TestGetShardIteratorPositions(t *testing.T) {
	t.Parallel()
	srv := limitserver.New(limitserver.Options{KeepData: true})
	c := start(t, srv)
	if err := srv.CreateStream("p", 1); err != nil {
		t.Fatal(err)
	}
	var seqs []string
	for i := range 5 {
		out, err := c.PutRecord(ctxFor(t), &kinesis.PutRecordInput{StreamName: aws.String("p"), PartitionKey: aws.String("k"), Data: []byte{byte('a' + i)}})
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, aws.ToString(out.SequenceNumber))
	}
	tests := []struct {
		name  string
		typ   types.ShardIteratorType
		seq   string
		limit int32
		want  string
	}{
		{name: "TRIM_HORIZON reads from the first record", typ: types.ShardIteratorTypeTrimHorizon, want: "abcde"},
		{name: "LATEST reads nothing written before", typ: types.ShardIteratorTypeLatest, want: ""},
		{name: "AT_SEQUENCE_NUMBER includes that record", typ: types.ShardIteratorTypeAtSequenceNumber, seq: seqs[2], want: "cde"},
		{name: "AFTER_SEQUENCE_NUMBER starts after it", typ: types.ShardIteratorTypeAfterSequenceNumber, seq: seqs[2], want: "de"},
		{name: "Limit bounds one call", typ: types.ShardIteratorTypeTrimHorizon, limit: 2, want: "ab"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := &kinesis.GetShardIteratorInput{StreamName: aws.String("p"), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: tt.typ}
			if tt.seq != "" {
				in.StartingSequenceNumber = aws.String(tt.seq)
			}
			it, err := c.GetShardIterator(ctxFor(t), in)
			if err != nil {
				t.Fatal(err)
			}
			gin := &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator}
			if tt.limit > 0 {
				gin.Limit = aws.Int32(tt.limit)
			}
			out, err := c.GetRecords(ctxFor(t), gin)
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			for i, r := range out.Records {
				got += string(r.Data)
				if aws.ToString(r.SequenceNumber) != seqs[int(r.Data[0]-'a')] {
					t.Errorf("record %d has sequence number %s", i, aws.ToString(r.SequenceNumber))
				}
			}
			if got != tt.want {
				t.Errorf("read %q, want %q", got, tt.want)
			}
			if out.NextShardIterator == nil {
				t.Error("an open shard's iterator ended")
			}
		})
	}
}

func TestReshardAndReadErrors(t *testing.T) {
	t.Parallel()
	srv := limitserver.New(limitserver.Options{})
	c := start(t, srv)
	if err := srv.CreateStream("e", 3); err != nil {
		t.Fatal(err)
	}
	if err := srv.SplitShard("e", "shardId-000000000001", new(big.Int).Rsh(two128, 1).String()); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{name: "splitting a closed shard is an InvalidArgumentException", want: "InvalidArgumentException", call: func() error {
			_, err := c.SplitShard(ctxFor(t), &kinesis.SplitShardInput{StreamName: aws.String("e"), ShardToSplit: aws.String("shardId-000000000001"), NewStartingHashKey: aws.String("1")})
			return err
		}},
		{name: "splitting at the shard's own start is an InvalidArgumentException", want: "InvalidArgumentException", call: func() error {
			_, err := c.SplitShard(ctxFor(t), &kinesis.SplitShardInput{StreamName: aws.String("e"), ShardToSplit: aws.String("shardId-000000000000"), NewStartingHashKey: aws.String("0")})
			return err
		}},
		{name: "splitting an unknown shard is a ResourceNotFoundException", want: "ResourceNotFoundException", call: func() error {
			_, err := c.SplitShard(ctxFor(t), &kinesis.SplitShardInput{StreamName: aws.String("e"), ShardToSplit: aws.String("shardId-000000000099"), NewStartingHashKey: aws.String("1")})
			return err
		}},
		{name: "merging shards that are not adjacent is an InvalidArgumentException", want: "InvalidArgumentException", call: func() error {
			_, err := c.MergeShards(ctxFor(t), &kinesis.MergeShardsInput{StreamName: aws.String("e"), ShardToMerge: aws.String("shardId-000000000000"), AdjacentShardToMerge: aws.String("shardId-000000000002")})
			return err
		}},
		{name: "merging in an unknown stream is a ResourceNotFoundException", want: "ResourceNotFoundException", call: func() error {
			_, err := c.MergeShards(ctxFor(t), &kinesis.MergeShardsInput{StreamName: aws.String("nope"), ShardToMerge: aws.String("shardId-000000000000"), AdjacentShardToMerge: aws.String("shardId-000000000002")})
			return err
		}},
		{name: "reading without KeepData is an InvalidArgumentException", want: "InvalidArgumentException", call: func() error {
			_, err := c.GetShardIterator(ctxFor(t), &kinesis.GetShardIteratorInput{StreamName: aws.String("e"), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !isErrorType(err, tt.want) {
				t.Errorf("got %v, want %s", err, tt.want)
			}
		})
	}
}

func TestReshardingWhileWritingLosesAndMisroutesNothing(t *testing.T) {
	t.Parallel()
	srv := limitserver.New(limitserver.Options{KeepData: true, BytesPerSecond: -1, RecordsPerSecond: -1})
	c := start(t, srv)
	if err := srv.CreateStream("w", 2); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	accepted := make(chan []string, 2)
	for w := range 2 {
		go func() {
			var ok []string
			defer func() { accepted <- ok }()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				var entries []types.PutRecordsRequestEntry
				for i := range 20 {
					entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprintf("k%d", i)), Data: fmt.Appendf(nil, "%d/%d/%d", w, n, i)})
				}
				out, err := c.PutRecords(ctxFor(t), &kinesis.PutRecordsInput{StreamName: aws.String("w"), Records: entries})
				if err != nil {
					t.Error(err)
					return
				}
				for i, r := range out.Records {
					if r.ErrorCode == nil {
						ok = append(ok, string(entries[i].Data))
					}
				}
			}
		}()
	}
	quarter := new(big.Int).Rsh(two128, 2)
	threeQuarters := new(big.Int).Mul(quarter, big.NewInt(3))
	steps := []func() error{
		func() error { return srv.SplitShard("w", "shardId-000000000000", quarter.String()) },
		func() error { return srv.SplitShard("w", "shardId-000000000001", threeQuarters.String()) },
		func() error { return srv.MergeShards("w", "shardId-000000000003", "shardId-000000000004") },
		func() error { return srv.MergeShards("w", "shardId-000000000002", "shardId-000000000006") },
	}
	// Between reshards, wait until the writers have stored two more calls.
	stored := func() uint64 { st, _ := srv.Stats("w"); return st.Records }
	for _, step := range steps {
		deadline := time.Now().Add(20 * time.Second)
		for before := stored(); stored() < before+40; {
			if time.Now().After(deadline) {
				close(stop)
				t.Fatal("the writers stopped storing")
			}
			runtime.Gosched()
		}
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	var want []string
	for range 2 {
		want = append(want, <-accepted...)
	}

	shards, err := kinesisread.ReadAll(ctxFor(t), c, "w")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, sh := range shards {
		lo, _ := new(big.Int).SetString(aws.ToString(sh.Shard.HashKeyRange.StartingHashKey), 10)
		hi, _ := new(big.Int).SetString(aws.ToString(sh.Shard.HashKeyRange.EndingHashKey), 10)
		for _, r := range sh.Records {
			seen[string(r.Data)]++
			if k := md5Key(aws.ToString(r.PartitionKey)); k.Cmp(lo) < 0 || k.Cmp(hi) > 0 {
				t.Errorf("record %s is on %s, outside its range", r.Data, aws.ToString(sh.Shard.ShardId))
			}
		}
	}
	if len(want) == 0 || len(seen) != len(want) {
		t.Errorf("read %d distinct records, %d were accepted", len(seen), len(want))
	}
	for _, d := range want {
		if seen[d] != 1 {
			t.Errorf("accepted record %s read %d times", d, seen[d])
		}
	}
}
