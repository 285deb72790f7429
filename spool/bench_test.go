package spool

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kplgo/kpl/aggregation"
	"github.com/kplgo/kpl/internal/loadgen"
	"github.com/kplgo/kpl/producer"
)

// trade is a 120-byte record like a Finnhub trade as JSON.
func trade(i int) aggregation.Record {
	b := fmt.Appendf(nil, `{"s":"SYM%02d","p":189.5%04d,"t":17000000%05d,"v":100,"c":["1","12"]}`, i%50, i%10000, i%100000)
	for len(b) < 120 {
		b = append(b, ' ')
	}
	return aggregation.Record{PartitionKey: fmt.Sprintf("SYM%02d", i%50), Data: b[:120]}
}

// pipelineB is a spool feeding a producer that sends into the counting
// client, with the default sync policy.
type pipelineB struct {
	s    *Spool
	p    *producer.Producer
	f    *Forwarder
	stop func()
	done chan error
}

func newPipelineB(b *testing.B, fns ...func(*Options)) *pipelineB {
	b.Helper()
	s, err := Open(context.Background(), b.TempDir(), fns...)
	if err != nil {
		b.Fatal(err)
	}
	p, err := producer.New(context.Background(), loadgen.NewCountingClient(4), "bench", func(o *producer.Options) {
		o.RateLimit = 0 // the counting client has no limits to respect
	})
	if err != nil {
		b.Fatal(err)
	}
	f, err := NewForwarder(s, p)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pl := &pipelineB{s: s, p: p, f: f, stop: cancel, done: make(chan error, 1)}
	go func() { pl.done <- f.Run(ctx) }()
	return pl
}

func (pl *pipelineB) close(b *testing.B) {
	pl.stop()
	if err := pl.p.Close(); err != nil {
		b.Error(err)
	}
	if err := <-pl.done; err != nil {
		b.Error(err)
	}
	if err := pl.s.Close(); err != nil {
		b.Error(err)
	}
}

// BenchmarkSpoolProducer measures records of 120 B through spool and
// producer into the counting client with the default sync policy, until
// every record is acknowledged by its result. recs/s is the end-to-end rate,
// durable-recs/s the rate at which appends were durable.
//
//   - sync: 8 goroutines call AppendBatch with 100 records each, every call
//     waiting for its commit.
//   - producer-only: the baseline, one goroutine putting the records
//     straight into the producer.
//   - async: one goroutine (like the trade feed's reader) calls AppendAsync
//     with 100 records each and hands the Commit to another goroutine that
//     waits for them in order.
func BenchmarkSpoolProducer(b *testing.B) {
	const batch = 100
	recs := make([]aggregation.Record, 1000)
	for i := range recs {
		recs[i] = trade(i)
	}
	run := func(b *testing.B, feed func(pl *pipelineB)) {
		pl := newPipelineB(b)
		b.ReportAllocs()
		b.ResetTimer()
		start := time.Now()
		feed(pl)
		durable := time.Since(start)
		for pl.s.Stats().Acknowledged < uint64(b.N) {
			time.Sleep(100 * time.Microsecond)
		}
		all := time.Since(start)
		b.StopTimer()
		st := pl.s.Stats()
		b.ReportMetric(float64(b.N)/all.Seconds(), "recs/s")
		b.ReportMetric(float64(b.N)/durable.Seconds(), "durable-recs/s")
		b.ReportMetric(float64(st.Fsyncs)/all.Seconds(), "fsyncs/s")
		pl.close(b)
	}
	b.Run("producer-only", func(b *testing.B) {
		// The baseline: the same records put straight into the producer.
		p, err := producer.New(context.Background(), loadgen.NewCountingClient(4), "bench", func(o *producer.Options) { o.RateLimit = 0 })
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		start := time.Now()
		for i := 0; i < b.N; i++ {
			if _, err := p.PutRecord(context.Background(), recs[i%len(recs)]); err != nil {
				b.Fatal(err)
			}
		}
		if err := p.Flush(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "recs/s")
		b.StopTimer()
		if err := p.Close(); err != nil {
			b.Error(err)
		}
	})
	b.Run("sync", func(b *testing.B) {
		run(b, func(pl *pipelineB) {
			b.SetParallelism(8 / runtime.GOMAXPROCS(0))
			b.RunParallel(func(pb *testing.PB) {
				buf := make([]aggregation.Record, 0, batch)
				i := 0
				for more := true; more; {
					more = pb.Next()
					if more {
						buf = append(buf, recs[i%len(recs)])
						i++
					}
					if len(buf) == batch || !more && len(buf) > 0 {
						if _, err := pl.s.AppendBatch(context.Background(), buf); err != nil {
							b.Error(err)
						}
						buf = buf[:0]
					}
				}
			})
		})
	})
	b.Run("async", func(b *testing.B) {
		run(b, func(pl *pipelineB) {
			commits := make(chan *Commit, 1024)
			waited := make(chan struct{})
			go func() {
				defer close(waited)
				for c := range commits {
					if err := c.Wait(context.Background()); err != nil {
						b.Error(err)
					}
				}
			}()
			buf := make([]aggregation.Record, 0, batch)
			for i := 0; i < b.N; i++ {
				buf = append(buf, recs[i%len(recs)])
				if len(buf) == batch || i == b.N-1 {
					_, c, err := pl.s.AppendAsync(context.Background(), buf)
					if err != nil {
						b.Error(err)
					}
					commits <- c
					buf = make([]aggregation.Record, 0, batch) // the ids are written into it
				}
			}
			close(commits)
			<-waited
		})
	})
}

// BenchmarkAppendLatency measures Put-to-durable latency (one Append call)
// at 2,000 records/s, with the forwarder and producer running: b.N records
// paced evenly, each appended by one of 256 goroutines (enough that a
// stall of the disk does not hold records back before their Append call),
// latency counted from the call. Run it with
// -benchtime=10000x (5 s). "default" is the default sync policy; "nosync"
// (Options.NoSync) shows what the fsyncs cost; "raw-fsync" is the disk's
// own latency for one small write and fsync, the floor of any durable
// append.
func BenchmarkAppendLatency(b *testing.B) {
	for _, c := range []struct {
		name string
		fn   func(*Options)
	}{
		{"default", func(*Options) {}},
		{"nosync", func(o *Options) { o.NoSync = true }},
	} {
		b.Run(c.name, func(b *testing.B) { benchmarkLatency(b, c.fn) })
	}
	// The disk's own figure: one write and fsync of a 150-byte frame per
	// record, paced the same way, in a file of the same directory kind.
	b.Run("raw-fsync", func(b *testing.B) {
		var slow time.Duration // fsyncs above 10 ms
		f, err := os.CreateTemp(b.TempDir(), "fsync")
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		frame := make([]byte, 150)
		lat := make([]time.Duration, b.N)
		b.ResetTimer()
		start := time.Now()
		for i := 0; i < b.N; i++ {
			due := start.Add(time.Duration(i) * time.Second / 2000)
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
			t := time.Now()
			if _, err := f.Write(frame); err != nil {
				b.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
			lat[i] = time.Since(t)
			if lat[i] > 10*time.Millisecond {
				slow += lat[i]
			}
		}
		b.StopTimer()
		reportLatency(b, lat, start)
		// Every record that arrives during a slow fsync waits for it: when
		// slow fsyncs take more than 1% of the time, a durable append's
		// p99 cannot be below 10 ms on this disk.
		b.ReportMetric(100*slow.Seconds()/time.Since(start).Seconds(), "%time-in-slow-fsyncs")
	})
}

// reportLatency reports the quantiles of lat and the rate since start.
func reportLatency(b *testing.B, lat []time.Duration, start time.Time) {
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / 1e6 }
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(q(1), "max-ms")
	b.ReportMetric(float64(len(lat))/time.Since(start).Seconds(), "recs/s")
}

func benchmarkLatency(b *testing.B, fn func(*Options)) {
	const rate = 2000
	pl := newPipelineB(b, fn)
	work := make(chan int, b.N)
	lat := make([]time.Duration, b.N)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	due := func(i int) time.Time { return start.Add(time.Duration(i) * time.Second / rate) }
	for w := 0; w < 256; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				t := time.Now()
				if _, err := pl.s.Append(context.Background(), trade(i)); err != nil {
					b.Error(err)
				}
				lat[i] = time.Since(t)
			}
		}()
	}
	for i := 0; i < b.N; i++ {
		if d := time.Until(due(i)); d > 0 {
			time.Sleep(d)
		}
		work <- i
	}
	close(work)
	wg.Wait()
	b.StopTimer()
	reportLatency(b, lat, start)
	pl.close(b)
}
