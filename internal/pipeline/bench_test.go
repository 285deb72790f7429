package pipeline

import (
	"context"
	"testing"
	"time"

	"github.com/kplgo/kpl/producer"
)

// nopSink accepts everything and resolves nothing; it isolates the cost of
// Handle (encoding and bookkeeping) from the producer's.
type nopSink struct{ w Waiter }

func (s nopSink) Put(context.Context, string, []byte) (Waiter, error) { return s.w, nil }
func (nopSink) Shutdown(context.Context) error                        { return nil }
func (nopSink) Stats() producer.Stats                                 { return producer.Stats{} }

func BenchmarkHandle(b *testing.B) {
	batch := trades("AAPL", 5)
	b.ReportAllocs()
	p := New(nopSink{w: &fakeWaiter{done: make(chan struct{})}}, Options{})
	ctx := context.Background()
	start := time.Now()
	for b.Loop() {
		if err := p.Handle(ctx, batch); err != nil {
			b.Fatal(err)
		}
		p.queue.drain() // keep the pending queue from growing without bound
	}
	b.ReportMetric(float64(b.N*len(batch))/time.Since(start).Seconds(), "trades/s")
}
