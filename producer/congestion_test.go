package producer

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/kplgo/kpl/aggregation"
)

func TestCallWindow(t *testing.T) {
	t0 := time.Unix(1000, 0)
	open := func(w *callWindow) { // slow start to full width
		for range 100 {
			w.succeeded(t0, 0, 0, 0)
		}
	}
	tests := []struct {
		name      string
		steps     func(w *callWindow)
		want      int64
		wantBytes int
	}{
		{"a new window starts at one call of one aggregate", func(*callWindow) {}, 1, 50_000},
		{"in slow start each returned call adds a call and doubles the call size", func(w *callWindow) {
			for range 5 {
				w.succeeded(t0, 0, 0, 0)
			}
		}, 6, 1_600_000},
		{"slow start stops at the maximums", open, 24, 5_000_000},
		{"a congestion signal halves calls and call size", func(w *callWindow) {
			open(w)
			w.congested(t0)
		}, 12, 2_500_000},
		{"signals within the cooldown count once", func(w *callWindow) {
			open(w)
			w.congested(t0)
			w.congested(t0.Add(time.Second))
			w.congested(t0.Add(5 * time.Second))
		}, 12, 2_500_000},
		{"signals a cooldown apart halve it again", func(w *callWindow) {
			open(w)
			w.congested(t0)
			w.congested(t0.Add(6 * time.Second))
		}, 6, 1_250_000},
		{"it never falls below one call of one aggregate", func(w *callWindow) {
			open(w)
			for i := range 10 {
				w.congested(t0.Add(time.Duration(i) * time.Minute))
			}
		}, 1, 50_000},
		{"after congestion each returned call adds a call and a sixteenth of the call size", func(w *callWindow) {
			open(w)
			w.congested(t0)
			for range 5 {
				w.succeeded(t0, 0, 0, 0)
			}
		}, 17, 2_500_000 + 5*312_500},
		{"a slow call holds the call size to a third of the timeout's worth", func(w *callWindow) {
			open(w)
			w.succeeded(t0, 1_000_000, time.Second, 0) // 1 MB/s: 2 MB in 2 s
		}, 24, 2_000_000},
		{"the hold never goes below one aggregate", func(w *callWindow) {
			open(w)
			w.succeeded(t0, 1_000, time.Second, 0)
		}, 24, 50_000},
		{"a fast call leaves the call size alone", func(w *callWindow) {
			open(w)
			w.succeeded(t0, 5_000_000, 100*time.Millisecond, 0)
		}, 24, 5_000_000},
		{"a call slower than a third of the timeout takes a call away", func(w *callWindow) {
			open(w)
			w.succeeded(t0, 100_000, 2500*time.Millisecond, 0)
		}, 23, 80_000}, // 40 KB/s: 80 KB in 2 s
		{"a call slower than half the timeout is congestion", func(w *callWindow) {
			open(w)
			w.succeeded(t0, 5_000_000, 4*time.Second, 0) // 1.25 MB/s: 2.5 MB in 2 s
		}, 12, 2_500_000},
		{"it never rises above the maximums", func(w *callWindow) {
			open(w)
			w.congested(t0)
			open(w)
		}, 24, 5_000_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newCallWindow(24, 50_000, 5_000_000, 6*time.Second)
			tt.steps(w)
			if got := w.allowed(); got != tt.want {
				t.Errorf("allowed = %d, want %d", got, tt.want)
			}
			if got := w.callBytes(); got != tt.wantBytes {
				t.Errorf("callBytes = %d, want %d", got, tt.wantBytes)
			}
		})
	}
}

func TestTheCallWindowBoundsTheBytesInFlight(t *testing.T) {
	const timeout = 8 * time.Second // a quarter: 2 s
	t0 := time.Unix(1000, 0)
	tests := []struct {
		name  string
		steps func(w *callWindow)
		want  int64
	}{
		{"it starts at one aggregate", func(*callWindow) {}, 50_000},
		{"fast calls double it from what was in flight", func(w *callWindow) {
			w.succeeded(t0, 50_000, 10*time.Millisecond, 50_000)
			w.succeeded(t0, 100_000, 10*time.Millisecond, 100_000)
		}, 200_000},
		{"a slow call sets it to a quarter timeout's worth at the endpoint's rate", func(w *callWindow) {
			w.succeeded(t0, 1_000_000, 4*time.Second, 4_000_000) // 1 MB/s by Little's law
		}, 2_000_000},
		{"a call slower than a third of the timeout sets it the same way", func(w *callWindow) {
			w.succeeded(t0, 1_000_000, 3*time.Second, 3_000_000) // 1 MB/s
		}, 2_000_000},
		// At a latency the endpoint keeps whatever is in flight, the rate
		// a full window measures is the bound over the latency: following
		// it would shrink the bound at every call, down to one aggregate.
		{"a call between a quarter and a third of the timeout raises it to what was in flight and an aggregate", func(w *callWindow) {
			w.succeeded(t0, 1_000_000, 2400*time.Millisecond, 4_000_000)
		}, 4_050_000},
		{"calls at a fixed latency between a quarter and a third of the timeout never lower it", func(w *callWindow) {
			w.succeeded(t0, 2_000_000, 10*time.Millisecond, 2_000_000) // 4 MB
			for range 60 {
				in := w.budget.Load() // a full window
				w.succeeded(t0, 1_000_000, 2400*time.Millisecond, in)
			}
		}, 4_000_000 + 60*50_000},
		{"calls at such a latency widen it from one aggregate", func(w *callWindow) {
			for range 10 {
				in := w.budget.Load()
				w.succeeded(t0, int(in), 2400*time.Millisecond, in)
			}
		}, 11 * 50_000},
		{"a call between a quarter and a third of the timeout raises it no higher than the ceiling", func(w *callWindow) {
			w.succeeded(t0, 5_000_000, 2400*time.Millisecond, 24*5_000_000)
		}, 24 * 5_000_000},
		{"it never falls below one aggregate", func(w *callWindow) {
			w.succeeded(t0, 1_000, time.Minute, 1_000)
		}, 50_000},
		{"congestion halves it", func(w *callWindow) {
			w.succeeded(t0, 100_000, 10*time.Millisecond, 4_000_000)
			w.congested(t0)
		}, 4_000_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newCallWindow(24, 50_000, 5_000_000, timeout)
			tt.steps(w)
			if got := w.budget.Load(); got != tt.want {
				t.Errorf("budget = %d, want %d", got, tt.want)
			}
		})
	}
	t.Run("no call starts while the bytes in flight reach it", func(t *testing.T) {
		w := newCallWindow(24, 50_000, 5_000_000, timeout)
		for range 10 {
			w.succeeded(t0, 0, 0, 0) // calls allowed: 11
		}
		if !w.room(0) {
			t.Fatal("no room with nothing in flight")
		}
		w.start(50_000)
		if w.room(1) {
			t.Error("room for a second call with the budget's bytes in flight")
		}
		w.done(50_000)
		if !w.room(0) {
			t.Error("no room after the call returned")
		}
	})
}

func TestTimeoutsNarrowTheCallWindowAndSuccessWidensIt(t *testing.T) {
	c := newFakeClient(1)
	c.script = func(ctx context.Context, n int, in *kinesis.PutRecordsInput) ([]string, error) {
		if n == 1 {
			<-ctx.Done() // the first call outlives its timeout
			return nil, ctx.Err()
		}
		return nil, nil
	}
	p := newProducer(t, c, func(o *Options) {
		o.MaxConnections = 8
		o.RequestTimeout = 50 * time.Millisecond
	})
	f, err := p.Put(context.Background(), "k", []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.Wait(context.Background())
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if len(res.Attempts) != 2 || res.Attempts[0].ErrorCode != "RequestTimeout" {
		t.Fatalf("attempts = %+v, want a RequestTimeout then a success", res.Attempts)
	}
	// The window starts at one call; the timeout keeps it there and ends
	// slow start; the successful retry adds one.
	if got := p.Stats().CallsAllowed; got != 2 {
		t.Errorf("CallsAllowed = %d after one timeout and one success, want 2", got)
	}
	for i := range 10 {
		if _, err := p.Put(context.Background(), "k"+strconv.Itoa(i), []byte("x")); err != nil {
			t.Fatal(err)
		}
		if err := p.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if got := p.Stats().CallsAllowed; got != 8 {
		t.Errorf("CallsAllowed = %d after ten more successful calls, want 8 (MaxConnections)", got)
	}
}

// TestARateLimitedShardWaitsForItsLimiter checks the dispatcher's decision
// for a shard whose sealed records wait for the rate limiter while its open
// aggregate has lingered: it must neither ask to be looked at again at once
// (which spins the dispatcher) nor seal the open aggregate early (which
// sends ever smaller Kinesis records).
// newTestShard returns a lone active shard over the whole hash space, with
// its environment, for tests of the shard's own logic.
func newTestShard(opts Options, now time.Time) *shard {
	env := &shardEnv{opts: &opts, sched: newScheduler()}
	env.window = newCallWindow(opts.MaxConnections, opts.AggregationMaxSize, opts.CollectionMaxSize, opts.RequestTimeout)
	env.aggPool.New = func() any { return aggregation.NewAggregator(opts.AggregationMaxSize, opts.AggregationMaxCount) }
	return newShard(shardInfo{id: "shardId-0", end: maxHash}, env, shardActive, now)
}

func TestARateLimitedShardWaitsForItsLimiter(t *testing.T) {
	opts := defaultOptions()
	opts.Linger = 10 * time.Millisecond
	base := time.Now()
	p := &Producer{opts: opts, base: base}
	now := base.Add(time.Second) // everything below lingered long ago
	s := newTestShard(opts, now)

	for i := range 20 {
		f := &Future{p: p, pk: "k", data: make([]byte, 100), size: 101, put: int64(i)}
		s.add(f)
		if i == 9 {
			s.seal() // ten records sealed and ready, ten in the open aggregate
		}
	}
	s.lim.tokB, s.lim.tokR = 0, 0 // the shard has used up its rate

	var out outbox
	next := s.takeInto(&call{}, now, opts.CollectionMaxSize, &out)
	if !next.After(now) {
		t.Errorf("takeInto asks to be called again at %v, not after now: the dispatcher would spin", next.Sub(now))
	}
	if want := s.lim.when(now, s.sealed[0].size); !next.Equal(want) {
		t.Errorf("takeInto wakes at +%v, want +%v, when the limiter allows", next.Sub(now), want.Sub(now))
	}
	if len(s.sealed) != 1 || len(s.aggRecs) != 10 {
		t.Errorf("sealed = %d records, open aggregate %d user records; want 1 and 10 (the open aggregate keeps filling)", len(s.sealed), len(s.aggRecs))
	}
}
