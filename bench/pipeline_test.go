package bench

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kplgo/kpl/internal/cputime"
	"github.com/kplgo/kpl/internal/loadgen"
	"github.com/kplgo/kpl/producer"
)

// tradeRing pre-generates n trades of about size bytes (0: natural ~120 B)
// so that a benchmark measures the producer, not the generator. The producer
// never modifies data, so reusing a payload is safe.
func tradeRing(n, symbols, size int) (keys []string, data [][]byte) {
	g := loadgen.NewGenerator(loadgen.DefaultSymbols(symbols), size, 1)
	now := time.Now()
	for i := 0; i < n; i++ {
		k, d := g.Next(now)
		keys = append(keys, k)
		data = append(data, d)
	}
	return keys, data
}

// BenchmarkPipeline measures the producer's overhead per trade: Put,
// routing, aggregation, batching, the PutRecords request built and its
// response matched back to every trade's Future, into a client that answers
// at once. One op is one trade of 120 bytes (1 KiB in one case); trades/s is
// the rate over GOMAXPROCS goroutines calling Put.
func BenchmarkPipeline(b *testing.B) {
	cases := []struct {
		name    string
		size    int
		symbols int
		opts    func(*producer.Options)
	}{
		{name: "aggregated/120B", size: 120, symbols: 50},
		{name: "aggregated/1KiB", size: 1024, symbols: 50},
		{name: "aggregated-ordered/120B", size: 120, symbols: 50, opts: func(o *producer.Options) { o.Ordered = true }},
		{name: "unaggregated/120B", size: 120, symbols: 50, opts: func(o *producer.Options) { o.AggregationEnabled = false }},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			keys, data := tradeRing(4096, tc.symbols, tc.size)
			client := loadgen.NewCountingClient(4)
			ctx := context.Background()
			p, err := producer.New(ctx, client, "bench", func(o *producer.Options) {
				o.RateLimit = 0 // the counting client has no limits to respect
				if tc.opts != nil {
					tc.opts(o)
				}
			})
			if err != nil {
				b.Fatal(err)
			}
			var next atomic.Int64
			var dataBytes atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cputime.Process()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				var sum int64
				for pb.Next() {
					i := next.Add(1) & 4095
					if _, err := p.Put(ctx, keys[i], data[i]); err != nil {
						b.Error(err)
						return
					}
					sum += int64(len(data[i]))
				}
				dataBytes.Add(sum)
			})
			if err := p.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			elapsed := time.Since(start)
			cpu := cputime.Process() - cpu0
			b.StopTimer()
			st := p.Stats()
			if err := p.Close(); err != nil {
				b.Fatal(err)
			}
			if st.UserRecordsFailed != 0 || st.UserRecordsSucceeded != uint64(b.N) {
				b.Fatalf("%d of %d trades succeeded, %d failed", st.UserRecordsSucceeded, b.N, st.UserRecordsFailed)
			}
			kc := client.Counters()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "trades/s")
			// CPU time per trade (user+system, all threads) is steadier than
			// wall time on a shared machine: 1 M trades/s on 2 cores needs at
			// most 2000 ns.
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/trade")
			b.ReportMetric(float64(kc.Bytes)/float64(b.N), "wireB/trade")
			b.ReportMetric(float64(b.N)/float64(max(kc.KinesisRecords, 1)), "trades/krec")
		})
	}
}
