package limitserver_test

import (
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kplgo/kpl/kinesistest/limitserver"
)

// fakeClock is a Clock the test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

// newFakeClock returns a fake clock at a fixed instant.
func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

// Now returns the clock's time.
func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// newClient returns an unmodified SDK client for the endpoint at url, with
// retries off so that every error reaches the test.
func newClient(url string) *kinesis.Client {
	cfg := aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
	}
	return kinesis.NewFromConfig(cfg, func(o *kinesis.Options) {
		o.BaseEndpoint = aws.String(url)
		o.RetryMaxAttempts = 1
	})
}

// start serves srv on an httptest server and returns a client for it.
func start(t testing.TB, srv *limitserver.Server) *kinesis.Client {
	t.Helper()
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return newClient(ts.URL)
}

// ctxFor returns a context for one call, canceled when the test ends.
func ctxFor(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// two128 is 2^128.
var two128 = new(big.Int).Lsh(big.NewInt(1), 128)

// md5Key is the service's hash key of a partition key, computed here with
// math/big, independently of the server's code.
func md5Key(pk string) *big.Int {
	sum := md5.Sum([]byte(pk))
	return new(big.Int).SetBytes(sum[:])
}

// owner returns the id of the shard whose range holds k.
func owner(t *testing.T, shards []types.Shard, k *big.Int) string {
	t.Helper()
	for _, sh := range shards {
		lo, _ := new(big.Int).SetString(aws.ToString(sh.HashKeyRange.StartingHashKey), 10)
		hi, _ := new(big.Int).SetString(aws.ToString(sh.HashKeyRange.EndingHashKey), 10)
		if lo.Cmp(k) <= 0 && k.Cmp(hi) <= 0 {
			return aws.ToString(sh.ShardId)
		}
	}
	t.Fatalf("no shard owns %s", k)
	return ""
}

// listShards returns a stream's shards through the SDK.
func listShards(t *testing.T, c *kinesis.Client, stream string) []types.Shard {
	t.Helper()
	out, err := c.ListShards(ctxFor(t), &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatalf("ListShards: %v", err)
	}
	return out.Shards
}

func TestSDKClientManagesStreamsAndPutsRecords(t *testing.T) {
	t.Parallel()
	srv := limitserver.New(limitserver.Options{})
	c := start(t, srv)
	ctx := ctxFor(t)

	if _, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(3)}); err != nil {
		t.Fatalf("CreateStream: %v", err)
	}
	sum, err := c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s")})
	if err != nil {
		t.Fatalf("DescribeStreamSummary: %v", err)
	}
	d := sum.StreamDescriptionSummary
	if aws.ToString(d.StreamName) != "s" || d.StreamStatus != types.StreamStatusActive || aws.ToInt32(d.OpenShardCount) != 3 ||
		aws.ToString(d.StreamARN) != "arn:aws:kinesis:us-east-1:000000000000:stream/s" || d.StreamCreationTimestamp == nil {
		t.Errorf("summary = %+v", d)
	}

	shards := listShards(t, c, "s")
	if len(shards) != 3 {
		t.Fatalf("ListShards gave %d shards, want 3", len(shards))
	}
	step := new(big.Int).Div(two128, big.NewInt(3))
	for i, sh := range shards {
		if want := fmt.Sprintf("shardId-%012d", i); aws.ToString(sh.ShardId) != want {
			t.Errorf("shard %d id %s, want %s", i, aws.ToString(sh.ShardId), want)
		}
		want := new(big.Int).Mul(step, big.NewInt(int64(i))).String()
		if got := aws.ToString(sh.HashKeyRange.StartingHashKey); got != want {
			t.Errorf("shard %d starts at %s, want %s", i, got, want)
		}
	}
	byARN, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamARN: d.StreamARN})
	if err != nil || len(byARN.Shards) != 3 {
		t.Fatalf("ListShards by ARN: %d shards, %v", len(byARN.Shards), err)
	}

	one, err := c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("AAPL"), Data: []byte("trade")})
	if err != nil {
		t.Fatalf("PutRecord: %v", err)
	}
	if want := owner(t, shards, md5Key("AAPL")); aws.ToString(one.ShardId) != want {
		t.Errorf("PutRecord went to %s, want %s", aws.ToString(one.ShardId), want)
	}

	var entries []types.PutRecordsRequestEntry
	for i := range 30 {
		entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String("AAPL"), Data: []byte(fmt.Sprintf("trade-%d", i))})
	}
	many, err := c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: entries})
	if err != nil {
		t.Fatalf("PutRecords: %v", err)
	}
	if aws.ToInt32(many.FailedRecordCount) != 0 || len(many.Records) != 30 {
		t.Fatalf("PutRecords: %d failed, %d results", aws.ToInt32(many.FailedRecordCount), len(many.Records))
	}
	prev := aws.ToString(one.SequenceNumber)
	for i, r := range many.Records {
		seq := aws.ToString(r.SequenceNumber)
		a, _ := new(big.Int).SetString(prev, 10)
		b, ok := new(big.Int).SetString(seq, 10)
		if !ok || b.Cmp(a) <= 0 {
			t.Errorf("entry %d: sequence %q not a decimal after %s", i, seq, prev)
		}
		if aws.ToString(r.ShardId) != aws.ToString(one.ShardId) {
			t.Errorf("entry %d on %s, want %s", i, aws.ToString(r.ShardId), aws.ToString(one.ShardId))
		}
		prev = seq
	}

	st, err := srv.Stats("s")
	if err != nil {
		t.Fatal(err)
	}
	wantBytes := uint64(len("trade") + len("AAPL"))
	for i := range 30 {
		wantBytes += uint64(len(fmt.Sprintf("trade-%d", i)) + len("AAPL"))
	}
	if st.Records != 31 || st.Bytes != wantBytes || st.PutRecordCalls != 1 || st.PutRecordsCalls != 1 || st.PutRecordsEntries != 30 || st.Throttled != 0 {
		t.Errorf("stats = %+v, want 31 records, %d bytes, 1+1 calls", st, wantBytes)
	}

	if _, err := c.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String("s")}); err != nil {
		t.Fatalf("DeleteStream: %v", err)
	}
	_, err = c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s")})
	var nf *types.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Fatalf("DescribeStreamSummary after delete: %v, want ResourceNotFoundException", err)
	}
}

func TestRecordsAreRoutedToTheShardOwningTheirHashKey(t *testing.T) {
	t.Parallel()
	srv := limitserver.New(limitserver.Options{BytesPerSecond: -1, RecordsPerSecond: -1})
	if err := srv.CreateStream("route", 7); err != nil {
		t.Fatal(err)
	}
	c := start(t, srv)
	shards := listShards(t, c, "route")

	var entries []types.PutRecordsRequestEntry
	var want []string
	for i := range 200 { // partition keys: MD5 decides
		pk := fmt.Sprintf("key-%d", i)
		entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String(pk), Data: []byte("x")})
		want = append(want, owner(t, shards, md5Key(pk)))
	}
	// Explicit hash keys at every range boundary override the partition key.
	for _, sh := range shards {
		for _, k := range []string{aws.ToString(sh.HashKeyRange.StartingHashKey), aws.ToString(sh.HashKeyRange.EndingHashKey)} {
			entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String("key-0"), ExplicitHashKey: aws.String(k), Data: []byte("y")})
			want = append(want, aws.ToString(sh.ShardId))
		}
	}
	out, err := c.PutRecords(ctxFor(t), &kinesis.PutRecordsInput{StreamName: aws.String("route"), Records: entries})
	if err != nil {
		t.Fatalf("PutRecords: %v", err)
	}
	seen := map[string]bool{}
	for i, r := range out.Records {
		if got := aws.ToString(r.ShardId); got != want[i] {
			t.Errorf("entry %d went to %s, want %s", i, got, want[i])
		}
		seen[aws.ToString(r.ShardId)] = true
	}
	if len(seen) != 7 {
		t.Errorf("records reached %d of 7 shards", len(seen))
	}
}

// putN sends n records of dataLen bytes with partition key "k" in one
// PutRecords call and returns the response.
func putN(t *testing.T, c *kinesis.Client, stream string, n, dataLen int) *kinesis.PutRecordsOutput {
	t.Helper()
	entries := make([]types.PutRecordsRequestEntry, n)
	for i := range entries {
		entries[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String("k"), Data: make([]byte, dataLen)}
	}
	out, err := c.PutRecords(ctxFor(t), &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries})
	if err != nil {
		t.Fatalf("PutRecords: %v", err)
	}
	return out
}

// outcome summarizes a PutRecords response as "ok" and "throttled" per entry.
func outcome(t *testing.T, out *kinesis.PutRecordsOutput) (ok, throttled int) {
	t.Helper()
	for i, r := range out.Records {
		switch {
		case r.ErrorCode == nil && r.SequenceNumber != nil && r.ShardId != nil:
			ok++
		case aws.ToString(r.ErrorCode) == "ProvisionedThroughputExceededException" && strings.Contains(aws.ToString(r.ErrorMessage), "Rate exceeded for shard"):
			throttled++
		default:
			t.Errorf("entry %d: unexpected result %+v", i, r)
		}
	}
	if int(aws.ToInt32(out.FailedRecordCount)) != throttled {
		t.Errorf("FailedRecordCount = %d, want %d", aws.ToInt32(out.FailedRecordCount), throttled)
	}
	return ok, throttled
}

func TestShardBucketsThrottleEntriesAndRefillOverTime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		bytesPerSec   int64
		recordsPerSec int64
		n, dataLen    int           // first call
		wantOK        int           // accepted of the first call
		advance       time.Duration // then the clock moves
		wantAfter     int           // accepted of a second identical call
	}{
		{name: "the record limit throttles the entries past it", bytesPerSec: -1, recordsPerSec: 10,
			n: 15, dataLen: 9, wantOK: 10, advance: 500 * time.Millisecond, wantAfter: 5},
		{name: "the byte limit counts data plus partition key", bytesPerSec: 1000, recordsPerSec: -1,
			n: 5, dataLen: 249, wantOK: 4, advance: 250 * time.Millisecond, wantAfter: 1},
		{name: "both limits apply and the tighter one wins", bytesPerSec: 1000, recordsPerSec: 3,
			n: 5, dataLen: 99, wantOK: 3, advance: time.Second, wantAfter: 3},
		{name: "a full refill never exceeds one second of capacity", bytesPerSec: -1, recordsPerSec: 4,
			n: 6, dataLen: 1, wantOK: 4, advance: time.Hour, wantAfter: 4},
		{name: "no time passing means no refill", bytesPerSec: -1, recordsPerSec: 2,
			n: 3, dataLen: 1, wantOK: 2, advance: 0, wantAfter: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clock := newFakeClock()
			srv := limitserver.New(limitserver.Options{BytesPerSecond: tt.bytesPerSec, RecordsPerSecond: tt.recordsPerSec, Clock: clock})
			if err := srv.CreateStream("t", 1); err != nil {
				t.Fatal(err)
			}
			c := start(t, srv)
			ok, throttled := outcome(t, putN(t, c, "t", tt.n, tt.dataLen))
			if ok != tt.wantOK || throttled != tt.n-tt.wantOK {
				t.Errorf("first call: %d ok, %d throttled; want %d ok", ok, throttled, tt.wantOK)
			}
			clock.Advance(tt.advance)
			ok2, throttled2 := outcome(t, putN(t, c, "t", tt.n, tt.dataLen))
			if ok2 != tt.wantAfter {
				t.Errorf("after %v: %d ok, want %d", tt.advance, ok2, tt.wantAfter)
			}
			st, _ := srv.Stats("t")
			sh := st.Shards[0]
			if sh.Records != uint64(ok+ok2) || sh.Throttled != uint64(throttled+throttled2) ||
				sh.Bytes != uint64((ok+ok2)*(tt.dataLen+1)) || sh.DataBytes != uint64((ok+ok2)*tt.dataLen) ||
				sh.ThrottledBytes != uint64((throttled+throttled2)*(tt.dataLen+1)) {
				t.Errorf("shard stats = %+v", sh)
			}
			wantThrottledCalls := uint64(0)
			for _, n := range []int{throttled, throttled2} {
				if n > 0 {
					wantThrottledCalls++
				}
			}
			if st.ThrottledCalls != wantThrottledCalls {
				t.Errorf("ThrottledCalls = %d, want %d", st.ThrottledCalls, wantThrottledCalls)
			}
		})
	}
}

func TestThrottlingIsPerShard(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	srv := limitserver.New(limitserver.Options{RecordsPerSecond: 2, Clock: clock})
	if err := srv.CreateStream("two", 2); err != nil {
		t.Fatal(err)
	}
	c := start(t, srv)
	shards := listShards(t, c, "two")
	// Three records for each shard, by explicit hash key.
	var entries []types.PutRecordsRequestEntry
	for range 3 {
		for _, sh := range shards {
			entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String("k"), ExplicitHashKey: sh.HashKeyRange.StartingHashKey, Data: []byte("d")})
		}
	}
	out, err := c.PutRecords(ctxFor(t), &kinesis.PutRecordsInput{StreamName: aws.String("two"), Records: entries})
	if err != nil {
		t.Fatal(err)
	}
	// Entries alternate shards: the last one of each shard is throttled.
	for i, r := range out.Records {
		wantThrottled := i >= 4
		if (r.ErrorCode != nil) != wantThrottled {
			t.Errorf("entry %d: error code %q, want throttled=%v", i, aws.ToString(r.ErrorCode), wantThrottled)
		}
	}
	st, _ := srv.Stats("two")
	for _, sh := range st.Shards {
		if sh.Records != 2 || sh.Throttled != 1 {
			t.Errorf("%s: %d records, %d throttled; want 2 and 1", sh.ShardID, sh.Records, sh.Throttled)
		}
	}
}

func TestPutRecordFailsWithProvisionedThroughputExceeded(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	srv := limitserver.New(limitserver.Options{RecordsPerSecond: 1, Clock: clock})
	if err := srv.CreateStream("one", 1); err != nil {
		t.Fatal(err)
	}
	c := start(t, srv)
	ctx := ctxFor(t)
	in := &kinesis.PutRecordInput{StreamName: aws.String("one"), PartitionKey: aws.String("k"), Data: []byte("d")}
	if _, err := c.PutRecord(ctx, in); err != nil {
		t.Fatalf("first PutRecord: %v", err)
	}
	_, err := c.PutRecord(ctx, in)
	var pte *types.ProvisionedThroughputExceededException
	if !errors.As(err, &pte) || !strings.Contains(pte.ErrorMessage(), "shardId-000000000000") {
		t.Fatalf("second PutRecord: %v, want ProvisionedThroughputExceededException", err)
	}
	clock.Advance(time.Second)
	if _, err := c.PutRecord(ctx, in); err != nil {
		t.Fatalf("PutRecord after refill: %v", err)
	}
	st, _ := srv.Stats("one")
	if st.Records != 2 || st.Throttled != 1 || st.ThrottledCalls != 1 || st.PutRecordCalls != 3 {
		t.Errorf("stats = %+v", st)
	}
}

func TestLimitsRejectTheWholeRequestWithTheServiceErrorType(t *testing.T) {
	t.Parallel()
	srv := limitserver.New(limitserver.Options{BytesPerSecond: -1, RecordsPerSecond: -1})
	if err := srv.CreateStream("lim", 2); err != nil {
		t.Fatal(err)
	}
	c := start(t, srv)
	const mib = 1 << 20
	entry := func(pk string, n int) types.PutRecordsRequestEntry {
		return types.PutRecordsRequestEntry{PartitionKey: aws.String(pk), Data: make([]byte, n)}
	}
	repeat := func(e types.PutRecordsRequestEntry, n int) []types.PutRecordsRequestEntry {
		out := make([]types.PutRecordsRequestEntry, n)
		for i := range out {
			out[i] = e
		}
		return out
	}
	withEHK := func(k string) []types.PutRecordsRequestEntry {
		e := entry("k", 1)
		e.ExplicitHashKey = aws.String(k)
		return []types.PutRecordsRequestEntry{e}
	}
	max128 := new(big.Int).Sub(two128, big.NewInt(1)).String()
	tests := []struct {
		name    string
		stream  string
		records []types.PutRecordsRequestEntry
		want    string // error type; "" means accepted
	}{
		{name: "500 records are accepted", records: repeat(entry("k", 1), 500)},
		{name: "501 records are a ValidationException", records: repeat(entry("k", 1), 501), want: "ValidationException"},
		{name: "5 MiB including partition keys is accepted", records: repeat(entry("k", mib-1), 5), want: ""},
		{name: "over 5 MiB in total is an InvalidArgumentException", records: append(repeat(entry("k", mib-1), 5), entry("k", 1)), want: "InvalidArgumentException"},
		{name: "a record of exactly 1 MiB with its key is accepted", records: []types.PutRecordsRequestEntry{entry("abc", mib-3)}},
		{name: "data over 1 MiB is a ValidationException", records: []types.PutRecordsRequestEntry{entry("k", mib+1)}, want: "ValidationException"},
		{name: "1 MiB of data plus the key is an InvalidArgumentException", records: []types.PutRecordsRequestEntry{entry("k", mib)}, want: "InvalidArgumentException"},
		{name: "an empty partition key is a ValidationException", records: []types.PutRecordsRequestEntry{entry("", 1)}, want: "ValidationException"},
		{name: "256 multi-byte characters are a valid key", records: []types.PutRecordsRequestEntry{entry(strings.Repeat("é", 256), 1)}},
		{name: "257 characters are a ValidationException", records: []types.PutRecordsRequestEntry{entry(strings.Repeat("k", 257), 1)}, want: "ValidationException"},
		{name: "an explicit hash key of 2^128-1 is accepted", records: withEHK(max128)},
		{name: "an explicit hash key of 2^128 is an InvalidArgumentException", records: withEHK(two128.String()), want: "InvalidArgumentException"},
		{name: "a non-decimal explicit hash key is a ValidationException", records: withEHK("0x10"), want: "ValidationException"},
		{name: "an unknown stream is a ResourceNotFoundException", stream: "nope", records: []types.PutRecordsRequestEntry{entry("k", 1)}, want: "ResourceNotFoundException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stream := tt.stream
			if stream == "" {
				stream = "lim"
			}
			before, _ := srv.Stats("lim")
			out, err := c.PutRecords(ctxFor(t), &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: tt.records})
			after, _ := srv.Stats("lim")
			if tt.want == "" {
				if err != nil || aws.ToInt32(out.FailedRecordCount) != 0 {
					t.Fatalf("PutRecords: %v, want accepted", err)
				}
				if got := after.Records - before.Records; got != uint64(len(tt.records)) {
					t.Errorf("%d records counted, want %d", got, len(tt.records))
				}
				return
			}
			if !isErrorType(err, tt.want) {
				t.Fatalf("PutRecords: %v, want %s", err, tt.want)
			}
			if after.Records != before.Records {
				t.Errorf("a rejected request stored %d records", after.Records-before.Records)
			}
			if stream == "lim" && after.RejectedCalls != before.RejectedCalls+1 {
				t.Errorf("RejectedCalls went from %d to %d", before.RejectedCalls, after.RejectedCalls)
			}
		})
	}
}

// isErrorType reports whether err is the SDK's typed error named want.
func isErrorType(err error, want string) bool {
	switch want {
	case "ValidationException":
		var e *types.ValidationException
		return errors.As(err, &e)
	case "InvalidArgumentException":
		var e *types.InvalidArgumentException
		return errors.As(err, &e)
	case "ResourceNotFoundException":
		var e *types.ResourceNotFoundException
		return errors.As(err, &e)
	case "ResourceInUseException":
		var e *types.ResourceInUseException
		return errors.As(err, &e)
	}
	return false
}

func TestPutRecordAppliesTheRecordLimits(t *testing.T) {
	t.Parallel()
	srv := limitserver.New(limitserver.Options{MaxRecordSize: 100})
	if err := srv.CreateStream("small", 1); err != nil {
		t.Fatal(err)
	}
	c := start(t, srv)
	tests := []struct {
		name string
		pk   string
		ehk  *string
		data int
		want string
	}{
		{name: "a record at the configured limit is accepted", pk: "kk", data: 98},
		{name: "data over the limit is a ValidationException", pk: "k", data: 101, want: "ValidationException"},
		{name: "data plus key over the limit is an InvalidArgumentException", pk: "kk", data: 99, want: "InvalidArgumentException"},
		{name: "a long key is a ValidationException", pk: strings.Repeat("k", 300), data: 1, want: "ValidationException"},
		{name: "a malformed explicit hash key is a ValidationException", pk: "k", ehk: aws.String("007"), data: 1, want: "ValidationException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.PutRecord(ctxFor(t), &kinesis.PutRecordInput{StreamName: aws.String("small"),
				PartitionKey: aws.String(tt.pk), ExplicitHashKey: tt.ehk, Data: make([]byte, tt.data)})
			if tt.want == "" {
				if err != nil {
					t.Fatalf("PutRecord: %v", err)
				}
				return
			}
			if !isErrorType(err, tt.want) {
				t.Fatalf("PutRecord: %v, want %s", err, tt.want)
			}
		})
	}
}

func TestCreateStreamErrors(t *testing.T) {
	t.Parallel()
	srv := limitserver.New(limitserver.Options{})
	c := start(t, srv)
	ctx := ctxFor(t)
	if _, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("dup"), ShardCount: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	_, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("dup"), ShardCount: aws.Int32(1)})
	if !isErrorType(err, "ResourceInUseException") {
		t.Errorf("second CreateStream: %v, want ResourceInUseException", err)
	}
	_, err = c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("od"),
		StreamModeDetails: &types.StreamModeDetails{StreamMode: types.StreamModeOnDemand}})
	if err != nil {
		t.Fatalf("on-demand CreateStream: %v", err)
	}
	if got := len(listShards(t, c, "od")); got != limitserver.DefaultOnDemandShards {
		t.Errorf("on-demand stream has %d shards, want %d", got, limitserver.DefaultOnDemandShards)
	}
	if err := srv.CreateStream("bad name", 1); !errors.Is(err, limitserver.ErrInvalidStream) {
		t.Errorf("CreateStream with a space: %v, want ErrInvalidStream", err)
	}
	if err := srv.CreateStream("zero", 0); !errors.Is(err, limitserver.ErrInvalidStream) {
		t.Errorf("CreateStream with 0 shards: %v, want ErrInvalidStream", err)
	}
	if _, err := srv.Stats("missing"); !errors.Is(err, limitserver.ErrStreamNotFound) {
		t.Errorf("Stats of a missing stream: %v, want ErrStreamNotFound", err)
	}
}

func TestKeepDataStoresAcceptedRecordsOnly(t *testing.T) {
	t.Parallel()
	srv := limitserver.New(limitserver.Options{KeepData: true, RecordsPerSecond: 2, Clock: newFakeClock()})
	if err := srv.CreateStream("keep", 1); err != nil {
		t.Fatal(err)
	}
	c := start(t, srv)
	out, err := c.PutRecords(ctxFor(t), &kinesis.PutRecordsInput{StreamName: aws.String("keep"), Records: []types.PutRecordsRequestEntry{
		{PartitionKey: aws.String("a"), Data: []byte("first")},
		{PartitionKey: aws.String("b"), ExplicitHashKey: aws.String("42"), Data: []byte{0, 1, 2, 0xff}},
		{PartitionKey: aws.String("c"), Data: []byte("throttled")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := srv.Records("keep")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || len(recs[0]) != 2 {
		t.Fatalf("kept %v", recs)
	}
	want := []limitserver.Record{
		{PartitionKey: "a", Data: []byte("first")},
		{PartitionKey: "b", ExplicitHashKey: "42", Data: []byte{0, 1, 2, 0xff}},
	}
	for i, r := range recs[0] {
		if r.PartitionKey != want[i].PartitionKey || r.ExplicitHashKey != want[i].ExplicitHashKey || string(r.Data) != string(want[i].Data) ||
			r.ShardID != "shardId-000000000000" || r.SequenceNumber != aws.ToString(out.Records[i].SequenceNumber) {
			t.Errorf("record %d = %+v, want %+v with sequence %s", i, r, want[i], aws.ToString(out.Records[i].SequenceNumber))
		}
	}
}

func TestStartServesUntilClose(t *testing.T) {
	t.Parallel()
	srv := limitserver.New(limitserver.Options{Latency: time.Millisecond})
	url, err := srv.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Start("127.0.0.1:0"); !errors.Is(err, limitserver.ErrServerStarted) {
		t.Errorf("second Start: %v, want ErrServerStarted", err)
	}
	c := newClient(url)
	if _, err := c.CreateStream(ctxFor(t), &kinesis.CreateStreamInput{StreamName: aws.String("x"), ShardCount: aws.Int32(2)}); err != nil {
		t.Fatalf("CreateStream through Start: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListShards(ctxFor(t), &kinesis.ListShardsInput{StreamName: aws.String("x")}); err == nil {
		t.Error("ListShards succeeded after Close")
	}
}

func TestServeStopsWhenTheContextEnds(t *testing.T) {
	t.Parallel()
	srv := limitserver.New(limitserver.Options{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	c := newClient("http://" + l.Addr().String())
	if _, err := c.CreateStream(ctxFor(t), &kinesis.CreateStreamInput{StreamName: aws.String("x"), ShardCount: aws.Int32(1)}); err != nil {
		t.Fatalf("CreateStream through Serve: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve after cancel: %v", err)
	}
	if _, err := c.ListShards(ctxFor(t), &kinesis.ListShardsInput{StreamName: aws.String("x")}); err == nil {
		t.Error("ListShards succeeded after Serve returned")
	}
}
