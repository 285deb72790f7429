package pipeline

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

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
	r := Readiness{Feed: fakeFeed{finnhub.Stats{Connected: true}}, Producer: sink, Spool: sp, SpoolMaxBytes: 64 << 10}
	if err := r.Check(); err == nil || !strings.Contains(err.Error(), "the spool is full") {
		t.Errorf("readiness = %v, want the spool is full", err)
	}
}
