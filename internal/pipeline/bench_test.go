package pipeline

import (
	"context"
	"testing"
	"time"

	"github.com/kplgo/kpl/aggregation"
	"github.com/kplgo/kpl/finnhub"
	"github.com/kplgo/kpl/producer"
)

// nopSink accepts everything and resolves nothing; it isolates the cost of
// Handle (encoding and bookkeeping) from the producer's.
type nopSink struct{}

func (nopSink) PutAsync(context.Context, aggregation.Record, func(producer.Result, error)) {}
func (nopSink) Enqueue(context.Context, aggregation.Record, func(producer.Result, error)) error {
	return nil
}
func (nopSink) Shutdown(context.Context) error { return nil }
func (nopSink) Stats() producer.Stats          { return producer.Stats{} }

// BenchmarkHandle measures Handle on trades as the feed delivers them:
// parsed from a Finnhub message, so that each carries its raw JSON.
func BenchmarkHandle(b *testing.B) {
	msg, err := finnhub.ParseMessage([]byte(`{"type":"trade","data":[` +
		`{"c":["1","8","24","12"],"p":189.5,"s":"AAPL","t":1575526691134,"v":100},` +
		`{"c":["1","12"],"p":189.51,"s":"AAPL","t":1575526691135,"v":3},` +
		`{"c":null,"p":189.49,"s":"AAPL","t":1575526691136,"v":12},` +
		`{"c":["1"],"p":189.5,"s":"AAPL","t":1575526691137,"v":1},` +
		`{"c":["1","8"],"p":189.52,"s":"AAPL","t":1575526691138,"v":250}]}`))
	if err != nil {
		b.Fatal(err)
	}
	batch := msg.Data
	b.ReportAllocs()
	p := New(nopSink{}, Options{})
	ctx := context.Background()
	start := time.Now()
	for b.Loop() {
		if err := p.Handle(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/time.Since(start).Seconds(), "trades/s")
}
