package producer

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestProducersOfAPoolShareItsBufferAndSenders(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	pool, err := NewPool(func(o *PoolOptions) { o.MaxConnections = 3; o.MaxBufferedRecords = 10 })
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	clients := []*fakeClient{newFakeClient(2), newFakeClient(3), newFakeClient(1)}
	var ps []*Producer
	for i, c := range clients {
		p, err := New(ctx, c, fmt.Sprintf("stream-%d", i), fast, func(o *Options) {
			o.Pool = pool
			o.FailWhenFull = true
			o.Linger, o.RecordTTL = time.Hour, 2*time.Hour // nothing goes before Flush
		})
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	// The bound is the pool's: 10 records across the three producers.
	accepted := 0
	for i := range 30 {
		if _, err := ps[i%3].Put(ctx, fmt.Sprint("k", i), []byte("x")); err == nil {
			accepted++
		} else if !errors.Is(err, ErrBufferFull) {
			t.Fatal(err)
		}
	}
	if accepted != 10 {
		t.Errorf("%d records accepted across the pool, want its bound of 10", accepted)
	}
	if err := pool.Close(); err == nil {
		t.Error("the pool closed while its producers still use it")
	}
	for _, p := range ps {
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
	}
	delivered := 0
	for _, c := range clients {
		view, _ := kclView(t, c)
		for _, urs := range view {
			delivered += len(urs)
		}
	}
	if delivered != accepted {
		t.Errorf("%d records delivered of %d accepted", delivered, accepted)
	}
	if err := pool.Close(); err != nil {
		t.Errorf("closing the pool after its producers: %v", err)
	}
	if _, err := New(ctx, newFakeClient(1), "late", fast, func(o *Options) { o.Pool = pool }); err == nil {
		t.Error("a producer joined a closed pool")
	}
}

// BenchmarkManyStreams writes to 50 streams of 4 shards from one process,
// with one pool and with a private pool per producer, and reports the
// goroutines and the idle heap each stream costs, and the rate.
func BenchmarkManyStreams(b *testing.B) {
	const streams = 50
	for _, shared := range []bool{true, false} {
		name := map[bool]string{true: "pool", false: "private"}[shared]
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			runtime.GC()
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			g0 := runtime.NumGoroutine()
			var pool *Pool
			if shared {
				var err error
				if pool, err = NewPool(); err != nil {
					b.Fatal(err)
				}
			}
			ps := make([]*Producer, streams)
			for i := range ps {
				p, err := New(ctx, newCountingClient(4), fmt.Sprint("stream-", i), func(o *Options) { o.RateLimit = 0; o.Pool = pool })
				if err != nil {
					b.Fatal(err)
				}
				ps[i] = p
			}
			runtime.GC()
			var idle runtime.MemStats
			runtime.ReadMemStats(&idle)
			goroutines := float64(runtime.NumGoroutine()-g0) / streams
			idleKiB := (float64(idle.HeapAlloc) - float64(before.HeapAlloc)) / streams / 1024
			payload := trade(1)
			b.ResetTimer()
			for i := range b.N {
				if _, err := ps[i%streams].Put(ctx, "SYM"+fmt.Sprint(i%50), payload); err != nil {
					b.Fatal(err)
				}
			}
			for _, p := range ps {
				if err := p.Close(); err != nil {
					b.Fatal(err)
				}
			}
			if pool != nil {
				if err := pool.Close(); err != nil {
					b.Fatal(err)
				}
			}
			// After the timed loop: ResetTimer drops reported metrics.
			b.ReportMetric(goroutines, "goroutines/stream")
			b.ReportMetric(idleKiB, "idle-KiB/stream")
		})
	}
}

// TestShutdownOfOneProducerOfAPoolDoesNotWaitForAnother: the pool's only
// sender is stuck in producer A's call (a client that ignores its
// context), and producer B's call waits behind it in the pool's queue.
// B.Shutdown(ctx) returns when its ctx ends, its record failed as never
// sent; it does not wait for A's call.
func TestShutdownOfOneProducerOfAPoolDoesNotWaitForAnother(t *testing.T) {
	t.Parallel()
	pool, err := NewPool(func(o *PoolOptions) { o.MaxConnections = 1 })
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	stuck := newStubbornClient()
	a, err := New(ctx, stuck, "a", fast, func(o *Options) { o.Pool = pool })
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(ctx, newFakeClient(1), "b", fast, func(o *Options) { o.Pool = pool })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Put(ctx, "k", []byte("a")); err != nil {
		t.Fatal(err)
	}
	<-stuck.entered // the only sender is in A's call
	fb, err := b.Put(ctx, "k", []byte("b"))
	if err != nil {
		t.Fatal(err)
	}
	shutdownBy(t, b, 100*time.Millisecond) // not waiting for A's call
	var re *RecordError
	if _, err := fb.Wait(ctx); !errors.Is(err, ErrClosed) || !errors.As(err, &re) || re.MaybeStored {
		t.Errorf("B's record: %v, want ErrClosed, not maybe stored (never sent)", err)
	}
	close(stuck.release)
	if err := a.Close(); err != nil {
		t.Error(err)
	}
	if err := pool.Close(); err != nil {
		t.Error(err)
	}
}
