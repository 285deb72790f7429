package producer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/sirupsen/logrus"
	"go.uber.org/goleak"

	"github.com/kplgo/kpl/aggregation"
)

var (
	_ Printfer = logrus.New()
	_ Printfer = logrus.FieldLogger(nil)
	_ Printfer = (*logrus.Entry)(nil)
)

// fast are options for unit tests: short backoffs, no rate limit.
func fast(o *Options) {
	o.RetryBaseDelay = time.Millisecond
	o.RetryMaxDelay = 5 * time.Millisecond
	o.RefreshBaseDelay = time.Millisecond
	o.RefreshMaxDelay = 5 * time.Millisecond
	o.Linger = time.Millisecond
	o.RateLimit = 0
}

func newProducer(t *testing.T, c Client, optFns ...func(*Options)) *Producer {
	t.Helper()
	p, err := New(context.Background(), c, "stream", append([]func(*Options){fast}, optFns...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

type sent struct {
	pk, ehk string
	data    string
	f       *Future
}

// putAll puts n records over keys partition keys; record i of key k carries
// "k/i".
func putAll(t *testing.T, p *Producer, n, keys int) []sent {
	t.Helper()
	return putAllFrom(t, p, 0, n, keys)
}

// putAllFrom is putAll numbering records from first.
func putAllFrom(t *testing.T, p *Producer, first, n, keys int) []sent {
	t.Helper()
	var out []sent
	for i := first; i < first+n; i++ {
		pk := fmt.Sprintf("key-%d", i%keys)
		data := fmt.Sprintf("%s/%06d", pk, i)
		f, err := p.Put(context.Background(), pk, []byte(data))
		if err != nil {
			t.Fatalf("Put %d: %v", i, err)
		}
		out = append(out, sent{pk: pk, data: data, f: f})
	}
	return out
}

func waitAll(t *testing.T, recs []sent) []Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []Result
	for i, r := range recs {
		res, err := r.f.Wait(ctx)
		if err != nil {
			t.Fatalf("record %d (%s): %v", i, r.data, err)
		}
		out = append(out, res)
	}
	return out
}

// kclView returns, per shard, the user records a KCL reader keeps: every
// aggregate must have partition key "a" and an explicit hash key in its
// shard, and an aggregate with any user record outside its shard is dropped
// whole (counted in dropped).
func kclView(t *testing.T, c *fakeClient) (view map[string][]aggregation.UserRecord, dropped int) {
	t.Helper()
	c.mu.Lock()
	all := append(c.closed[:len(c.closed):len(c.closed)], c.shards...) // parents first, as the KCL reads
	c.mu.Unlock()
	view = map[string][]aggregation.UserRecord{}
	for _, s := range all {
		for _, r := range s.records {
			in := func(h aggregation.HashKey) bool { return s.start.Cmp(h) <= 0 && h.Cmp(s.end) <= 0 }
			urs, err := aggregation.Deaggregate(r.Data, aws.ToString(r.PartitionKey), aws.ToString(r.ExplicitHashKey))
			if err != nil {
				t.Fatalf("deaggregate: %v", err)
			}
			if aggregation.IsAggregated(r.Data) {
				if pk := aws.ToString(r.PartitionKey); pk != aggregation.AggregatePartitionKey {
					t.Errorf("aggregate on %s has partition key %q", s.id, pk)
				}
				if r.ExplicitHashKey == nil || !in(mustHash(*r.ExplicitHashKey)) {
					t.Errorf("aggregate on %s has explicit hash key %v outside the shard", s.id, aws.ToString(r.ExplicitHashKey))
				}
				if len(urs) < 2 && urs[0].ID.IsZero() { // with an id, one record travels in an aggregate
					t.Errorf("aggregate on %s holds %d user record(s); one should go plain", s.id, len(urs))
				}
			}
			ok := true
			for _, u := range urs {
				h, err := u.HashKey()
				if err != nil || !in(h) {
					ok = false
				}
			}
			if !ok {
				dropped++
				continue
			}
			view[s.id] = append(view[s.id], urs...)
		}
	}
	return view, dropped
}

// checkDelivered asserts that every sent record appears exactly once in the
// KCL view, on the shard its future reported, byte-identical, and that each
// key's records are in put order when ordered is set.
func checkDelivered(t *testing.T, c *fakeClient, recs []sent, ordered bool) {
	t.Helper()
	view, _ := kclView(t, c)
	where := map[string]string{}
	seen := map[string]int{}
	perKey := map[string][]string{}
	c.mu.Lock()
	all := append(c.closed[:len(c.closed):len(c.closed)], c.shards...)
	c.mu.Unlock()
	for _, sh := range all {
		shard, urs := sh.id, view[sh.id]
		for _, u := range urs {
			d := string(u.Data)
			seen[d]++
			where[d] = shard
			if !strings.HasPrefix(d, u.PartitionKey+"/") {
				t.Errorf("record %q read back with partition key %q", d, u.PartitionKey)
			}
			perKey[u.PartitionKey] = append(perKey[u.PartitionKey], d)
		}
	}
	for _, r := range recs {
		if seen[r.data] != 1 {
			t.Errorf("record %s read back %d times", r.data, seen[r.data])
		}
		res, err := r.f.Wait(context.Background())
		if err != nil {
			t.Errorf("record %s: %v", r.data, err)
			continue
		}
		if res.ShardID != where[r.data] {
			t.Errorf("record %s: result says shard %s, stored on %s", r.data, res.ShardID, where[r.data])
		}
	}
	if ordered {
		for k, ds := range perKey {
			for i := 1; i < len(ds); i++ {
				if ds[i-1] >= ds[i] {
					t.Errorf("key %s: %s read before %s", k, ds[i-1], ds[i])
					break
				}
			}
		}
	}
}

func TestDelivery(t *testing.T) {
	tests := []struct {
		name  string
		opts  func(*Options)
		pages int
	}{
		{"aggregated records reach the shard owning each key", func(o *Options) {}, 0},
		{"plain records reach the shard owning each key", func(o *Options) { o.AggregationEnabled = false }, 0},
		{"a paginated shard list is read whole", func(o *Options) {}, 1},
		{"a tiny hash cache still routes right", func(o *Options) { o.HashCacheSize = 3 }, 0},
		{"small aggregates and calls split the load", func(o *Options) {
			o.AggregationMaxSize = 300
			o.CollectionMaxCount = 7
			o.CollectionMaxSize = 2000
		}, 0},
		{"ordered mode delivers everything in order", func(o *Options) { o.Ordered = true }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFakeClient(5)
			c.pageSize = tt.pages
			p := newProducer(t, c, tt.opts)
			if got := p.Stats().Shards; got != 5 {
				t.Fatalf("Shards = %d, want 5", got)
			}
			recs := putAll(t, p, 3000, 41)
			if err := p.Flush(context.Background()); err != nil {
				t.Fatalf("Flush: %v", err)
			}
			if err := p.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			checkDelivered(t, c, recs, p.opts.Ordered)
			st := p.Stats()
			if st.UserRecordsPut != 3000 || st.UserRecordsSucceeded != 3000 || st.BufferedRecords != 0 || st.BufferedBytes != 0 {
				t.Errorf("stats: %+v", st)
			}
		})
	}
}

func TestSingleRecordAggregateGoesPlain(t *testing.T) {
	c := newFakeClient(2)
	p := newProducer(t, c, func(o *Options) { o.Linger, o.RecordTTL = time.Hour, 2*time.Hour })
	ehk := "170141183460469231731687303715884105728" // 2^127: second shard
	f1, err := p.Put(context.Background(), "alone", []byte("one"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	f2, err := p.PutRecord(context.Background(), aggregation.Record{PartitionKey: "other", ExplicitHashKey: ehk, Data: []byte("two")})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	r2, err := f2.Wait(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r2.ShardID != c.shards[1].id || r2.Aggregated {
		t.Errorf("explicit hash key record: %+v", r2)
	}
	if r1, _ := f1.Wait(context.Background()); r1.Aggregated {
		t.Errorf("single record reported aggregated: %+v", r1)
	}
	var got []types.PutRecordsRequestEntry
	for _, s := range c.shards {
		got = append(got, s.records...)
	}
	if len(got) != 2 {
		t.Fatalf("stored %d Kinesis records, want 2", len(got))
	}
	for _, e := range got {
		if aggregation.IsAggregated(e.Data) {
			t.Errorf("record %q was sent as an aggregate", e.Data)
		}
		switch string(e.Data) {
		case "one":
			if aws.ToString(e.PartitionKey) != "alone" || e.ExplicitHashKey != nil {
				t.Errorf("plain record keys: %q %v", aws.ToString(e.PartitionKey), aws.ToString(e.ExplicitHashKey))
			}
		case "two":
			if aws.ToString(e.PartitionKey) != "other" || aws.ToString(e.ExplicitHashKey) != ehk {
				t.Errorf("plain record keys: %q %v", aws.ToString(e.PartitionKey), aws.ToString(e.ExplicitHashKey))
			}
		}
	}
}

func TestRecordLargerThanAnAggregateGoesAlone(t *testing.T) {
	c := newFakeClient(1)
	p := newProducer(t, c, func(o *Options) { o.Linger, o.RecordTTL = time.Hour, 2*time.Hour })
	var recs []sent
	for i, size := range []int{10, 60000, 10, 10} {
		data := fmt.Sprintf("k/%06d", i) + strings.Repeat("x", size)
		f, err := p.Put(context.Background(), "k", []byte(data))
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, sent{pk: "k", data: data, f: f})
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	checkDelivered(t, c, recs, true)
	for _, e := range c.shards[0].records {
		if len(e.Data) > 51200 && aggregation.IsAggregated(e.Data) {
			t.Errorf("a %d-byte aggregate exceeds AggregationMaxSize", len(e.Data))
		}
	}
	if n := len(c.shards[0].records); n != 3 {
		t.Errorf("stored %d Kinesis records, want 3 (aggregate, large plain, aggregate)", n)
	}
}

func TestPutRefusesInvalidInput(t *testing.T) {
	c := newFakeClient(1)
	p := newProducer(t, c)
	tests := []struct {
		name string
		rec  aggregation.Record
		want error
	}{
		{"data and key over 1 MiB are too large", aggregation.Record{PartitionKey: "k", Data: make([]byte, aggregation.MaxRecordSize)}, ErrRecordTooLarge},
		{"an empty partition key is invalid", aggregation.Record{Data: []byte("x")}, aggregation.ErrInvalidPartitionKey},
		{"a 257-character partition key is invalid", aggregation.Record{PartitionKey: strings.Repeat("é", 257), Data: []byte("x")}, aggregation.ErrInvalidPartitionKey},
		{"a non-numeric explicit hash key is invalid", aggregation.Record{PartitionKey: "k", ExplicitHashKey: "abc", Data: []byte("x")}, aggregation.ErrInvalidExplicitHashKey},
		{"an explicit hash key of 2^128 is invalid", aggregation.Record{PartitionKey: "k", ExplicitHashKey: "340282366920938463463374607431768211456", Data: []byte("x")}, aggregation.ErrInvalidExplicitHashKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := p.PutRecord(context.Background(), tt.rec)
			if !errors.Is(err, tt.want) || f != nil {
				t.Errorf("PutRecord = %v, %v; want %v", f, err, tt.want)
			}
		})
	}
	if f, err := p.Put(context.Background(), "k", make([]byte, aggregation.MaxRecordSize-1)); err != nil {
		t.Errorf("a record of exactly 1 MiB with its key was refused: %v", err)
	} else if _, err := f.Wait(context.Background()); err != nil {
		t.Errorf("a record of exactly 1 MiB failed: %v", err)
	}
	if st := p.Stats(); st.UserRecordsPut != 1 {
		t.Errorf("UserRecordsPut = %d, want 1", st.UserRecordsPut)
	}
}

func TestNewValidates(t *testing.T) {
	c := newFakeClient(1)
	tests := []struct {
		name string
		opt  func(*Options)
	}{
		{"more than 500 records per call", func(o *Options) { o.CollectionMaxCount = 501 }},
		{"more than 10 MiB per call", func(o *Options) { o.CollectionMaxSize = MaxLargePutRecordsSize + 1 }},
		{"aggregates over 1 MiB", func(o *Options) { o.AggregationMaxSize = 1<<20 + 1 }},
		{"no connections", func(o *Options) { o.MaxConnections = 0 }},
		{"a zero TTL", func(o *Options) { o.RecordTTL = 0 }},
		{"a negative linger", func(o *Options) { o.Linger = -1 }},
		{"a linger as long as the TTL", func(o *Options) { o.Linger, o.RecordTTL = time.Second, time.Second }},
		{"a linger past the TTL", func(o *Options) { o.Linger, o.RecordTTL = 600*time.Millisecond, 100*time.Millisecond }},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			if p, err := New(context.Background(), c, "s", tt.opt); err == nil {
				p.Close()
				t.Error("New accepted it")
			}
		})
	}
	t.Run("a missing stream is reported as ResourceNotFound", func(t *testing.T) {
		c := newFakeClient(1)
		c.listErr = func(int) error { return &types.ResourceNotFoundException{Message: aws.String("no stream")} }
		_, err := New(context.Background(), c, "gone")
		var nf *types.ResourceNotFoundException
		if !errors.As(err, &nf) {
			t.Errorf("New = %v, want a ResourceNotFoundException", err)
		}
	})
}

// failing returns a script failing the entries at the given indexes of the
// given calls with code.
func failing(code string, plan map[int][]int) func(context.Context, int, *kinesis.PutRecordsInput) ([]string, error) {
	return func(_ context.Context, n int, in *kinesis.PutRecordsInput) ([]string, error) {
		codes := make([]string, len(in.Records))
		for _, i := range plan[n] {
			if i < len(codes) {
				codes[i] = code
			}
		}
		return codes, nil
	}
}

func TestOnlyFailedEntriesAreRetried(t *testing.T) {
	for _, code := range []string{"ProvisionedThroughputExceededException", "InternalFailure", "KMSThrottlingException"} {
		t.Run(code+" is retried alone", func(t *testing.T) {
			c := newFakeClient(1)
			var mu sync.Mutex
			var sizes []int
			fail := failing(code, map[int][]int{1: {1}})
			c.script = func(ctx context.Context, n int, in *kinesis.PutRecordsInput) ([]string, error) {
				mu.Lock()
				sizes = append(sizes, len(in.Records))
				mu.Unlock()
				return fail(ctx, n, in)
			}
			p := newProducer(t, c, func(o *Options) { o.AggregationEnabled = false; o.Linger, o.RecordTTL = time.Hour, 2*time.Hour })
			recs := putAll(t, p, 3, 3)
			if err := p.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			res := waitAll(t, recs)
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			checkDelivered(t, c, recs, false)
			if fmt.Sprint(sizes) != "[3 1]" {
				t.Errorf("call sizes %v, want [3 1]", sizes)
			}
			for i, r := range res {
				want := 1
				if i == 1 {
					want = 2
				}
				if len(r.Attempts) != want {
					t.Errorf("record %d: %d attempts, want %d", i, len(r.Attempts), want)
				}
			}
			if a := res[1].Attempts; a[0].ErrorCode != code || a[1].ErrorCode != "" {
				t.Errorf("attempts of the retried record: %+v", a)
			}
			st := p.Stats()
			if st.Retries != 1 || st.RetriesByCode[code] != 1 || st.KinesisRecordsSent != 4 {
				t.Errorf("stats: %+v", st)
			}
			if wantThrottles := uint64(map[bool]int{true: 1}[code == "ProvisionedThroughputExceededException"]); st.Throttles != wantThrottles {
				t.Errorf("Throttles = %d, want %d", st.Throttles, wantThrottles)
			}
		})
	}
}

func TestThrottlingThenSuccess(t *testing.T) {
	c := newFakeClient(2)
	all := func(n int) []int {
		var idx []int
		for i := range 500 {
			idx = append(idx, i)
		}
		return idx
	}
	c.script = failing("ProvisionedThroughputExceededException", map[int][]int{1: all(1), 2: all(2), 3: all(3)})
	p := newProducer(t, c)
	recs := putAll(t, p, 1000, 20)
	res := waitAll(t, recs)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	checkDelivered(t, c, recs, false)
	st := p.Stats()
	if st.Throttles == 0 || st.RetriesByCode["ProvisionedThroughputExceededException"] == 0 {
		t.Errorf("stats: %+v", st)
	}
	retried := 0
	for _, r := range res {
		if len(r.Attempts) > 1 {
			retried++
			if r.Attempts[0].ErrorCode != "ProvisionedThroughputExceededException" {
				t.Errorf("first attempt code %q", r.Attempts[0].ErrorCode)
			}
		}
	}
	if retried == 0 {
		t.Error("no record shows a retry")
	}
}

func TestNonRetryableErrorsFailAtOnce(t *testing.T) {
	tests := []struct {
		name   string
		script func(context.Context, int, *kinesis.PutRecordsInput) ([]string, error)
		code   string
	}{
		{"an entry refused as invalid fails", failing("InvalidArgumentException", map[int][]int{1: {0}}), "InvalidArgumentException"},
		{"a call refused for access fails", func(context.Context, int, *kinesis.PutRecordsInput) ([]string, error) {
			return nil, &types.AccessDeniedException{Message: aws.String("denied")}
		}, "AccessDeniedException"},
		{"a call refused by KMS fails", func(context.Context, int, *kinesis.PutRecordsInput) ([]string, error) {
			return nil, &types.KMSAccessDeniedException{Message: aws.String("no key")}
		}, "KMSAccessDeniedException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFakeClient(1)
			c.script = tt.script
			p := newProducer(t, c)
			f, err := p.Put(context.Background(), "k", []byte("x"))
			if err != nil {
				t.Fatal(err)
			}
			_, err = f.Wait(context.Background())
			var re *RecordError
			if !errors.As(err, &re) {
				t.Fatalf("Wait = %v, want a *RecordError", err)
			}
			if re.Code != tt.code || re.Retryable || len(re.Attempts) != 1 || errors.Is(err, ErrRecordExpired) {
				t.Errorf("RecordError %+v", re)
			}
			if st := p.Stats(); st.UserRecordsFailed != 1 || st.Retries != 0 {
				t.Errorf("stats: %+v", st)
			}
		})
	}
}

func TestWholeCallErrorsAreRetried(t *testing.T) {
	tests := []struct {
		name string
		err  error
		code string
	}{
		{"a throttled call", &types.ProvisionedThroughputExceededException{Message: aws.String("slow down")}, "ProvisionedThroughputExceededException"},
		{"KMS throttling", &types.KMSThrottlingException{Message: aws.String("kms")}, "KMSThrottlingException"},
		{"a network error", errors.New("connection reset by peer"), "NetworkError"},
		{"a timeout", context.DeadlineExceeded, "RequestTimeout"},
		{"a missing stream (with a refresh)", &types.ResourceNotFoundException{Message: aws.String("gone")}, "ResourceNotFoundException"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is retried", func(t *testing.T) {
			c := newFakeClient(2)
			c.script = func(_ context.Context, n int, _ *kinesis.PutRecordsInput) ([]string, error) {
				if n <= 2 {
					return nil, tt.err
				}
				return nil, nil
			}
			p := newProducer(t, c)
			recs := putAll(t, p, 200, 10)
			res := waitAll(t, recs)
			if tt.code == "ResourceNotFoundException" {
				for _, lists := 0, 0; lists < 2; _, lists = c.counts() {
					time.Sleep(time.Millisecond) // wait for the refresh the error asked for
				}
			}
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			checkDelivered(t, c, recs, false)
			if a := res[0].Attempts; len(a) < 2 || a[0].ErrorCode != tt.code {
				t.Errorf("attempts %+v, want a first %s", a, tt.code)
			}
			if st := p.Stats(); st.PutRecordsErrors != 2 || st.RetriesByCode[tt.code] == 0 {
				t.Errorf("stats: %+v", st)
			}
		})
	}
}

func TestRecordTTLExpiry(t *testing.T) {
	c := newFakeClient(1)
	c.script = func(_ context.Context, _ int, in *kinesis.PutRecordsInput) ([]string, error) {
		codes := make([]string, len(in.Records))
		for i := range codes {
			codes[i] = "ProvisionedThroughputExceededException"
		}
		return codes, nil
	}
	var log logCounter
	p := newProducer(t, c, func(o *Options) {
		o.RecordTTL = 100 * time.Millisecond
		o.AggregationEnabled = false
		o.Logger = PrintfLogger(&log)
	})
	f, err := p.Put(context.Background(), "k", []byte("doomed"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.Wait(context.Background())
	if !errors.Is(err, ErrRecordExpired) {
		t.Fatalf("Wait = %v, want ErrRecordExpired", err)
	}
	var re *RecordError
	if !errors.As(err, &re) {
		t.Fatalf("%v is not a *RecordError", err)
	}
	calls, _ := c.counts()
	// The history is bounded: every attempt up to eight, else the first
	// three and the last five, and the count of all.
	kept := min(calls, historyFirst+historyLast)
	if re.AttemptCount != calls || res.AttemptCount != calls || len(re.Attempts) != kept || len(res.Attempts) != kept || calls == 0 {
		t.Errorf("%d/%d attempts in the error, %d/%d in the result, %d calls made", len(re.Attempts), re.AttemptCount, len(res.Attempts), res.AttemptCount, calls)
	}
	for _, a := range re.Attempts {
		if a.ErrorCode != "ProvisionedThroughputExceededException" {
			t.Errorf("attempt %+v", a)
		}
	}
	if re.Code != "ProvisionedThroughputExceededException" || !re.Retryable {
		t.Errorf("RecordError %+v", re)
	}
	if st := p.Stats(); st.UserRecordsExpired != 1 || st.UserRecordsFailed != 1 {
		t.Errorf("stats: %+v", st)
	}
	if log.warnings() == 0 {
		t.Error("the expiry was not logged")
	}
}

// logCounter counts log lines by level.
type logCounter struct {
	mu   sync.Mutex
	warn int
}

func (l *logCounter) Debugf(string, ...any) {}
func (l *logCounter) Infof(string, ...any)  {}
func (l *logCounter) Warnf(string, ...any)  { l.mu.Lock(); l.warn++; l.mu.Unlock() }
func (l *logCounter) Errorf(string, ...any) { l.mu.Lock(); l.warn++; l.mu.Unlock() }
func (l *logCounter) warnings() int         { l.mu.Lock(); defer l.mu.Unlock(); return l.warn }

func TestOrderedKeepsKeyOrderAcrossRetries(t *testing.T) {
	for _, agg := range []bool{true, false} {
		t.Run(fmt.Sprintf("aggregation %v", agg), func(t *testing.T) {
			c := newFakeClient(3)
			var mu sync.Mutex
			violations := 0
			c.script = func(_ context.Context, n int, in *kinesis.PutRecordsInput) ([]string, error) {
				shards := map[string]bool{}
				codes := make([]string, len(in.Records))
				for i, e := range in.Records {
					var h aggregation.HashKey
					if e.ExplicitHashKey != nil {
						h = mustHash(*e.ExplicitHashKey)
					} else {
						h = aggregation.PartitionKeyHash(*e.PartitionKey)
					}
					id := c.ownerOf(h)
					if shards[id] {
						mu.Lock()
						violations++
						mu.Unlock()
					}
					shards[id] = true
					if (n+i)%3 == 0 {
						codes[i] = []string{"InternalFailure", "ProvisionedThroughputExceededException"}[n%2]
					}
				}
				return codes, nil
			}
			p := newProducer(t, c, func(o *Options) {
				o.Ordered = true
				o.AggregationEnabled = agg
				o.AggregationMaxSize = 2000
			})
			recs := putAll(t, p, 1500, 12)
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			checkDelivered(t, c, recs, true)
			if violations != 0 {
				t.Errorf("%d calls carried two Kinesis records of one shard", violations)
			}
			if st := p.Stats(); st.Retries == 0 {
				t.Errorf("no retries happened: %+v", st)
			}
		})
	}
}

func TestUnorderedRetriesLoseNothing(t *testing.T) {
	c := newFakeClient(3)
	c.script = func(_ context.Context, n int, in *kinesis.PutRecordsInput) ([]string, error) {
		codes := make([]string, len(in.Records))
		for i := range codes {
			if (n*7+i)%4 == 0 {
				codes[i] = "InternalFailure"
			}
		}
		return codes, nil
	}
	p := newProducer(t, c, func(o *Options) { o.AggregationMaxSize = 1500; o.MaxConnections = 4 })
	recs := putAll(t, p, 3000, 30)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	checkDelivered(t, c, recs, false)
}

func TestWrongShardRefreshesAndReroutes(t *testing.T) {
	for _, ordered := range []bool{false, true} {
		t.Run(fmt.Sprintf("ordered %v", ordered), func(t *testing.T) {
			c := newFakeClient(2)
			p := newProducer(t, c, func(o *Options) { o.Ordered = ordered; o.Linger, o.RecordTTL = time.Hour, 2*time.Hour })
			before := putAll(t, p, 500, 40)
			if err := p.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			// Split shard 0 behind the producer's back: its map is now stale.
			mid := mustHash("85070591730234615865843651857942052864") // 2^126
			c.split(0, mid, 2)
			after := putAllFrom(t, p, 500, 500, 40)
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			recs := append(before, after...)
			checkDelivered(t, c, recs, ordered)
			for _, r := range recs {
				res, _ := r.f.Wait(context.Background())
				if want := c.ownerOf(aggregation.PartitionKeyHash(r.pk)); res.ShardID != want && res.ShardID != "shardId-000000000000" {
					t.Errorf("record %s on %s, owner %s", r.data, res.ShardID, want)
				}
			}
			st := p.Stats()
			if st.WrongShard == 0 || st.ShardMapRefreshes < 2 || st.Shards != 3 {
				t.Errorf("stats: %+v", st)
			}
		})
	}
}

func TestBackpressure(t *testing.T) {
	t.Run("Put blocks when full until its context ends", func(t *testing.T) {
		c := newFakeClient(1)
		release := make(chan struct{})
		c.script = func(ctx context.Context, _ int, _ *kinesis.PutRecordsInput) ([]string, error) {
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return nil, nil
		}
		p := newProducer(t, c, func(o *Options) { o.MaxBufferedRecords = 2; o.Linger = 0 })
		recs := putAll(t, p, 2, 2)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if f, err := p.Put(ctx, "k", []byte("x")); !errors.Is(err, context.Canceled) || f != nil {
			t.Fatalf("Put on a full buffer with a cancelled context = %v, %v", f, err)
		}
		if st := p.Stats(); st.BufferedRecords != 2 {
			t.Errorf("BufferedRecords = %d, want 2", st.BufferedRecords)
		}
		done := make(chan *Future)
		go func() {
			f, err := p.Put(context.Background(), "key-0", []byte("key-0/000002"))
			if err != nil {
				t.Error(err)
			}
			done <- f
		}()
		close(release)
		f := <-done
		recs = append(recs, sent{pk: "key-0", data: "key-0/000002", f: f})
		waitAll(t, recs)
	})
	t.Run("FailWhenFull refuses at once", func(t *testing.T) {
		c := newFakeClient(1)
		release := make(chan struct{})
		c.script = func(ctx context.Context, _ int, _ *kinesis.PutRecordsInput) ([]string, error) {
			<-release
			return nil, nil
		}
		p := newProducer(t, c, func(o *Options) { o.MaxBufferedBytes = 100; o.FailWhenFull = true })
		if _, err := p.Put(context.Background(), "k", make([]byte, 60)); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Put(context.Background(), "k", make([]byte, 60)); !errors.Is(err, ErrBufferFull) {
			t.Errorf("second Put = %v, want ErrBufferFull", err)
		}
		if _, err := p.Put(context.Background(), "k", make([]byte, 30)); err != nil {
			t.Errorf("a Put that fits was refused: %v", err)
		}
		close(release)
	})
	t.Run("the buffer never shows more than its bounds under concurrent Puts", func(t *testing.T) {
		c := newFakeClient(2)
		c.script = func(ctx context.Context, _ int, _ *kinesis.PutRecordsInput) ([]string, error) {
			time.Sleep(time.Millisecond) // keep the buffer full for a while
			return nil, nil
		}
		const maxRecs, maxBytes = 50, 2000
		p := newProducer(t, c, func(o *Options) {
			o.MaxBufferedRecords = maxRecs
			o.MaxBufferedBytes = maxBytes
			o.Linger = time.Millisecond
		})
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := p.Put(context.Background(), fmt.Sprintf("g%d-%d", g, i%7), make([]byte, 30)); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		var peakRecs, peakBytes int64
		for range 20000 {
			st := p.Stats()
			peakRecs, peakBytes = max(peakRecs, st.BufferedRecords), max(peakBytes, st.BufferedBytes)
		}
		close(stop)
		wg.Wait()
		if peakRecs > maxRecs || peakBytes > maxBytes {
			t.Errorf("buffer peaked at %d records and %d bytes, bounds %d and %d", peakRecs, peakBytes, maxRecs, maxBytes)
		}
		if peakRecs == 0 {
			t.Error("no record was ever buffered: the test exercised nothing")
		}
	})
}

// TestACallbackThatPutsIntoAFullBufferDoesNotHangTheSender: a PutAsync
// callback may Put, and with the buffer full the room of its own record is
// what it waits for. That room is back before the callback runs: were it
// given back after, the only sender would wait in the callback for itself,
// and with a shared pool hold up every producer of the pool.
func TestACallbackThatPutsIntoAFullBufferDoesNotHangTheSender(t *testing.T) {
	tests := []struct {
		name string
		// two returns the producer whose callback Puts and the producer
		// it Puts into; their buffer holds one record.
		two func(t *testing.T) (from, into *Producer)
	}{
		{"the records bound", func(t *testing.T) (*Producer, *Producer) {
			p := newProducer(t, newFakeClient(1), func(o *Options) { o.MaxConnections = 1; o.MaxBufferedRecords = 1 })
			return p, p
		}},
		{"the bytes bound", func(t *testing.T) (*Producer, *Producer) {
			p := newProducer(t, newFakeClient(1), func(o *Options) { o.MaxConnections = 1; o.MaxBufferedBytes = 12 })
			return p, p
		}},
		{"a pool's bound, shared with another producer", func(t *testing.T) (*Producer, *Producer) {
			pool, err := NewPool(func(o *PoolOptions) { o.MaxConnections = 1; o.MaxBufferedRecords = 1 })
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = pool.Close() })
			a := newProducer(t, newFakeClient(1), func(o *Options) { o.Pool = pool })
			b := newProducer(t, newFakeClient(2), func(o *Options) { o.Pool = pool })
			return a, b
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			from, into := tt.two(t)
			type put struct {
				f   *Future
				err error
			}
			followUp := make(chan put, 1)
			from.PutAsync(context.Background(), aggregation.Record{PartitionKey: "k", Data: []byte("first")}, func(_ Result, err error) {
				if err != nil {
					followUp <- put{err: fmt.Errorf("first record: %w", err)}
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				f, err := into.Put(ctx, "k", []byte("second")) // 7 bytes: the first's 6 and these exceed 12
				followUp <- put{f, err}
			})
			r := <-followUp
			if r.err != nil {
				t.Fatalf("Put from the callback of a resolved record into a full buffer: %v", r.err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := r.f.Wait(ctx); err != nil {
				t.Errorf("the record put from the callback: %v", err)
			}
		})
	}
}

// TestFlushAndCloseWaitForTheCallbacksOfTheirRecords: a record's room is back
// while its callback runs, but Flush and Close return only once the callback
// has returned: every record accepted before them has its result. The
// producer is on a shared pool, whose senders its Close does not join.
func TestFlushAndCloseWaitForTheCallbacksOfTheirRecords(t *testing.T) {
	tests := []struct {
		name string
		wait func(p *Producer) error
	}{
		{"Flush", func(p *Producer) error { return p.Flush(context.Background()) }},
		{"Close", func(p *Producer) error { return p.Close() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool, err := NewPool()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = pool.Close() })
			p := newProducer(t, newFakeClient(1), func(o *Options) { o.Pool = pool; o.Linger, o.RecordTTL = time.Hour, 2*time.Hour })
			entered, hold := make(chan struct{}), make(chan struct{})
			p.PutAsync(context.Background(), aggregation.Record{PartitionKey: "k", Data: []byte("x")}, func(_ Result, err error) {
				if err != nil {
					t.Error(err)
				}
				close(entered)
				<-hold
			})
			errc := make(chan error, 1)
			go func() { errc <- tt.wait(p) }()
			<-entered
			if st := p.Stats(); st.BufferedRecords != 0 || st.BufferedBytes != 0 {
				t.Errorf("while the callback runs, %d records and %d bytes buffered; want its room given back", st.BufferedRecords, st.BufferedBytes)
			}
			select {
			case err := <-errc:
				t.Errorf("%s returned (%v) while the callback of its record still ran", tt.name, err)
				close(hold)
				return
			case <-time.After(100 * time.Millisecond):
			}
			close(hold)
			if err := <-errc; err != nil {
				t.Error(err)
			}
		})
	}
}

func TestFlush(t *testing.T) {
	t.Run("Flush sends at once and waits for every result", func(t *testing.T) {
		c := newFakeClient(3)
		p := newProducer(t, c, func(o *Options) { o.Linger, o.RecordTTL = time.Hour, 2*time.Hour })
		recs := putAll(t, p, 700, 9)
		if err := p.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		for i, r := range recs {
			select {
			case <-r.f.Done():
			default:
				t.Fatalf("record %d not done after Flush", i)
			}
		}
		if st := p.Stats(); st.BufferedRecords != 0 {
			t.Errorf("BufferedRecords = %d after Flush", st.BufferedRecords)
		}
	})
	t.Run("Flush returns the context's error when it ends first", func(t *testing.T) {
		c := newFakeClient(1)
		release := make(chan struct{})
		c.script = func(ctx context.Context, _ int, _ *kinesis.PutRecordsInput) ([]string, error) {
			<-release
			return nil, nil
		}
		p := newProducer(t, c)
		putAll(t, p, 3, 1)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := p.Flush(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("Flush = %v", err)
		}
		close(release)
		if err := p.Flush(context.Background()); err != nil {
			t.Errorf("second Flush = %v", err)
		}
	})
}

func TestClose(t *testing.T) {
	t.Run("Put after Close returns ErrClosed and Close is idempotent", func(t *testing.T) {
		defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
		c := newFakeClient(2)
		p, err := New(context.Background(), c, "s", fast, func(o *Options) { o.Linger, o.RecordTTL = time.Hour, 2*time.Hour })
		if err != nil {
			t.Fatal(err)
		}
		recs := putAll(t, p, 100, 5)
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		for i, r := range recs {
			select {
			case <-r.f.Done():
			default:
				t.Fatalf("record %d has no result after Close", i)
			}
		}
		if _, err := p.Put(context.Background(), "k", []byte("late")); !errors.Is(err, ErrClosed) {
			t.Errorf("Put after Close = %v", err)
		}
		if err := p.Flush(context.Background()); err != nil {
			t.Errorf("Flush after Close = %v", err)
		}
		checkDelivered(t, c, recs, true)
	})
	t.Run("concurrent Puts and Closes never lose a record", func(t *testing.T) {
		defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
		for round := range 20 {
			c := newFakeClient(3)
			p, err := New(context.Background(), c, "s", fast)
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			var accepted []*Future
			var wg sync.WaitGroup
			for g := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; ; i++ {
						f, err := p.Put(context.Background(), fmt.Sprintf("k%d", i%7), []byte(fmt.Sprintf("%d-%d", g, i)))
						if errors.Is(err, ErrClosed) {
							return
						}
						if err != nil {
							t.Error(err)
							return
						}
						mu.Lock()
						accepted = append(accepted, f)
						mu.Unlock()
					}
				}()
			}
			for range round * 10 {
				p.Stats()
			}
			var cw sync.WaitGroup
			for range 3 {
				cw.Add(1)
				go func() { defer cw.Done(); _ = p.Close() }()
			}
			cw.Wait()
			wg.Wait()
			for _, f := range accepted {
				select {
				case <-f.Done():
					if _, err := f.Wait(context.Background()); err != nil {
						t.Fatalf("accepted record failed: %v", err)
					}
				default:
					t.Fatal("an accepted record has no result after Close")
				}
			}
			st := p.Stats()
			if st.UserRecordsSucceeded != uint64(len(accepted)) || st.UserRecordsPut != uint64(len(accepted)) || st.BufferedRecords != 0 {
				t.Fatalf("round %d: %d accepted, stats %+v", round, len(accepted), st)
			}
		}
	})
	t.Run("Shutdown fails what it cannot deliver when its context ends", func(t *testing.T) {
		defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
		c := newFakeClient(1)
		c.script = func(ctx context.Context, _ int, _ *kinesis.PutRecordsInput) ([]string, error) {
			<-ctx.Done() // a hung endpoint
			return nil, ctx.Err()
		}
		p, err := New(context.Background(), c, "s", fast)
		if err != nil {
			t.Fatal(err)
		}
		recs := putAll(t, p, 50, 5)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := p.Shutdown(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("Shutdown = %v", err)
		}
		for i, r := range recs {
			_, err := r.f.Wait(context.Background())
			if !errors.Is(err, ErrClosed) {
				t.Fatalf("record %d: %v, want ErrClosed", i, err)
			}
		}
		if err := p.Close(); !errors.Is(err, context.Canceled) {
			t.Errorf("Close after Shutdown = %v, want the first result", err)
		}
	})
}

func TestStatsAreSafeForConcurrentReaders(t *testing.T) {
	c := newFakeClient(2)
	p := newProducer(t, c)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last uint64
			for {
				select {
				case <-stop:
					return
				default:
				}
				st := p.Stats()
				if st.UserRecordsPut < last {
					t.Error("UserRecordsPut went down")
					return
				}
				last = st.UserRecordsPut
			}
		}()
	}
	recs := putAll(t, p, 2000, 10)
	waitAll(t, recs)
	close(stop)
	wg.Wait()
	st := p.Stats()
	if st.UserRecordsPut != 2000 || st.UserRecordsSucceeded != 2000 || st.PutRecordsCalls == 0 || st.UserRecordsPerKinesisRecord() <= 1 {
		t.Errorf("stats: %+v", st)
	}
}
