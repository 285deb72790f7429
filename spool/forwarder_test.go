package spool

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kplgo/kpl/aggregation"
	"github.com/kplgo/kpl/internal/loadgen"
	"github.com/kplgo/kpl/producer"
)

// flakyClient is the counting client with faults: while failing is set
// every call fails with a network error; entries holding a user record
// with partition key badKey (aggregation off) fail with
// InvalidArgumentException. It records how often
// each user record's data was stored.
type flakyClient struct {
	*loadgen.CountingClient
	badKey string

	mu        sync.Mutex
	failing   bool
	failed    int
	delivered map[string]int
}

func newFlakyClient(failing bool, badKey string) *flakyClient {
	return &flakyClient{CountingClient: loadgen.NewCountingClient(2), failing: failing, badKey: badKey, delivered: map[string]int{}}
}

func (c *flakyClient) setFailing(v bool) {
	c.mu.Lock()
	c.failing = v
	c.mu.Unlock()
}

func (c *flakyClient) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, o ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failing {
		c.failed++
		return nil, errors.New("dial tcp 127.0.0.1:4567: connect: connection refused")
	}
	out, err := c.CountingClient.PutRecords(ctx, in, o...)
	if err != nil {
		return nil, err
	}
	failed := int32(0)
	for i, e := range in.Records {
		urs, err := aggregation.Deaggregate(e.Data, aws.ToString(e.PartitionKey), aws.ToString(e.ExplicitHashKey))
		if err != nil {
			return nil, err
		}
		bad := false
		for _, u := range urs {
			bad = bad || c.badKey != "" && u.PartitionKey == c.badKey
		}
		if bad { // a record with an id travels as an aggregate of one
			out.Records[i] = types.PutRecordsResultEntry{ErrorCode: aws.String("InvalidArgumentException"), ErrorMessage: aws.String("refused for the test")}
			failed++
			continue
		}
		for _, u := range urs {
			c.delivered[string(u.Data)]++
		}
	}
	out.FailedRecordCount = aws.Int32(failed)
	return out, nil
}

func (c *flakyClient) count(data string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.delivered[data]
}

// recordingPutter records the ids of the records put.
type recordingPutter struct {
	p   *producer.Producer
	mu  sync.Mutex
	ids map[aggregation.RecordID]int
}

func (r *recordingPutter) PutAsync(ctx context.Context, rec aggregation.Record, done func(producer.Result, error)) {
	r.mu.Lock()
	r.ids[rec.ID]++
	r.mu.Unlock()
	r.p.PutAsync(ctx, rec, done)
}

func newProducer(t *testing.T, c producer.Client, fns ...func(*producer.Options)) *producer.Producer {
	t.Helper()
	base := func(o *producer.Options) {
		o.Linger = 5 * time.Millisecond
		o.RateLimit = 0
		o.RetryBaseDelay = 5 * time.Millisecond
		o.RetryMaxDelay = 20 * time.Millisecond
	}
	p, err := producer.New(context.Background(), c, "stream", append([]func(*producer.Options){base}, fns...)...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// runForwarder starts f and returns a function that stops it (after the
// producer's Shutdown) and returns Run's error.
func runForwarder(t *testing.T, f *Forwarder, p *producer.Producer) func() error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	return func() error {
		cancel()
		sctx, scancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer scancel()
		_ = p.Shutdown(sctx)
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("Forwarder.Run did not return")
			return nil
		}
	}
}

// TestForwarderOutageLongerThanTTL: the client fails every call for longer
// than the producer's RecordTTL. Records expire in the producer, go back to
// the spool and are sent again: once the client recovers, every record is
// delivered and none is dead-lettered.
func TestForwarderOutageLongerThanTTL(t *testing.T) {
	t.Parallel()
	c := newFlakyClient(true, "")
	p := newProducer(t, c, func(o *producer.Options) { o.RecordTTL = 100 * time.Millisecond })
	s := openT(t, t.TempDir())
	defer s.Close()
	f, err := NewForwarder(s, p, func(o *ForwarderOptions) { o.MaxInFlight = 500 })
	if err != nil {
		t.Fatal(err)
	}
	stop := runForwarder(t, f, p)
	const n = 2000
	appendN(t, s, 0, n)
	// Records expire in the producer and come back, while the outage lasts.
	waitFor(t, func() bool { return f.Stats().Returned >= n })
	if st := f.Stats(); st.InFlight > 500 {
		t.Fatalf("%d records in flight, bound 500", st.InFlight)
	}
	c.setFailing(false)
	waitFor(t, func() bool { return s.Stats().Acknowledged == n })
	for i := 0; i < n; i++ {
		if got := c.count(string(rec(i).Data)); got != 1 {
			t.Fatalf("record %d delivered %d times, want 1", i, got)
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	st, ps := s.Stats(), p.Stats()
	if st.DeadLettered != 0 || st.Pending != 0 || ps.UserRecordsExpired == 0 {
		t.Fatalf("spool %+v, producer expired %d: want nothing dead-lettered or pending, and expiries seen", st, ps.UserRecordsExpired)
	}
}

// TestForwarderDeadLetters: failures retrying cannot fix (a per-entry
// InvalidArgumentException, a partition key the producer refuses) go to the
// dead-letter file; everything else is delivered.
func TestForwarderDeadLetters(t *testing.T) {
	t.Parallel()
	c := newFlakyClient(false, "bad")
	p := newProducer(t, c, func(o *producer.Options) { o.AggregationEnabled = false })
	s := openT(t, t.TempDir())
	defer s.Close()
	f, err := NewForwarder(s, p)
	if err != nil {
		t.Fatal(err)
	}
	stop := runForwarder(t, f, p)
	var recs []aggregation.Record
	for i := 0; i < 30; i++ {
		r := rec(i)
		switch i % 10 {
		case 3:
			r.PartitionKey = "bad"
		case 7:
			r.PartitionKey = "" // refused by PutRecord at once
		}
		recs = append(recs, r)
	}
	if _, err := s.AppendBatch(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { st := f.Stats(); return st.Delivered+st.DeadLettered == 30 })
	if st := f.Stats(); st.InFlight != 0 {
		t.Fatalf("forwarder %+v: records in flight with every record resolved", st)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st := s.Stats(); st.DeadLettered != 6 || st.Acknowledged != 24 {
		t.Fatalf("stats %+v, want 6 dead letters and 24 delivered", st)
	}
	if err := s.Close(); err != nil { // dead letters are written by commits
		t.Fatal(err)
	}
	fh, err := os.Open(s.DeadLetterPath())
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	codes := map[string]int{}
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		var d DeadLetterRecord
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			t.Fatal(err)
		}
		codes[d.Code]++
		if d.Code == "InvalidArgumentException" && (d.PartitionKey != "bad" || d.Attempts != 1) {
			t.Fatalf("dead letter %+v, want key bad after 1 attempt", d)
		}
	}
	if codes["InvalidArgumentException"] != 3 || codes["InvalidPartitionKey"] != 3 {
		t.Fatalf("dead-letter codes %v", codes)
	}
}

// TestForwarderRestartKeepsIDs: the producer shuts down during an outage,
// so its records fail with ErrClosed and stay in the spool; after a
// restart, a new producer delivers them with their original ids.
func TestForwarderRestartKeepsIDs(t *testing.T) {
	t.Parallel()
	for _, crash := range []bool{false, true} {
		name := "after a clean stop"
		if crash {
			name = "after a kill with records in the producer"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testRestart(t, crash)
		})
	}
}

func testRestart(t *testing.T, crash bool) {
	dir := t.TempDir()
	c := newFlakyClient(true, "")
	p := newProducer(t, c)
	s := openT(t, dir)
	rp := &recordingPutter{p: p, ids: map[aggregation.RecordID]int{}}
	f, err := NewForwarder(s, rp)
	if err != nil {
		t.Fatal(err)
	}
	stop := runForwarder(t, f, p)
	ids := appendN(t, s, 0, 300)
	waitFor(t, func() bool { return f.Stats().Forwarded == 300 })
	if crash {
		// The process dies: the spool is abandoned with every record
		// handed out and unresolved; the producer dies with it.
		s.crash()
		_ = stop()
	} else {
		if err := stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if st := f.Stats(); st.Returned != 300 || st.Delivered != 0 {
			t.Fatalf("forwarder %+v, want every record returned", st)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}

	c.setFailing(false)
	p2 := newProducer(t, c)
	s = openT(t, dir)
	defer s.Close()
	rp2 := &recordingPutter{p: p2, ids: map[aggregation.RecordID]int{}}
	f2, err := NewForwarder(s, rp2)
	if err != nil {
		t.Fatal(err)
	}
	stop = runForwarder(t, f2, p2)
	waitFor(t, func() bool { return s.Stats().Acknowledged == 300 })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	for i, id := range ids {
		if rp2.ids[id] != 1 {
			t.Fatalf("record %d (%+v) put %d times after the restart, want once with its id", i, id, rp2.ids[id])
		}
		if got := c.count(string(rec(i).Data)); got != 1 {
			t.Fatalf("record %d delivered %d times", i, got)
		}
	}
}

func TestNewForwarderValidation(t *testing.T) {
	t.Parallel()
	s := openT(t, t.TempDir())
	defer s.Close()
	p := newProducer(t, newFlakyClient(false, ""))
	defer p.Close()
	cases := []struct {
		name string
		fn   func(*ForwarderOptions)
	}{
		{"no records in flight", func(o *ForwarderOptions) { o.MaxInFlight = 0 }},
		{"no retry delay", func(o *ForwarderOptions) { o.RetryDelay = 0 }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := NewForwarder(s, p, c.fn); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

func ExampleForwarder() {
	dir, _ := os.MkdirTemp("", "spool")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	prod, err := producer.New(ctx, loadgen.NewCountingClient(1), "trades")
	if err != nil {
		fmt.Println(err)
		return
	}
	s, err := Open(ctx, dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	fwd, err := NewForwarder(s, prod)
	if err != nil {
		fmt.Println(err)
		return
	}
	run, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- fwd.Run(run) }()

	if _, err := s.Append(ctx, aggregation.Record{PartitionKey: "AAPL", Data: []byte(`{"p":189.5}`)}); err != nil {
		fmt.Println(err)
	}
	for s.Stats().Acknowledged == 0 {
		time.Sleep(time.Millisecond)
	}
	// Stop in this order: the forwarder, the producer, the spool.
	stop()
	_ = prod.Shutdown(ctx)
	fmt.Println(<-done, s.Close(), s.Stats().Acknowledged)
	// Output: <nil> <nil> 1
}

func TestClassifyResult(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name         string
		err          error
		retry        bool
		code         string
		wantAttempts int
	}{
		{"an expired record goes back", fmt.Errorf("x: %w", producer.ErrRecordExpired), true, "", 0},
		{"a record failed by Shutdown goes back", fmt.Errorf("x: %w", producer.ErrClosed), true, "", 0},
		{"a validation failure is dead-lettered", &producer.RecordError{Code: "InvalidArgumentException", Attempts: make([]producer.Attempt, 2)}, false, "InvalidArgumentException", 2},
		{"a retryable record error goes back", &producer.RecordError{Code: "InternalFailure", Retryable: true}, true, "InternalFailure", 0},
		{"a record too large for the producer is dead-lettered", fmt.Errorf("x: %w", producer.ErrRecordTooLarge), false, "RecordTooLarge", 0},
		{"an invalid partition key is dead-lettered", fmt.Errorf("x: %w", aggregation.ErrInvalidPartitionKey), false, "InvalidPartitionKey", 0},
		{"an invalid explicit hash key is dead-lettered", fmt.Errorf("x: %w", aggregation.ErrInvalidExplicitHashKey), false, "InvalidExplicitHashKey", 0},
		{"a full producer buffer goes back", producer.ErrBufferFull, true, "", 0},
		{"a cancelled put goes back", context.Canceled, true, "", 0},
		{"a put that timed out goes back", fmt.Errorf("x: %w", context.DeadlineExceeded), true, "", 0},
		{"any other refusal is dead-lettered", errors.New("producer: invalid record id"), false, "Refused", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			retry, code, _, attempts := classifyResult(c.err)
			if retry != c.retry || (!retry && code != c.code) || attempts != c.wantAttempts {
				t.Fatalf("classifyResult(%v) = %v, %q, %d; want %v, %q, %d", c.err, retry, code, attempts, c.retry, c.code, c.wantAttempts)
			}
		})
	}
}

func TestForwarderStopsWithItsProducerOrSpool(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		close func(s *Spool, p *producer.Producer)
		want  error
	}{
		{"a closed producer", func(_ *Spool, p *producer.Producer) { _ = p.Close() }, ErrProducerClosed},
		{"a closed spool", func(s *Spool, _ *producer.Producer) { _ = s.Close() }, ErrClosed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s := openT(t, dir)
			p := newProducer(t, newFlakyClient(false, ""))
			defer p.Close()
			appendN(t, s, 0, 10)
			c.close(s, p)
			f, err := NewForwarder(s, p)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Run(context.Background()); !errors.Is(err, c.want) {
				t.Fatalf("Run: %v, want %v", err, c.want)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			// Nothing was lost: the records are all still there.
			s = openT(t, dir)
			defer s.Close()
			if st := s.Stats(); st.Recovered != 10 {
				t.Fatalf("%d records left, want 10", st.Recovered)
			}
		})
	}
}

// TestForwarderStopsWhenTheSpoolFails: once a write of the spool failed,
// Run returns the spool's error rather than deliver records whose results
// it could not record.
func TestForwarderStopsWhenTheSpoolFails(t *testing.T) {
	t.Parallel()
	s := openT(t, t.TempDir())
	defer s.Close()
	p := newProducer(t, newFlakyClient(false, ""))
	defer p.Close()
	appendN(t, s, 0, 10)
	broken := errors.New("disk gone")
	s.mu.Lock()
	s.failLocked(broken)
	s.mu.Unlock()
	f, err := NewForwarder(s, p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Run(context.Background()); !errors.Is(err, broken) {
		t.Fatalf("Run: %v, want the spool's error", err)
	}
	if st := f.Stats(); st.Forwarded != 0 {
		t.Fatalf("forwarder %+v, want nothing forwarded", st)
	}
}

// scriptedPutter answers from another goroutine, by record: data ending in
// 0, 3, 6 or 9 expires in the producer on its first delivery and succeeds
// on the next; in 1, 4 or 7 succeeds; in 2, 5 or 8 fails for good.
type scriptedPutter struct {
	mu   sync.Mutex
	puts map[string]int
}

func (p *scriptedPutter) PutAsync(_ context.Context, r aggregation.Record, done func(producer.Result, error)) {
	p.mu.Lock()
	p.puts[string(r.Data)]++
	n := p.puts[string(r.Data)]
	p.mu.Unlock()
	d := r.Data[len(r.Data)-1] - '0'
	go func() {
		switch {
		case d%3 == 0 && n == 1:
			done(producer.Result{}, fmt.Errorf("%w: %w", &producer.RecordError{Code: "RecordExpired", Retryable: true}, producer.ErrRecordExpired))
		case d%3 == 2:
			done(producer.Result{}, &producer.RecordError{Code: "InvalidArgumentException", Message: "no"})
		default:
			done(producer.Result{ShardID: "shardId-" + string(r.Data), SequenceNumber: "7"}, nil)
		}
	}()
}

func TestForwarderTellsOnResolveEveryResult(t *testing.T) {
	t.Parallel()
	s := openT(t, t.TempDir())
	defer s.Close()
	var mu sync.Mutex
	got := map[string][]Resolution{}
	onResolve := func(e *Entry, how Resolution, res producer.Result, err error) {
		data := string(e.Record.Data)
		if (how == Acknowledged) != (err == nil) || how == Acknowledged && res.ShardID != "shardId-"+data {
			t.Errorf("%s %s with result %+v and error %v", data, how, res, err)
		}
		if e.Record.ID.PID != s.ProducerID() {
			t.Errorf("%s: entry without the spool's id: %+v", data, e.Record.ID)
		}
		mu.Lock()
		got[data] = append(got[data], how)
		mu.Unlock()
	}
	f, err := NewForwarder(s, &scriptedPutter{puts: map[string]int{}}, func(o *ForwarderOptions) { o.OnResolve = onResolve })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	const n = 60
	appendN(t, s, 0, n)
	waitFor(t, func() bool { st := s.Stats(); return st.Acknowledged+st.DeadLettered == n })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Run has returned: every OnResolve call has too.
	for i := 0; i < n; i++ {
		data := string(rec(i).Data)
		var want []Resolution
		switch d := i % 10; {
		case d%3 == 0:
			want = []Resolution{Returned, Acknowledged}
		case d%3 == 2:
			want = []Resolution{DeadLettered}
		default:
			want = []Resolution{Acknowledged}
		}
		if fmt.Sprint(got[data]) != fmt.Sprint(want) {
			t.Errorf("%s resolved %v, want %v", data, got[data], want)
		}
	}
	if Returned.String() != "returned" || Resolution(9).String() != "Resolution(9)" {
		t.Errorf("names: %s, %s", Returned, Resolution(9))
	}
}

// holdingPutter keeps every record's result callback until release.
type holdingPutter struct {
	mu    sync.Mutex
	dones []func(producer.Result, error)
}

func (p *holdingPutter) PutAsync(_ context.Context, _ aggregation.Record, done func(producer.Result, error)) {
	p.mu.Lock()
	p.dones = append(p.dones, done)
	p.mu.Unlock()
}

func (p *holdingPutter) held() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.dones)
}

// release resolves every record held so far as delivered.
func (p *holdingPutter) release() {
	p.mu.Lock()
	dones := p.dones
	p.dones = nil
	p.mu.Unlock()
	for _, done := range dones {
		done(producer.Result{ShardID: "shardId-0", SequenceNumber: "1"}, nil)
	}
}

// TestAbandonEndsRunsWaitForResults: with a producer that never resolves
// its records, Run waits after its ctx ended until Abandon; results that
// come after still acknowledge their records.
func TestAbandonEndsRunsWaitForResults(t *testing.T) {
	t.Parallel()
	s := openT(t, t.TempDir())
	defer s.Close()
	p := &holdingPutter{}
	f, err := NewForwarder(s, p)
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	appendN(t, s, 0, n)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	waitFor(t, func() bool { return p.held() == n })
	cancel()
	select {
	case err := <-done:
		t.Fatalf("Run returned %v with %d results missing", err, n)
	case <-time.After(50 * time.Millisecond):
	}
	f.Abandon()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := f.Stats().InFlight; got != n {
		t.Fatalf("InFlight %d after Abandon, want %d", got, n)
	}
	p.release()
	f.Abandon() // again: no effect
	if st := s.Stats(); st.Acknowledged != n {
		t.Fatalf("%d acknowledged after the late results, want %d", st.Acknowledged, n)
	}
}
