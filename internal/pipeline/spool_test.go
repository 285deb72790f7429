package pipeline

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/kplgo/kpl/finnhub"
	"github.com/kplgo/kpl/producer"
	"github.com/kplgo/kpl/spool"
)

// closedError is what the producer reports for a record it could not
// deliver before its Shutdown ended: a *producer.RecordError that is
// producer.ErrClosed.
type closedError struct{ re *producer.RecordError }

func (e closedError) Error() string   { return "producer closed" }
func (e closedError) Unwrap() []error { return []error{e.re, producer.ErrClosed} }

func openSpool(t *testing.T, dir string, optFns ...func(*spool.Options)) *spool.Spool {
	t.Helper()
	sp, err := spool.Open(context.Background(), dir, optFns...)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

func TestRunThroughTheSpoolAccountsForEveryTrade(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		sink *fakeSink
		// want: the counters of the run (Recovered and Spooled included).
		want Counters
		// wantDead is the number of lines of the dead-letter file.
		wantDead int
	}{
		{
			name: "every spooled trade is delivered and acknowledged",
			sink: &fakeSink{async: true},
			want: Counters{Received: 60, Accepted: 60, Delivered: 60},
		},
		{
			name: "trades failed for good go to the dead-letter file and count as failed",
			sink: &fakeSink{async: true, fail: func(i int) error {
				return errIf(i%5 == 0, &producer.RecordError{Code: "InvalidArgumentException", Message: "bad"})
			}},
			want:     Counters{Received: 60, Accepted: 60, Delivered: 48, Failed: 12},
			wantDead: 12,
		},
		{
			name: "trades the producer could not deliver before its shutdown stay in the spool",
			sink: &fakeSink{fail: func(int) error { return closedError{&producer.RecordError{Code: "ProducerClosed", Retryable: true}} }},
			want: Counters{Received: 60, Accepted: 60, Spooled: 60},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			sp := openSpool(t, dir)
			p := New(tc.sink, Options{ShutdownTimeout: 300 * time.Millisecond, Spool: &Spool{Spool: sp, MaxBytes: 1 << 30}})
			ctx, cancel := context.WithCancel(context.Background())
			src := &fakeSource{batches: [][]finnhub.Trade{trades("AAPL", 30), trades("MSFT", 30)}}
			go func() {
				for p.Counters().Accepted < 60 {
					time.Sleep(time.Millisecond)
				}
				cancel()
			}()
			sum, err := p.Run(ctx, src)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			got := sum.Counters
			if got != tc.want {
				t.Errorf("counters = %+v, want %+v", got, tc.want)
			}
			if got.Recovered+got.Accepted != got.Delivered+got.Failed+got.Spooled || got.Received != got.Accepted+got.Refused {
				t.Errorf("counters do not add up: %+v", got)
			}
			f := SummaryFields(sum)
			if f["dead_lettered"] != uint64(tc.wantDead) || f["dead_letter_path"] != sp.DeadLetterPath() {
				t.Errorf("summary: dead_lettered=%v dead_letter_path=%v, want %d and %s", f["dead_lettered"], f["dead_letter_path"], tc.wantDead, sp.DeadLetterPath())
			}
			// Every trade reached the sink with the spool's id.
			seqs := map[uint64]bool{}
			for i, put := range tc.sink.puts {
				if put.id.PID != sp.ProducerID() || seqs[put.id.Seq] {
					t.Fatalf("put %d has id %+v, want the spool's producer id %s and a new sequence number", i, put.id, sp.ProducerID())
				}
				seqs[put.id.Seq] = true
			}
			if err := sp.Close(); err != nil {
				t.Fatal(err)
			}
			// Dead-letter lines are written with the spool's next commit, at
			// the latest by Close.
			if n := countLines(t, sp.DeadLetterPath()); n != tc.wantDead {
				t.Errorf("%d dead-letter lines, want %d", n, tc.wantDead)
			}
			// What was left is replayed by the next start, with its ids.
			again := openSpool(t, dir)
			defer again.Close()
			if st := again.Stats(); st.Recovered != got.Spooled {
				t.Errorf("reopened spool recovered %d trades, want the %d left", st.Recovered, got.Spooled)
			}
		})
	}
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec spool.DeadLetterRecord
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil || rec.PartitionKey == "" {
			t.Errorf("dead-letter line %q: %v", sc.Text(), err)
		}
		n++
	}
	return n
}

func TestAFullSpoolRefusesAndCountsTrades(t *testing.T) {
	t.Parallel()
	sp := openSpool(t, t.TempDir(), func(o *spool.Options) { o.MaxBytes = 64 << 10; o.WhenFull = spool.Refuse })
	defer sp.Close()
	// Kinesis is down: nothing is acknowledged, and the shutdown gives
	// every record back.
	sink := &fakeSink{fail: func(int) error { return closedError{&producer.RecordError{Code: "ProducerClosed", Retryable: true}} }}
	p := New(sink, Options{ShutdownTimeout: 50 * time.Millisecond, Spool: &Spool{Spool: sp, MaxBytes: 64 << 10}})
	ctx, cancel := context.WithCancel(context.Background())
	const n = 2000 // about 150 bytes each on disk: far more than 64 KiB
	src := &fakeSource{batches: [][]finnhub.Trade{trades("AAPL", n)}}
	go func() {
		for p.Counters().Accepted+p.Counters().Refused < n {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	sum, err := p.Run(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	c := sum.Counters
	if c.Refused == 0 || c.Accepted == 0 || c.Received != n || c.Accepted+c.Refused != n {
		t.Errorf("counters %+v: want some accepted, the rest refused", c)
	}
	if c.Spooled != c.Accepted || sum.Spool.RefusedFull != c.Refused || SummaryFields(sum)["spool_refused"] != c.Refused {
		t.Errorf("counters %+v, spool %+v: every accepted trade should wait in the spool, every refusal be the spool's", c, sum.Spool.Stats)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(p.Collectors("tp")...)
	want := fmt.Sprintf(`
# HELP tp_spool_pending Trades in the spool not yet resolved.
# TYPE tp_spool_pending gauge
tp_spool_pending %d
# HELP tp_trades_refused_total Trades the producer refused.
# TYPE tp_trades_refused_total counter
tp_trades_refused_total %d
`, c.Accepted, c.Refused)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "tp_spool_pending", "tp_trades_refused_total"); err != nil {
		t.Error(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var commits uint64
	for _, mf := range mfs {
		if mf.GetName() == "tp_spool_commit_latency_seconds" {
			commits = mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	if commits == 0 || commits != sp.CommitLatency().Count {
		t.Errorf("tp_spool_commit_latency_seconds counts %d appends, the spool %d", commits, sp.CommitLatency().Count)
	}
	r := Readiness{Feed: fakeFeed{finnhub.Stats{Connected: true}}, Producer: sink, Spool: sp, SpoolMaxBytes: 64 << 10}
	if err := r.Check(); err == nil || !strings.Contains(err.Error(), "the spool is full") {
		t.Errorf("readiness = %v, want the spool is full", err)
	}
}

// lateSink is a sink that starts only when the test says so: every call of
// start announces its attempt number on calls, then returns what the test
// sends on replies (an error; nil starts the sink), or ctx's error when ctx
// ends first, closing ended.
type lateSink struct {
	sink     *fakeSink
	attempts atomic.Int64
	calls    chan int64
	replies  chan error
	ended    chan struct{}
	endOnce  sync.Once
}

func newLateSink() *lateSink {
	return &lateSink{sink: &fakeSink{async: true}, calls: make(chan int64), replies: make(chan error), ended: make(chan struct{})}
}

func (l *lateSink) start(ctx context.Context) (Sink, error) {
	n := l.attempts.Add(1)
	select {
	case l.calls <- n:
	case <-ctx.Done():
		l.endOnce.Do(func() { close(l.ended) })
		return nil, ctx.Err()
	}
	select {
	case err := <-l.replies:
		if err != nil {
			return nil, err
		}
		return l.sink, nil
	case <-ctx.Done():
		l.endOnce.Do(func() { close(l.ended) })
		return nil, ctx.Err()
	}
}

// nextAttempt waits for the next call of start and returns its number.
func (l *lateSink) nextAttempt(t *testing.T) int64 {
	t.Helper()
	select {
	case n := <-l.calls:
		return n
	case <-time.After(10 * time.Second):
		t.Fatal("no attempt to start the sink within 10s")
		return 0
	}
}

// eventually fails the test unless cond holds within 10s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !waitUntil(10*time.Second, cond) {
		t.Fatalf("%s: not within 10s", what)
	}
}

func TestASinkThatStartsLaterGetsEveryTradeSpooledMeanwhile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sp := openSpool(t, dir)
	defer sp.Close()
	log, logs := logtest.NewNullLogger()
	ls := newLateSink()
	p := New(nil, Options{Logger: log, ShutdownTimeout: 2 * time.Second, Spool: &Spool{Spool: sp, MaxBytes: 1 << 30,
		StartSink: ls.start, StartRetryDelay: time.Millisecond, StartLogInterval: time.Hour}})
	ready := Readiness{Feed: fakeFeed{finnhub.Stats{Connected: true}}, Sink: p, Spool: sp, SpoolMaxBytes: 1 << 30}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		sum Summary
		err error
	}
	done := make(chan result, 1)
	go func() {
		sum, err := p.Run(ctx, &fakeSource{batches: [][]finnhub.Trade{trades("AAPL", 30), trades("MSFT", 30)}})
		done <- result{sum, err}
	}()

	if n := ls.nextAttempt(t); n != 1 {
		t.Fatalf("attempt %d first", n)
	}
	if started, err := p.SinkStarted(); started || err != nil {
		t.Errorf("SinkStarted() = %v, %v during the first attempt, want false, nil", started, err)
	}
	if err := ready.Check(); err == nil || !strings.Contains(err.Error(), "the producer is not started yet") {
		t.Errorf("readiness during the first attempt = %v", err)
	}
	// The trades are accepted onto disk while the sink cannot start.
	eventually(t, "60 trades accepted", func() bool { return p.Counters().Accepted == 60 })
	ls.replies <- errors.New("dial tcp 127.0.0.1:4567: connection refused")
	if n := ls.nextAttempt(t); n != 2 {
		t.Fatalf("attempt %d after the first failure, want 2", n)
	}
	started, lastErr := p.SinkStarted()
	if started || lastErr == nil || !strings.Contains(lastErr.Error(), "connection refused") {
		t.Errorf("SinkStarted() = %v, %v after a failure, want false and the failure", started, lastErr)
	}
	if err := ready.Check(); err == nil || !strings.Contains(err.Error(), "not started") || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("readiness after a failed start = %v, want not started with the last error", err)
	}
	if c := p.Counters(); c.Accepted != 60 || c.Spooled != 60 || c.Delivered != 0 || ls.sink.putCount() != 0 {
		t.Errorf("counters %+v and %d puts before the sink started, want 60 spooled and no put", c, ls.sink.putCount())
	}
	if s := p.Snapshot(); s.Producer.PutRecordsCalls != 0 || s.Spool == nil || s.Spool.Pending != 60 {
		t.Errorf("snapshot before the start: %+v", s)
	}
	ls.replies <- errors.New("still refused")
	if n := ls.nextAttempt(t); n != 3 {
		t.Fatalf("attempt %d after the second failure, want 3", n)
	}
	ls.replies <- nil // started

	eventually(t, "60 trades delivered", func() bool { return p.Counters().Delivered == 60 })
	if started, err := p.SinkStarted(); !started || err != nil {
		t.Errorf("SinkStarted() = %v, %v after the start, want true, nil", started, err)
	}
	if err := ready.Check(); err != nil {
		t.Errorf("not ready after the start: %v", err)
	}
	cancel()
	r := <-done
	if r.err != nil {
		t.Fatalf("Run: %v", r.err)
	}
	if want := (Counters{Received: 60, Accepted: 60, Delivered: 60}); r.sum.Counters != want {
		t.Errorf("counters %+v, want %+v", r.sum.Counters, want)
	}
	seqs := map[uint64]bool{}
	for i, put := range ls.sink.puts {
		if put.id.PID != sp.ProducerID() || seqs[put.id.Seq] {
			t.Fatalf("put %d has id %+v, want the spool's producer id and a new sequence number", i, put.id)
		}
		seqs[put.id.Seq] = true
	}
	if len(seqs) != 60 || ls.sink.shutdown != 1 {
		t.Errorf("%d distinct trades put, %d shutdowns of the sink; want 60 and 1", len(seqs), ls.sink.shutdown)
	}
	// Two failures in an hour's log interval: one line, then the start.
	var warned, startedLines int
	for _, e := range logs.AllEntries() {
		switch e.Message {
		case "the producer could not start; trades wait in the spool, retrying":
			warned++
			if e.Level != logrus.WarnLevel || e.Data["failed_attempts"] != 1 || !strings.Contains(fmt.Sprint(e.Data["error"]), "connection refused") {
				t.Errorf("failure line %v %v", e.Level, e.Data)
			}
		case "producer started; forwarding the spooled trades":
			startedLines++
			if e.Data["attempts"] != 3 {
				t.Errorf("start line %v, want 3 attempts", e.Data)
			}
		}
	}
	if warned != 1 || startedLines != 1 {
		t.Errorf("%d failure lines and %d start lines, want 1 and 1", warned, startedLines)
	}
}

func TestAShutdownBeforeTheSinkStartedLeavesEveryTradeInTheSpool(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sp := openSpool(t, dir)
	ls := newLateSink() // never told to start
	p := New(nil, Options{ShutdownTimeout: 200 * time.Millisecond, Spool: &Spool{Spool: sp, StartSink: ls.start}})
	ctx, cancel := context.WithCancel(context.Background())
	type result struct {
		sum Summary
		err error
	}
	done := make(chan result, 1)
	go func() {
		sum, err := p.Run(ctx, &fakeSource{batches: [][]finnhub.Trade{trades("AAPL", 40)}})
		done <- result{sum, err}
	}()
	ls.nextAttempt(t)
	eventually(t, "40 trades accepted", func() bool { return p.Counters().Accepted == 40 })
	cancel() // the signal
	r := <-done
	if r.err != nil || r.sum.ShutdownErr != nil {
		t.Fatalf("Run: %v, shutdown error %v", r.err, r.sum.ShutdownErr)
	}
	select {
	case <-ls.ended:
	default:
		t.Error("the start in progress did not see its context end")
	}
	c := r.sum.Counters
	if want := (Counters{Received: 40, Accepted: 40, Spooled: 40}); c != want {
		t.Errorf("counters %+v, want %+v", c, want)
	}
	if c.Recovered+c.Accepted != c.Delivered+c.Failed+c.Spooled || r.sum.Producer.PutRecordsCalls != 0 || ls.sink.shutdown != 0 {
		t.Errorf("summary %+v: want every trade spooled and no sink", r.sum)
	}
	if f := SummaryFields(r.sum); f["spooled"] != uint64(40) || f["delivered"] != uint64(0) {
		t.Errorf("summary fields %v", f)
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	again := openSpool(t, dir)
	defer again.Close()
	if st := again.Stats(); st.Recovered != 40 {
		t.Errorf("the next start recovered %d trades, want 40", st.Recovered)
	}
}

// TestASpoolThatCannotWriteRefusesTheTradesAndKeepsTheCountsBalanced: a
// commit that fails (the spool's directory is gone, as with a lost volume;
// a full disk or an I/O error take the same path) refuses its trades, and
// they are not also counted as waiting in the spool.
func TestASpoolThatCannotWriteRefusesTheTradesAndKeepsTheCountsBalanced(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sp := openSpool(t, dir)
	defer sp.Close()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	p := New(&fakeSink{async: true}, Options{ShutdownTimeout: 300 * time.Millisecond, ResolveGrace: 200 * time.Millisecond,
		Spool: &Spool{Spool: sp, MaxBytes: 1 << 30}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	sum, _ := p.Run(ctx, &fakeSource{batches: [][]finnhub.Trade{trades("AAPL", 60)}})
	c := sum.Counters
	if c.Received != 60 || c.Refused != 60 || c.Accepted != 0 || c.Spooled != 0 {
		t.Errorf("counters %+v: want 60 received and refused, none accepted or spooled", c)
	}
	if c.Recovered+c.Accepted != c.Delivered+c.Failed+c.Spooled {
		t.Errorf("counters %+v: recovered+accepted != delivered+failed+spooled", c)
	}
}

// TestMaxTradesCountsTheTradesTheSpoolAccepted: with a spool, MaxTrades
// stops reading after that many accepted trades, as without one; trades
// refused (here: a price JSON cannot hold) do not count.
func TestMaxTradesCountsTheTradesTheSpoolAccepted(t *testing.T) {
	t.Parallel()
	sp := openSpool(t, t.TempDir())
	defer sp.Close()
	bad := trades("AAPL", 5)
	for i := range bad {
		bad[i].Price = math.NaN()
	}
	first := append(bad, trades("MSFT", 30)...)
	p := New(&fakeSink{async: true}, Options{MaxTrades: 20, ShutdownTimeout: time.Second, Spool: &Spool{Spool: sp, MaxBytes: 1 << 30}})
	sum, err := p.Run(context.Background(), &fakeSource{batches: [][]finnhub.Trade{first, trades("IBM", 30), trades("IBM", 30)}})
	if err != nil {
		t.Fatal(err)
	}
	if c := sum.Counters; c.Accepted != 20 || c.Refused != 5 || c.Received != 25 || c.Delivered != 20 {
		t.Errorf("counters %+v: want 20 accepted and delivered, the 5 refused besides", c)
	}
}

// TestAForwarderThatStopsByItselfFailsTheRun: the producer closed under
// the pipeline (every put refused with ErrClosed): the forwarder stops,
// reading stops, the trades stay in the spool, and Run says why.
func TestAForwarderThatStopsByItselfFailsTheRun(t *testing.T) {
	t.Parallel()
	sp := openSpool(t, t.TempDir())
	defer sp.Close()
	sink := &fakeSink{refuse: func(int) error { return producer.ErrClosed }}
	p := New(sink, Options{ShutdownTimeout: 200 * time.Millisecond, Spool: &Spool{Spool: sp, MaxBytes: 1 << 30}})
	src := &fakeSource{batches: [][]finnhub.Trade{trades("AAPL", 10)}} // then reads until stopped
	sum, err := p.Run(context.Background(), src)
	if !errors.Is(err, spool.ErrProducerClosed) {
		t.Fatalf("Run = %v, want the forwarder's spool.ErrProducerClosed", err)
	}
	if c := sum.Counters; c.Accepted != 10 || c.Spooled != 10 || c.Delivered != 0 {
		t.Errorf("counters %+v: want the 10 trades left in the spool", c)
	}
}

func TestSpoolStartRetryDelaysDefaultAndCap(t *testing.T) {
	t.Parallel()
	const ms = time.Millisecond
	tests := []struct {
		name               string
		first, cap         time.Duration
		wantFirst, wantCap time.Duration
	}{
		{"defaults", 0, 0, 500 * ms, 30 * time.Second},
		{"a short first pause keeps the default cap", 10 * ms, 0, 10 * ms, 30 * time.Second},
		{"a first pause above the default cap is the cap", 40 * time.Second, 0, 40 * time.Second, 40 * time.Second},
		{"a cap below the first pause is the first pause", time.Second, 100 * ms, time.Second, time.Second},
		{"a cap below the default first pause is that pause", 0, 100 * ms, 500 * ms, 500 * ms},
		{"both given are kept", 10 * ms, 50 * ms, 10 * ms, 50 * ms},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newSpoolStage(nil, Spool{StartRetryDelay: tt.first, StartMaxRetryDelay: tt.cap})
			if s.cfg.StartRetryDelay != tt.wantFirst || s.cfg.StartMaxRetryDelay != tt.wantCap {
				t.Errorf("pauses %v up to %v, want %v up to %v",
					s.cfg.StartRetryDelay, s.cfg.StartMaxRetryDelay, tt.wantFirst, tt.wantCap)
			}
		})
	}
}

// TestASinkThatNeverResolvesLeavesNoForwarderBehind: the sink's Shutdown
// returns without resolving its records, against its contract; after the
// grace period Run returns, the trades stay in the spool, and the
// forwarder's goroutine has ended with it. Not parallel: the check reads
// every goroutine's stack, and parallel tests of the package wait while a
// sequential one runs.
func TestASinkThatNeverResolvesLeavesNoForwarderBehind(t *testing.T) {
	sp := openSpool(t, t.TempDir())
	defer sp.Close()
	p := New(&fakeSink{never: true}, Options{MaxTrades: 10, ShutdownTimeout: 200 * time.Millisecond, ResolveGrace: 20 * time.Millisecond,
		Spool: &Spool{Spool: sp, MaxBytes: 1 << 30}})
	sum, err := p.Run(context.Background(), &fakeSource{batches: [][]finnhub.Trade{trades("AAPL", 10)}})
	if err != nil {
		t.Fatal(err)
	}
	if c := sum.Counters; c.Accepted != 10 || c.Spooled != 10 || c.Delivered != 0 {
		t.Errorf("counters %+v: want 10 accepted and left in the spool", c)
	}
	buf := make([]byte, 1<<20)
	if stacks := string(buf[:runtime.Stack(buf, true)]); strings.Contains(stacks, "spool.(*Forwarder).Run") {
		t.Fatalf("a forwarder still runs after Run returned:\n%s", stacks)
	}
}

// TestATradeTooLargeForTheSpoolIsRefusedAlone: a trade whose frame the
// spool cannot store (ErrTooLarge) is refused, and the trades after it in
// the same message are still spooled and delivered.
func TestATradeTooLargeForTheSpoolIsRefusedAlone(t *testing.T) {
	t.Parallel()
	sp := openSpool(t, t.TempDir(), func(o *spool.Options) { o.MaxBytes = 64 << 10 })
	defer sp.Close()
	msg := trades("AAPL", 5)
	msg[1].Conditions = []string{strings.Repeat("x", 40<<10)} // above half of MaxBytes
	p := New(&fakeSink{async: true}, Options{ShutdownTimeout: time.Second, Spool: &Spool{Spool: sp, MaxBytes: 64 << 10}})
	end := errors.New("the feed ended")
	sum, err := p.Run(context.Background(), &fakeSource{batches: [][]finnhub.Trade{msg}, err: end})
	if !errors.Is(err, end) {
		t.Fatalf("Run: %v, want %v", err, end)
	}
	if c := sum.Counters; c.Received != 5 || c.Refused != 1 || c.Accepted != 4 || c.Delivered != 4 {
		t.Errorf("counters %+v: want 5 received, the large one refused, the other 4 accepted and delivered", c)
	}
}

// TestSpoolRefusedTotalCountsTrades: tp_spool_refused_total counts the
// trades refused because the spool was full, as its help and the status
// line's spool_refused say, not the appends (one per Finnhub message).
func TestSpoolRefusedTotalCountsTrades(t *testing.T) {
	t.Parallel()
	sp := openSpool(t, t.TempDir(), func(o *spool.Options) { o.MaxBytes = 64 << 10; o.WhenFull = spool.Refuse })
	defer sp.Close()
	sink := &fakeSink{fail: func(int) error { return closedError{&producer.RecordError{Code: "ProducerClosed", Retryable: true}} }}
	p := New(sink, Options{ShutdownTimeout: 50 * time.Millisecond, Spool: &Spool{Spool: sp, MaxBytes: 64 << 10}})
	end := errors.New("the feed ended")
	// One message of far more than 64 KiB of trades, then a second one.
	sum, err := p.Run(context.Background(), &fakeSource{batches: [][]finnhub.Trade{trades("AAPL", 2000), trades("MSFT", 10)}, err: end})
	if !errors.Is(err, end) {
		t.Fatalf("Run: %v, want %v", err, end)
	}
	c := sum.Counters
	if c.Refused < 10 || sum.Spool.RefusedFull != c.Refused {
		t.Fatalf("counters %+v, spool %+v: want many trades refused for a full spool", c, sum.Spool)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(p.Collectors("tp")...)
	want := fmt.Sprintf(`
# HELP tp_spool_refused_total Trades refused because the spool was full.
# TYPE tp_spool_refused_total counter
tp_spool_refused_total %d
`, c.Refused)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "tp_spool_refused_total"); err != nil {
		t.Error(err)
	}
}
