package producer

import (
	"context"
	"fmt"
	"math/big"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"go.uber.org/goleak"

	"github.com/kplgo/kpl/aggregation"
	"github.com/kplgo/kpl/internal/kinesisread"
	"github.com/kplgo/kpl/kinesistest/kinesismock"
)

var server *kinesismock.TestServer

func TestMain(m *testing.M) {
	server = kinesismock.StartForTests()
	code := m.Run()
	server.Close()
	if code == 0 {
		// Idle keep-alive connections of the SDK's HTTP client are not ours.
		if err := goleak.Find(
			goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
			goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
			goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines leaked:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// readBack reads the stream and returns, per user record data, where the
// KCL would deliver it, after checking every Kinesis record's shape: an
// aggregate has partition key "a" and an explicit hash key inside its shard.
// Aggregates with a user record outside their shard are dropped whole, as
// the KCL drops them; they are counted.
type readRecord struct {
	shard    string
	seq      string
	sub      uint64
	pk       string
	position int // order of reading
}

func readBack(t *testing.T, client *kinesis.Client, stream string) (map[string][]readRecord, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	shards, err := kinesisread.ReadAll(ctx, client, stream)
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	got := map[string][]readRecord{}
	dropped, pos := 0, 0
	for _, sh := range shards { // sorted by id: parents before children
		id := aws.ToString(sh.Shard.ShardId)
		start := mustHash(aws.ToString(sh.Shard.HashKeyRange.StartingHashKey))
		end := mustHash(aws.ToString(sh.Shard.HashKeyRange.EndingHashKey))
		in := func(h aggregation.HashKey) bool { return start.Cmp(h) <= 0 && h.Cmp(end) <= 0 }
		for _, r := range sh.Records {
			pk, ehk := aws.ToString(r.PartitionKey), ""
			if aggregation.IsAggregated(r.Data) {
				if pk != aggregation.AggregatePartitionKey {
					t.Errorf("aggregate %s on %s has partition key %q", aws.ToString(r.SequenceNumber), id, pk)
				}
			}
			// GetRecords does not return explicit hash keys: a plain record's
			// user record is routed by its partition key unless it had one;
			// the data of records put with one says so.
			urs, err := aggregation.Deaggregate(r.Data, pk, ehk)
			if err != nil {
				t.Fatalf("deaggregate %s: %v", aws.ToString(r.SequenceNumber), err)
			}
			ok := true
			for _, u := range urs {
				h, err := u.HashKey()
				if !u.Aggregated {
					h, err = expectedHash(u)
				}
				if err != nil || !in(h) {
					ok = false
				}
			}
			if !ok {
				dropped++
				continue
			}
			for _, u := range urs {
				got[string(u.Data)] = append(got[string(u.Data)], readRecord{
					shard: id, seq: aws.ToString(r.SequenceNumber), sub: u.SubSequenceNumber, pk: u.PartitionKey, position: pos,
				})
				pos++
			}
		}
	}
	return got, dropped
}

// expectedHash is the hash key of a plain user record read back: records put
// with an explicit hash key carry it in their data after "ehk=".
func expectedHash(u aggregation.UserRecord) (aggregation.HashKey, error) {
	var key string
	if _, err := fmt.Sscanf(string(u.Data), "ehk=%s", &key); err == nil {
		return aggregation.ParseHashKey(key)
	}
	return aggregation.PartitionKeyHash(u.PartitionKey), nil
}

// putMixed puts n records over keys partition keys; every tenth record
// carries an explicit hash key (recorded in its data).
func putMixed(t *testing.T, p *Producer, first, n, keys int) []sent {
	t.Helper()
	var out []sent
	for i := first; i < first+n; i++ {
		pk := fmt.Sprintf("sym-%02d", i%keys)
		r := aggregation.Record{PartitionKey: pk}
		if i%10 == 0 {
			h := new(big.Int).Lsh(big.NewInt(int64(i*7919%1000)), 118) // spread over the key space
			r.ExplicitHashKey = h.String()
			r.Data = []byte(fmt.Sprintf("ehk=%s %s/%06d", r.ExplicitHashKey, pk, i))
		} else {
			r.Data = []byte(fmt.Sprintf("%s/%06d {\"p\":%d.25,\"v\":%d}", pk, i, 100+i%50, i%300))
		}
		f, err := p.PutRecord(context.Background(), r)
		if err != nil {
			t.Fatalf("PutRecord %d: %v", i, err)
		}
		out = append(out, sent{pk: pk, ehk: r.ExplicitHashKey, data: string(r.Data), f: f})
	}
	return out
}

// checkReadBack asserts that every record was read back exactly once,
// byte-identical, where its result said, and (ordered) in put order per
// partition key among records routed by that key.
func checkReadBack(t *testing.T, got map[string][]readRecord, recs []sent, ordered bool) {
	t.Helper()
	lastPos := map[string]int{}
	for _, r := range recs {
		reads := got[r.data]
		if len(reads) != 1 {
			t.Errorf("record %q read back %d times", r.data, len(reads))
			continue
		}
		rd := reads[0]
		if rd.pk != r.pk {
			t.Errorf("record %q read back with partition key %q", r.data, rd.pk)
		}
		res, err := r.f.Wait(context.Background())
		if err != nil {
			t.Errorf("record %q: %v", r.data, err)
			continue
		}
		if res.ShardID != rd.shard || res.SequenceNumber != rd.seq || res.SubSequenceNumber != rd.sub {
			t.Errorf("record %q: result %s/%s/%d, read at %s/%s/%d", r.data, res.ShardID, res.SequenceNumber, res.SubSequenceNumber, rd.shard, rd.seq, rd.sub)
		}
		if ordered && r.ehk == "" {
			if last, ok := lastPos[r.pk]; ok && rd.position < last {
				t.Errorf("record %q of key %s read out of order", r.data, r.pk)
			}
			lastPos[r.pk] = rd.position
		}
	}
	if n := len(got); n != len(recs) {
		t.Errorf("read back %d distinct records, put %d", n, len(recs))
	}
}

func TestKinesisMockReadsBackEveryRecord(t *testing.T) {
	tests := []struct {
		name string
		n    int
		opts func(*Options)
	}{
		{"aggregated", 1500, func(o *Options) {}},
		{"aggregated and ordered", 1500, func(o *Options) { o.Ordered = true; o.AggregationMaxSize = 8000 }},
		// One plain record per shard per call: slow on kinesis-mock, so fewer.
		{"plain and ordered", 120, func(o *Options) { o.AggregationEnabled = false; o.Ordered = true }},
		{"plain", 1500, func(o *Options) { o.AggregationEnabled = false }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, stream := server.NewStream(t, 3)
			p, err := New(context.Background(), client, stream, func(o *Options) {
				o.Linger = 20 * time.Millisecond
				o.RetryBaseDelay = 10 * time.Millisecond
			}, tt.opts)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			recs := putMixed(t, p, 0, tt.n, 25)
			if err := p.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			got, dropped := readBack(t, client, stream)
			if dropped != 0 {
				t.Errorf("%d Kinesis records hold user records outside their shard", dropped)
			}
			checkReadBack(t, got, recs, p.opts.Ordered)
			st := p.Stats()
			if st.UserRecordsSucceeded != uint64(tt.n) || st.UserRecordsFailed != 0 {
				t.Errorf("stats: %+v", st)
			}
			t.Logf("%d Kinesis records in %d calls, %.1f user records per Kinesis record", st.KinesisRecordsSucceeded, st.PutRecordsCalls, st.UserRecordsPerKinesisRecord())
		})
	}
}

func TestKinesisMockSplitShardMidRun(t *testing.T) {
	for _, ordered := range []bool{false, true} {
		t.Run(fmt.Sprintf("ordered %v", ordered), func(t *testing.T) {
			client, stream := server.NewStream(t, 2)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			p, err := New(ctx, client, stream, func(o *Options) {
				o.Linger = 20 * time.Millisecond
				o.Ordered = ordered
				o.AggregationMaxSize = 4000
				o.RetryBaseDelay = 10 * time.Millisecond
			})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			recs := putMixed(t, p, 0, 1000, 30)
			// Split the first shard at the middle of its range while those
			// records are still buffered or in flight.
			shards, err := kinesisread.ListAllShards(ctx, client, stream)
			if err != nil {
				t.Fatal(err)
			}
			first := shards[0]
			lo := bigOf(mustHash(aws.ToString(first.HashKeyRange.StartingHashKey)))
			hi := bigOf(mustHash(aws.ToString(first.HashKeyRange.EndingHashKey)))
			mid := new(big.Int).Rsh(new(big.Int).Add(lo, hi), 1)
			if _, err := client.SplitShard(ctx, &kinesis.SplitShardInput{
				StreamName:         aws.String(stream),
				ShardToSplit:       first.ShardId,
				NewStartingHashKey: aws.String(mid.String()),
			}); err != nil {
				t.Fatalf("SplitShard: %v", err)
			}
			recs = append(recs, putMixed(t, p, 1000, 500, 30)...)
			if err := kinesismock.WaitActive(ctx, client, stream); err != nil {
				t.Fatal(err)
			}
			recs = append(recs, putMixed(t, p, 1500, 1000, 30)...)
			if err := p.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			got, dropped := readBack(t, client, stream)
			checkReadBack(t, got, recs, ordered)
			st := p.Stats()
			if st.UserRecordsSucceeded != uint64(len(recs)) || st.UserRecordsFailed != 0 || st.Shards != 3 || st.ShardMapRefreshes < 2 {
				t.Errorf("stats: %+v", st)
			}
			t.Logf("wrong-shard responses %d, aggregates the KCL would drop %d (their records were sent again), refreshes %d",
				st.WrongShard, dropped, st.ShardMapRefreshes)
		})
	}
}
