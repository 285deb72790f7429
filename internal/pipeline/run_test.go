package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/kplgo/kpl/aggregation"
	"github.com/kplgo/kpl/finnhub"
	"github.com/kplgo/kpl/producer"
)

// fakeSource hands over its batches, then either returns err or waits for
// ctx (or, with endless, keeps sending the last batch until ctx ends).
type fakeSource struct {
	batches [][]finnhub.Trade
	endless bool
	err     error
}

func (s *fakeSource) Run(ctx context.Context, handle func(context.Context, []finnhub.Trade) error) error {
	for _, b := range s.batches {
		if err := handle(ctx, b); err != nil {
			return err
		}
	}
	for s.endless && ctx.Err() == nil {
		if err := handle(ctx, s.batches[len(s.batches)-1]); err != nil {
			return err
		}
	}
	if s.err != nil {
		return s.err
	}
	<-ctx.Done()
	return ctx.Err()
}

type putCall struct {
	pk   string
	data []byte
	id   aggregation.RecordID
}

// fakeSink records puts. refuse returns, per put index, an immediate
// refusal error; fail returns the result error (nil = delivered). Results
// are released at Shutdown unless never is set, or at once from another
// goroutine with async; block makes PutAsync wait for ctx.
type fakeSink struct {
	mu       sync.Mutex
	puts     []putCall
	pending  []func()
	refuse   func(i int) error
	fail     func(i int) error
	never    bool
	async    bool
	block    bool
	shutdown int
}

// Enqueue takes a record as the producer does: an immediate refusal is
// returned, a result comes through done.
func (s *fakeSink) Enqueue(ctx context.Context, r aggregation.Record, done func(producer.Result, error)) error {
	if s.block {
		<-ctx.Done()
		return ctx.Err()
	}
	s.mu.Lock()
	if s.shutdown > 0 { // as the producer: refused once Shutdown has begun
		s.mu.Unlock()
		return producer.ErrClosed
	}
	i := len(s.puts)
	s.puts = append(s.puts, putCall{r.PartitionKey, append([]byte(nil), r.Data...), r.ID})
	if s.refuse != nil {
		if err := s.refuse(i); err != nil {
			s.mu.Unlock()
			return err
		}
	}
	var err error
	if s.fail != nil {
		err = s.fail(i)
	}
	res := func() { done(producer.Result{Latency: time.Millisecond}, err) }
	if s.async {
		s.mu.Unlock()
		go res()
		return nil
	}
	s.pending = append(s.pending, res)
	s.mu.Unlock()
	return nil
}

// PutAsync is Enqueue with the refusal passed to done, as the producer's.
func (s *fakeSink) PutAsync(ctx context.Context, r aggregation.Record, done func(producer.Result, error)) {
	if err := s.Enqueue(ctx, r, done); err != nil {
		done(producer.Result{}, err)
	}
}

func (s *fakeSink) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutdown++
	pending := s.pending
	s.pending = nil
	s.mu.Unlock()
	if !s.never {
		for _, res := range pending {
			res()
		}
	}
	return nil
}

func (s *fakeSink) Stats() producer.Stats { return producer.Stats{} }

func (s *fakeSink) putCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.puts)
}

func trades(symbol string, n int) []finnhub.Trade {
	out := make([]finnhub.Trade, n)
	for i := range out {
		out[i] = finnhub.Trade{Symbol: symbol, Price: 100 + float64(i), Time: int64(1000 + i), Volume: 5, Conditions: []string{"1"}}
	}
	return out
}

// TestARefusedTradeIsNeverCountedAccepted: the accepted count is a
// Prometheus counter, so it must never go down; a trade the producer
// refuses at once is counted refused, and never accepted, not even while
// the refusal is under way (a scrape then would see the counter drop, a
// counter reset to Prometheus).
func TestARefusedTradeIsNeverCountedAccepted(t *testing.T) {
	t.Parallel()
	var p *Pipeline
	var duringRefusal []uint64
	sink := &fakeSink{refuse: func(i int) error {
		duringRefusal = append(duringRefusal, p.Counters().Accepted) // on Handle's goroutine
		if i%2 == 1 {
			return producer.ErrBufferFull
		}
		return nil
	}}
	p = New(sink, Options{})
	if err := p.Handle(context.Background(), trades("AAPL", 6)); err != nil {
		t.Fatal(err)
	}
	// Puts 0, 2 and 4 are accepted, 1, 3 and 5 refused: while put i is
	// decided, the puts before it that were accepted count, and no more.
	if want := []uint64{0, 1, 1, 2, 2, 3}; !slices.Equal(duringRefusal, want) {
		t.Errorf("accepted while each put was decided: %v, want %v", duringRefusal, want)
	}
	if c := p.Counters(); c.Accepted != 3 || c.Refused != 3 || c.Received != 6 {
		t.Errorf("counters %+v: want 3 accepted, 3 refused", c)
	}
}

func TestRunAccountsForEveryTrade(t *testing.T) {
	t.Parallel()
	fixed := time.UnixMilli(1_700_000_000_123)
	tests := []struct {
		name    string
		src     *fakeSource
		sink    *fakeSink
		opts    Options
		cancel  bool // cancel the context once the source has sent everything
		want    Counters
		wantErr string
	}{
		{
			name:   "every accepted trade is delivered after a signal",
			src:    &fakeSource{batches: [][]finnhub.Trade{trades("AAPL", 30), trades("MSFT", 20)}},
			sink:   &fakeSink{},
			cancel: true,
			want:   Counters{Received: 50, Accepted: 50, Delivered: 50},
		},
		{
			name:   "failures reported by the producer are counted as failed",
			src:    &fakeSource{batches: [][]finnhub.Trade{trades("AAPL", 30)}},
			sink:   &fakeSink{fail: func(i int) error { return errIf(i%3 == 0, &producer.RecordError{Code: "InternalFailure"}) }},
			cancel: true,
			want:   Counters{Received: 30, Accepted: 30, Delivered: 20, Failed: 10},
		},
		{
			name:   "trades the producer refuses are counted and not waited for",
			src:    &fakeSource{batches: [][]finnhub.Trade{trades("AAPL", 10)}},
			sink:   &fakeSink{refuse: func(i int) error { return errIf(i >= 6, producer.ErrBufferFull) }},
			cancel: true,
			want:   Counters{Received: 10, Accepted: 6, Refused: 4, Delivered: 6},
		},
		{
			name:   "results reported from other goroutines before the shutdown are counted",
			src:    &fakeSource{batches: [][]finnhub.Trade{trades("AAPL", 40)}},
			sink:   &fakeSink{async: true, fail: func(i int) error { return errIf(i%4 == 0, &producer.RecordError{Code: "InternalFailure"}) }},
			cancel: true,
			want:   Counters{Received: 40, Accepted: 40, Delivered: 30, Failed: 10},
		},
		{
			name: "reading stops by itself after MaxTrades accepted trades",
			src:  &fakeSource{batches: [][]finnhub.Trade{trades("AAPL", 7)}, endless: true},
			sink: &fakeSink{},
			opts: Options{MaxTrades: 20},
			want: Counters{Received: 20, Accepted: 20, Delivered: 20},
		},
		{
			name:    "a feed error is returned after the buffered trades are delivered",
			src:     &fakeSource{batches: [][]finnhub.Trade{trades("AAPL", 5)}, err: errors.New("feed broke")},
			sink:    &fakeSink{},
			want:    Counters{Received: 5, Accepted: 5, Delivered: 5},
			wantErr: "feed broke",
		},
		{
			name:   "a trade waiting for buffer room when the signal comes is refused",
			src:    &fakeSource{batches: [][]finnhub.Trade{trades("AAPL", 1)}},
			sink:   &fakeSink{block: true},
			cancel: true,
			want:   Counters{Received: 1, Refused: 1},
		},
		{
			name:   "results missing after the grace period are unresolved",
			src:    &fakeSource{batches: [][]finnhub.Trade{trades("AAPL", 4)}},
			sink:   &fakeSink{never: true},
			opts:   Options{ResolveGrace: 20 * time.Millisecond},
			cancel: true,
			want:   Counters{Received: 4, Accepted: 4, Unresolved: 4},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer
			l := logrus.New()
			l.SetOutput(&logs)
			opts := tc.opts
			opts.Logger = l
			opts.Now = func() time.Time { return fixed }
			p := New(tc.sink, opts)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancel {
				// The fake source sends everything synchronously at the
				// start of Run; cancel once the puts are in.
				want := 0
				for _, b := range tc.src.batches {
					want += len(b)
				}
				go func() {
					for p.Counters().Received < uint64(want) {
						time.Sleep(time.Millisecond)
					}
					cancel()
				}()
			}
			sum, err := p.Run(ctx, tc.src)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
			} else if err != nil {
				t.Fatalf("Run: %v", err)
			}
			got := sum.Counters
			got.LatencySeconds = 0
			if got != tc.want {
				t.Errorf("counters = %+v, want %+v", got, tc.want)
			}
			if got.Accepted != got.Delivered+got.Failed+got.Unresolved || got.Received != got.Accepted+got.Refused {
				t.Errorf("counters do not add up: %+v", got)
			}
			if tc.sink.shutdown != 1 {
				t.Errorf("sink shut down %d times, want once", tc.sink.shutdown)
			}
			if tc.want.Failed > 0 && !strings.Contains(logs.String(), "trade not delivered") {
				t.Errorf("failures were not logged:\n%s", logs.String())
			}
		})
	}
}

func errIf(cond bool, err error) error {
	if cond {
		return err
	}
	return nil
}

func TestHandleWritesTheTradeAsJSONKeyedBySymbol(t *testing.T) {
	t.Parallel()
	sink := &fakeSink{}
	p := New(sink, Options{Now: func() time.Time { return time.UnixMilli(1575526691201) }})
	in := []finnhub.Trade{
		{Symbol: "AAPL", Price: 189.5, Time: 1575526691134, Volume: 100, Conditions: []string{"1", "12"}},
		{Symbol: "BINANCE:BTCUSDT", Price: 7296.89, Time: 1575526691135, Volume: 0.011467},
	}
	if err := p.Handle(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	want := []putCall{
		{pk: "AAPL", data: []byte(`{"s":"AAPL","p":189.5,"t":1575526691134,"v":100,"c":["1","12"],"ingestion_timestamp":1575526691201}`)},
		{pk: "BINANCE:BTCUSDT", data: []byte(`{"s":"BINANCE:BTCUSDT","p":7296.89,"t":1575526691135,"v":0.011467,"c":null,"ingestion_timestamp":1575526691201}`)},
	}
	if len(sink.puts) != len(want) {
		t.Fatalf("%d puts, want %d", len(sink.puts), len(want))
	}
	for i, w := range want {
		if sink.puts[i].pk != w.pk || !bytes.Equal(sink.puts[i].data, w.data) {
			t.Errorf("put %d = %s %s, want %s %s", i, sink.puts[i].pk, sink.puts[i].data, w.pk, w.data)
		}
		back, err := ParseTradeRecord(sink.puts[i].data)
		if err != nil || back.Symbol != in[i].Symbol || back.Time != in[i].Time || back.Price != in[i].Price {
			t.Errorf("round trip of put %d: %+v, %v", i, back, err)
		}
	}
}

func TestParseTradeRecordRefusesWhatIsNotATrade(t *testing.T) {
	t.Parallel()
	for _, in := range []string{``, `hello`, `{}`, `{"s":"AAPL"}`, `{"t":5}`, `[1,2]`} {
		t.Run(fmt.Sprintf("input %q is refused", in), func(t *testing.T) {
			t.Parallel()
			if _, err := ParseTradeRecord([]byte(in)); err == nil {
				t.Errorf("no error")
			}
		})
	}
}

func TestLogLimiterAllowsABoundedNumberPerSecond(t *testing.T) {
	t.Parallel()
	l := logLimiter{perSecond: 3}
	base := time.Unix(100, 0)
	n := 0
	for i := range 10 {
		if l.allow(base.Add(time.Duration(i) * time.Millisecond)) {
			n++
		}
	}
	if n != 3 {
		t.Errorf("allowed %d in one second, want 3", n)
	}
	if !l.allow(base.Add(time.Second)) {
		t.Errorf("the next second is not allowed")
	}
}

func TestReportStatusLogsUntilItsContextEnds(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	var mu sync.Mutex
	l := logrus.New()
	l.SetOutput(writerFunc(func(b []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return out.Write(b) }))
	p := New(&fakeSink{}, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.ReportStatus(ctx, l, time.Millisecond) }()
	for {
		mu.Lock()
		n := strings.Count(out.String(), "msg=status")
		mu.Unlock()
		if n >= 2 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(out.String(), "trades_in_per_s=") || !strings.Contains(out.String(), "agg_ratio=") {
		t.Errorf("status lines lack their fields:\n%s", out.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// TestTheMeanLatencyOfALongRunDoesNotWrap: the delivered trades' latencies
// add up past the largest time.Duration (292 years: 106 days of 10,000
// trades a second at 100 ms each); the summary's mean stays right.
func TestTheMeanLatencyOfALongRunDoesNotWrap(t *testing.T) {
	t.Parallel()
	p := New(&fakeSink{}, Options{})
	const n = 4000
	for range n {
		p.result(producer.Result{Latency: 1000 * time.Hour}, nil) // 4 million hours in all
	}
	c := p.Counters()
	if want := float64(n) * 1000 * 3600; c.LatencySeconds != want {
		t.Fatalf("LatencySeconds %v, want %v", c.LatencySeconds, want)
	}
	if got := SummaryFields(Summary{Counters: c})["mean_latency"]; got != "1000h0m0s" {
		t.Fatalf("mean_latency %v, want 1000h0m0s", got)
	}
}

// TestASignalDuringAMessageLosesNoTradeOfItUncounted: the trades of a
// message after the moment the signal came are still put (the producer
// takes them while it has room, else refuses them), never dropped without
// being counted received.
func TestASignalDuringAMessageLosesNoTradeOfItUncounted(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sink := &fakeSink{refuse: func(i int) error {
		if i == 1 {
			cancel() // the signal comes while the second trade is put
		}
		return nil
	}}
	p := New(sink, Options{})
	if err := p.Handle(ctx, trades("AAPL", 5)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Handle: %v, want context.Canceled", err)
	}
	if c := p.Counters(); c.Received != 5 || c.Accepted != 5 || sink.putCount() != 5 {
		t.Errorf("counters %+v, %d puts: want the message's 5 trades received, put and accepted", c, sink.putCount())
	}
}
