package producer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"go.uber.org/goleak"

	"github.com/kplgo/kpl/aggregation"
)

// stubbornClient is a fake whose PutRecords ignores its context and blocks
// until released: a client that Shutdown cannot cancel.
type stubbornClient struct {
	*fakeClient
	release chan struct{}
	entered chan struct{}
}

func newStubbornClient() *stubbornClient {
	return &stubbornClient{fakeClient: newFakeClient(1), release: make(chan struct{}), entered: make(chan struct{}, 100)}
}

func (c *stubbornClient) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, o ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	c.entered <- struct{}{}
	<-c.release
	return c.fakeClient.PutRecords(context.Background(), in, o...)
}

// shutdownBy calls p.Shutdown with a context of the given timeout: it must
// return that context's error, within seconds at most, whatever the calls
// in flight do.
func shutdownBy(t *testing.T, p *Producer, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Shutdown(ctx) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Shutdown = %v, want its context's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Shutdown did not return 10 s after its %v context ended", timeout)
	}
}

func TestShutdownReturnsAlthoughTheClientIgnoresItsContext(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	c := newStubbornClient()
	p, err := New(context.Background(), c, "s", fast)
	if err != nil {
		t.Fatal(err)
	}
	f, err := p.Put(context.Background(), "k", []byte("stuck"))
	if err != nil {
		t.Fatal(err)
	}
	<-c.entered
	shutdownBy(t, p, 50*time.Millisecond)
	_, err = f.Wait(context.Background())
	var re *RecordError
	if !errors.Is(err, ErrClosed) || !errors.As(err, &re) {
		t.Fatalf("the record of the abandoned call: %v, want ErrClosed in a *RecordError", err)
	}
	// The call was in flight: it may have stored the record, and says so.
	if !re.MaybeStored || re.AttemptCount != 1 || len(re.Attempts) != 1 || re.Attempts[0].ErrorCode != "ProducerClosed" {
		t.Errorf("abandoned in flight: MaybeStored %v, %d attempt(s) %+v; want true and one ProducerClosed attempt", re.MaybeStored, re.AttemptCount, re.Attempts)
	}
	close(c.release) // the client returns at last; its answer is ignored
	time.Sleep(50 * time.Millisecond)
	if st := p.Stats(); st.UserRecordsSucceeded != 0 || st.UserRecordsFailed != 1 {
		t.Errorf("the late answer changed the outcome: %+v", st)
	}
}

func TestShutdownBehindACloseHonoursItsOwnContext(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	c := newStubbornClient()
	p, err := New(context.Background(), c, "s", fast)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Put(context.Background(), "k", []byte("stuck")); err != nil {
		t.Fatal(err)
	}
	<-c.entered
	closed := make(chan error, 1)
	go func() { closed <- p.Close() }()
	time.Sleep(10 * time.Millisecond) // Close is running and waits
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := p.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown behind Close = %v, want its context's error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Shutdown behind Close took %v: it ignored its context", d)
	}
	if err := <-closed; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close = %v, want the result of the shutdown that ended it", err)
	}
	close(c.release)
	time.Sleep(50 * time.Millisecond)
}

// statsLogger calls Stats from every log line, as a logger that adds the
// producer's state to its lines would.
type statsLogger struct {
	p     atomic.Pointer[Producer]
	lines atomic.Int64
}

func (l *statsLogger) Log(_ context.Context, _ slog.Level, _ string, _ ...any) {
	if p := l.p.Load(); p != nil {
		_ = p.Stats()
	}
	l.lines.Add(1)
}

func TestALoggerMayCallStats(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	c := newFakeClient(2)
	c.script = failing("ProvisionedThroughputExceededException", map[int][]int{1: {0}, 2: {0}, 3: {0}})
	c.split(0, mustHash("85070591730234615865843651857942052864"), 2) // the map is stale: wrong-shard results
	log := &statsLogger{}
	p, err := New(context.Background(), c, "s", fast, func(o *Options) { o.Logger = log; o.RecordTTL = 200 * time.Millisecond })
	if err != nil {
		t.Fatal(err)
	}
	log.p.Store(p)
	recs := putAll(t, p, 300, 40)
	done := make(chan struct{})
	go func() { _ = p.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs: the producer logs while holding a lock that Stats takes")
	}
	for _, r := range recs {
		<-r.f.Done()
	}
	if log.lines.Load() == 0 {
		t.Error("nothing was logged: the test did not test")
	}
}

func TestAResultEntryWithoutShardOrSequenceIsSentAgain(t *testing.T) {
	for _, agg := range []bool{false, true} {
		c := newFakeClient(1)
		var calls atomic.Int64
		inner := c.PutRecords
		client := clientFunc{fakeClient: c, put: func(ctx context.Context, in *kinesis.PutRecordsInput) (*kinesis.PutRecordsOutput, error) {
			if calls.Add(1) == 1 {
				// A success-looking entry that says nothing of where the
				// record went.
				return &kinesis.PutRecordsOutput{Records: make([]types.PutRecordsResultEntry, len(in.Records))}, nil
			}
			return inner(ctx, in)
		}}
		p := newProducer(t, client, func(o *Options) { o.AggregationEnabled = agg })
		recs := putAll(t, p, 5, 1)
		for _, r := range waitAll(t, recs) {
			if r.ShardID == "" || r.SequenceNumber == "" {
				t.Errorf("aggregation %v: a record succeeded without shard or sequence number: %+v", agg, r)
			}
		}
		if calls.Load() < 2 {
			t.Errorf("aggregation %v: the record was not sent again", agg)
		}
	}
}

// clientFunc overrides the fake's PutRecords.
type clientFunc struct {
	*fakeClient
	put func(context.Context, *kinesis.PutRecordsInput) (*kinesis.PutRecordsOutput, error)
}

func (c clientFunc) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	return c.put(ctx, in)
}

func TestFlushDoesNotForceRecordsPutWhileItWaits(t *testing.T) {
	c := newStubbornClient()
	p, err := New(context.Background(), c, "s", fast, func(o *Options) { o.Linger, o.RecordTTL = time.Hour, 2*time.Hour })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Put(context.Background(), "k", []byte("before")); err != nil {
		t.Fatal(err)
	}
	flushed := make(chan error, 1)
	go func() { flushed <- p.Flush(context.Background()) }()
	<-c.entered // the flush's call is in flight
	for range 100 {
		if _, err := p.Put(context.Background(), "k", []byte("during")); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(20 * time.Millisecond)
	select {
	case <-c.entered:
		t.Fatal("records put while Flush waits were sent at once: a loop of Flushes would seal every aggregate on every pass")
	default:
	}
	c.release <- struct{}{}
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.PutRecordsCalls != 1 || st.BufferedRecords != 100 {
		t.Errorf("after the flush: %d calls, %d buffered; want 1 call and the 100 later records lingering", st.PutRecordsCalls, st.BufferedRecords)
	}
	close(c.release)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.UserRecordsSucceeded != 101 || st.KinesisRecordsSucceeded != 2 {
		t.Errorf("after Close: %+v; want 101 records in 2 Kinesis records", st)
	}
}

func TestPutAsyncAllocatesOnlyItsRecord(t *testing.T) {
	c := newCountingClient(1)
	p := newProducer(t, c, func(o *Options) { o.Linger, o.RecordTTL = time.Hour, 2*time.Hour })
	ctx := context.Background()
	data := []byte("0123456789")
	done := func(Result, error) {}
	p.PutAsync(ctx, aggregation.Record{PartitionKey: "k", Data: data}, done) // warm up
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// Results are delivered with their call; count allocations across
	// whole flushed batches, per record.
	const n = 200
	allocs := testing.AllocsPerRun(5, func() {
		for range n {
			p.PutAsync(ctx, aggregation.Record{PartitionKey: "k", Data: data}, done)
		}
		if err := p.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}) / n
	if allocs > 1.5 {
		t.Errorf("%.2f allocations per PutAsync record, want about 1 (the record itself)", allocs)
	}
}

// landOnAShardClosedAgain splits c's only shard in halves, then the lower
// half, shard 1, again, and stores entries on shard 1 as if it were still
// open (only the first entry with once): a landing whose range neither
// shard map knows, only the stream's closed shards. It returns shard 1.
func landOnAShardClosedAgain(c *fakeClient, once bool) *fakeShard {
	c.split(0, mustHash("170141183460469231731687303715884105728"), 1) // 0 closes: 1 = [0, 2^127), 2 = [2^127, max]
	c.split(0, mustHash("85070591730234615865843651857942052864"), 3)  // 1 closes too: 3 = [0, 2^126), 4 = [2^126, 2^127)
	landed := c.shardByID("shardId-000000000001")
	var done atomic.Bool
	c.mu.Lock()
	c.route = func(aggregation.HashKey) *fakeShard {
		if once && !done.CompareAndSwap(false, true) {
			return nil
		}
		return landed
	}
	c.mu.Unlock()
	return landed
}

// putInRange puts n records whose keys hash into shard s's range.
func putInRange(t *testing.T, p *Producer, s *fakeShard, n int) []*Future {
	t.Helper()
	var futures []*Future
	for i := 0; len(futures) < n; i++ {
		key := fmt.Sprintf("key-%d", i)
		if h := aggregation.PartitionKeyHash(key); h.Cmp(s.start) < 0 || h.Cmp(s.end) > 0 {
			continue
		}
		f, err := p.Put(context.Background(), key, []byte(key))
		if err != nil {
			t.Fatal(err)
		}
		futures = append(futures, f)
	}
	return futures
}

// storedCount returns the user records c stored.
func storedCount(c *fakeClient) int {
	n := 0
	for _, urs := range c.stored() {
		n += len(urs)
	}
	return n
}

// TestAnAggregateStoredOnAShardClosedAgainIsNotSentTwice: an aggregate
// lands on a shard the map does not know (a child of a split), and that
// shard is split again before the refresh lists the stream, so the new map
// does not know it either. Its range is still the service's answer: every
// user record lies in it, a KCL reader keeps the aggregate, and sending
// the records again would store each twice. The producer lists the closed
// shards to find that range.
func TestAnAggregateStoredOnAShardClosedAgainIsNotSentTwice(t *testing.T) {
	c := newFakeClient(1)
	p := newProducer(t, c, func(o *Options) { o.Linger, o.RecordTTL = time.Hour, 2*time.Hour })
	landed := landOnAShardClosedAgain(c, false)
	futures := putInRange(t, p, landed, 20)
	if err := p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, f := range futures {
		res, err := f.Wait(context.Background())
		if err != nil || res.ShardID != landed.id || !res.Aggregated {
			t.Fatalf("result %+v, %v; want stored in an aggregate on %s", res, err, landed.id)
		}
	}
	if stored := storedCount(c); stored != len(futures) {
		t.Fatalf("%d user records stored for %d put: sent again though the aggregate was whole where it landed", stored, len(futures))
	}
	if st := p.Stats(); st.WrongShard == 0 {
		t.Errorf("no wrong-shard landing counted: %+v", st)
	}
}

// An aggregate whose wrong-shard result comes in while a refresh runs, after
// the refresh looked for landing shards it does not know, on a child created
// since: judged by that refresh it counts as not whole and is sent again,
// although it is whole where it landed. It must wait for the next refresh.
func TestAWrongShardResultDuringARefreshWaitsForTheNext(t *testing.T) {
	c := newFakeClient(1)
	p := newProducer(t, c, func(o *Options) {
		o.Linger, o.RecordTTL = time.Hour, 2*time.Hour
		o.AggregationMaxCount = 2 // A and B: two aggregates of two records
		o.CollectionMaxCount = 1  // in two calls
	})
	// Successful calls first, so that the call window allows two at once.
	for i := 0; p.window.allowed() < 2; i++ {
		if i == 10 {
			t.Fatalf("the call window allows %d calls after 10 successful ones", p.window.allowed())
		}
		if _, err := p.Put(context.Background(), "warm", []byte("up")); err != nil {
			t.Fatal(err)
		}
		if err := p.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	warm := len(c.stored()["shardId-000000000000"])
	half := mustHash("170141183460469231731687303715884105728")   // 2^127
	quarter := mustHash("85070591730234615865843651857942052864") // 2^126
	c.split(0, half, 1)                                           // 0 closes: 1 = [0, 2^127), 2 = [2^127, max]

	var keys []string // keys of [0, 2^126): in 0, 1 and 3 alike
	for i := 0; len(keys) < 4; i++ {
		if k := fmt.Sprintf("key-%d", i); aggregation.PartitionKeyHash(k).Cmp(quarter) < 0 {
			keys = append(keys, k)
		}
	}
	aHash := aggregation.PartitionKeyHash(keys[0]) // aggregate A's explicit hash key
	var bShard atomic.Pointer[fakeShard]
	c.mu.Lock()
	c.route = func(h aggregation.HashKey) *fakeShard {
		if h != aHash {
			return bShard.Load() // B on 3, once it exists
		}
		return nil
	}
	c.mu.Unlock()
	// Both calls in flight at once: A returns once B has arrived, B once
	// the refresh lets it.
	bArrived, releaseB := make(chan struct{}), make(chan struct{})
	var arrived sync.Once
	c.script = func(ctx context.Context, _ int, in *kinesis.PutRecordsInput) ([]string, error) {
		if *in.Records[0].ExplicitHashKey == aHash.String() {
			<-bArrived
		} else {
			arrived.Do(func() { close(bArrived) })
			<-releaseB
		}
		return nil, nil
	}
	var once sync.Once
	hook := func() {
		once.Do(func() {
			// The refresh has listed 1 and 2, and found A's landing shard 1
			// among them. Now 1 splits, and B lands on its child 3.
			c.split(0, quarter, 3) // 1 closes: 3 = [0, 2^126), 4 = [2^126, 2^127)
			bShard.Store(c.shardByID("shardId-000000000003"))
			close(releaseB)
			for landed := false; !landed; time.Sleep(time.Millisecond) {
				p.mapMu.Lock()
				landed = slices.ContainsFunc(p.wrongPending, func(w *wrongShard) bool { return w.shardID == "shardId-000000000003" })
				p.mapMu.Unlock()
			}
		})
	}
	p.testRefreshJudging.Store(&hook)

	var futures []*Future
	for _, k := range keys {
		f, err := p.Put(context.Background(), k, []byte(k))
		if err != nil {
			t.Fatal(err)
		}
		futures = append(futures, f)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		p.mapMu.Lock()
		t.Fatalf("%v; stats %+v, %d pending, retired in flight %d, %d calls", err, p.Stats(), len(p.wrongPending), p.retiredInflight.Load(), c.calls)
	}
	for i, f := range futures {
		res, err := f.Wait(ctx)
		if want := []string{"shardId-000000000001", "shardId-000000000003"}[i/2]; err != nil || res.ShardID != want {
			t.Fatalf("record %d: %+v, %v; want stored on %s", i, res, err, want)
		}
	}
	stored := 0
	for _, urs := range c.stored() {
		stored += len(urs)
	}
	if stored -= warm; stored != len(futures) {
		t.Fatalf("%d user records stored for %d put: an aggregate whole where it landed was sent again", stored, len(futures))
	}
}

// flakyAllShards fails the first ListShards call that lists every shard
// (no AT_LATEST filter): the listing of closed shards a refresh makes when
// a wrong-shard aggregate landed on a shard in neither map.
type flakyAllShards struct {
	*fakeClient
	failed atomic.Int32
	always bool // fail every such listing
}

func (c *flakyAllShards) ListShards(ctx context.Context, in *kinesis.ListShardsInput, o ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	if in.NextToken == nil && (in.ShardFilter == nil || in.ShardFilter.Type != types.ShardFilterTypeAtLatest) && (c.failed.Add(1) == 1 || c.always) {
		return nil, errors.New("simulated ListShards failure")
	}
	return c.fakeClient.ListShards(ctx, in, o...)
}

// TestAWrongShardAggregateWaitsWhenTheClosedShardListingFails: an
// aggregate lands on a shard that was split again before the refresh, so
// that only the listing of closed shards tells its range, and that listing
// fails once. The aggregate waits for the next refresh, which finds it
// whole where it landed; sending it again would store it twice.
func TestAWrongShardAggregateWaitsWhenTheClosedShardListingFails(t *testing.T) {
	for _, ordered := range []bool{false, true} {
		t.Run(fmt.Sprintf("ordered=%v", ordered), func(t *testing.T) { wrongShardAggregateWhenClosedListingFails(t, ordered) })
	}
}

func wrongShardAggregateWhenClosedListingFails(t *testing.T, ordered bool) {
	c := &flakyAllShards{fakeClient: newFakeClient(1)}
	p := newProducer(t, c, func(o *Options) { o.Linger, o.RecordTTL, o.Ordered = time.Hour, 2*time.Hour, ordered })
	landed := landOnAShardClosedAgain(c.fakeClient, true)
	futures := putInRange(t, p, landed, 20)
	if err := p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, f := range futures {
		res, err := f.Wait(context.Background())
		if err != nil || res.ShardID != landed.id {
			t.Errorf("result on %s/%s, %v; want stored on %s", res.ShardID, res.SequenceNumber, err, landed.id)
		}
	}
	if stored := storedCount(c.fakeClient); stored != len(futures) {
		t.Fatalf("%d user records stored for %d put: sent again though the aggregate was whole where it landed (%s), because the closed-shard listing failed once", stored, len(futures), landed.id)
	}
}

// TestAWrongShardAggregateThatExpiresUnjudgedMayBeStored: the closed-shard
// listing keeps failing, so the aggregate waits until its records expire;
// they fail with ErrRecordExpired and MaybeStored, since the aggregate is
// stored where it landed and a reader may keep it.
func TestAWrongShardAggregateThatExpiresUnjudgedMayBeStored(t *testing.T) {
	t.Parallel()
	c := &flakyAllShards{fakeClient: newFakeClient(1), always: true}
	p := newProducer(t, c, func(o *Options) {
		o.Linger, o.RecordTTL = 10*time.Millisecond, 300*time.Millisecond
		o.RefreshBaseDelay, o.RefreshMaxDelay = 20*time.Millisecond, 50*time.Millisecond
	})
	landed := landOnAShardClosedAgain(c.fakeClient, true)
	for _, f := range putInRange(t, p, landed, 5) {
		_, err := f.Wait(context.Background())
		var re *RecordError
		if !errors.Is(err, ErrRecordExpired) || !errors.As(err, &re) || !re.MaybeStored {
			t.Errorf("%v, want ErrRecordExpired with MaybeStored", err)
		}
	}
}
