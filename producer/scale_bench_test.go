package producer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/kplgo/kpl/aggregation"
	"github.com/kplgo/kpl/internal/cputime"
)

// putN puts n 120-byte records over keys from g goroutines and waits for
// them all; it returns the elapsed and CPU time.
func putN(b *testing.B, p *Producer, n int, keys []string) (time.Duration, time.Duration) {
	ctx := context.Background()
	payloads := make([][]byte, 1000)
	for i := range payloads {
		payloads[i] = trade(i)
	}
	cpu0, start := cputime.Process(), time.Now()
	done := make(chan struct{})
	const g = 4
	for w := range g {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := w; i < n; i += g {
				if _, err := p.Put(ctx, keys[i%len(keys)], payloads[i%len(payloads)]); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	for range g {
		<-done
	}
	if err := p.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	return time.Since(start), cputime.Process() - cpu0
}

// benchKeys are the partition keys of the shard-count benchmarks: the same
// 100,000 keys whatever the shard count, so that the hash cache and the
// aggregates' key tables cost the same per record, and only the shard count
// differs (every one of 5,000 shards gets records).
var benchKeys = spreadKeys(100_000)

// newBenchProducer returns a producer without rate limit into a counting
// client of the given shard count, closed when the benchmark ends.
func newBenchProducer(b *testing.B, shards int, optFns ...func(*Options)) *Producer {
	b.Helper()
	optFns = append([]func(*Options){func(o *Options) { o.RateLimit = 0 }}, optFns...)
	p, err := New(context.Background(), newCountingClient(shards), "bench", optFns...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Close() })
	return p
}

// spreadKeys returns n partition keys.
func spreadKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "key-" + strconv.Itoa(i)
	}
	return keys
}

// putSide is one side of an interleaved comparison: a producer and the
// keys of its records, named in the metrics.
type putSide struct {
	name string
	p    *Producer
	keys []string
}

// interleaved puts n records into each side in turn, b.N rounds, and
// reports each side's rate (recs/s-<name>) and the ratio of other's rate to
// base's (<other>/<base>). Taking turns, and swapping which goes first every
// round, puts both through the same moments of a shared machine's load,
// which sub-benchmarks run one after the other do not: a ratio of those
// drifts with the load.
func interleaved(b *testing.B, n int, base, other putSide) {
	b.Helper()
	b.ResetTimer()
	sides := [2]putSide{base, other}
	var el [2]time.Duration
	for i := range b.N {
		for j := range 2 {
			k := (i + j) % 2
			e, _ := putN(b, sides[k].p, n, sides[k].keys)
			el[k] += e
		}
	}
	recs := float64(n * b.N)
	for k, sd := range sides {
		b.ReportMetric(recs/el[k].Seconds(), "recs/s-"+sd.name)
	}
	b.ReportMetric(el[0].Seconds()/el[1].Seconds(), other.name+"/"+base.name)
}

// BenchmarkShards puts 200,000 records of 120 bytes at once into streams
// of 4, 2,000 and 5,000 shards: the cost per record must not grow with the
// shard count (the dispatcher visits only shards that have something).
// 2000-vs-4 puts the same rounds into 4 and 2,000 shards in turn and reports
// the ratio of their rates (target: >= 0.9); the other sub-benchmarks give
// each alone, with its CPU and the collector's share.
//
// 4-agg100 is 4 shards with aggregates of at most 100 records, the size
// they have at 2,000 shards (200,000 records over 2,000 shards): it
// separates the per-aggregate work from what the shard count itself costs.
func BenchmarkShards(b *testing.B) {
	b.Run("2000-vs-4", func(b *testing.B) {
		interleaved(b, 200_000, putSide{"4", newBenchProducer(b, 4), benchKeys}, putSide{"2000", newBenchProducer(b, 2000), benchKeys})
	})
	for _, tc := range []struct {
		name    string
		shards  int
		aggRecs int // AggregationMaxCount; 0 keeps the default
	}{{"4", 4, 0}, {"4-agg100", 4, 100}, {"2000", 2000, 0}, {"5000", 5000, 0}} {
		b.Run(tc.name, func(b *testing.B) {
			p := newBenchProducer(b, tc.shards, func(o *Options) {
				if tc.aggRecs > 0 {
					o.AggregationMaxCount = tc.aggRecs
				}
			})
			keys := benchKeys
			const n = 200_000
			b.ResetTimer()
			var el, cpu time.Duration
			gc0 := gcCPUTime()
			for range b.N {
				e, c := putN(b, p, n, keys)
				el, cpu = el+e, cpu+c
			}
			b.ReportMetric(float64(n*b.N)/el.Seconds(), "recs/s")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(n*b.N), "cpu-ns/rec")
			// The share of the garbage collector: at thousands of shards
			// every record stays buffered until its aggregate's linger
			// ends, and each collection marks them all.
			b.ReportMetric(float64((gcCPUTime()-gc0).Nanoseconds())/float64(n*b.N), "gc-cpu-ns/rec")
			b.ReportMetric(p.Stats().KinesisRecordsPerCall(), "krecs/call")
		})
	}
}

// BenchmarkTrickle puts 5,000 records per second, paced, for a second per
// iteration, into streams of 4 and 5,000 shards: the CPU per record of the
// large stream must stay within 2x of the small one, and records per call
// must not collapse (the linger timers of thousands of idle shards cost
// nothing; due shards share calls).
func BenchmarkTrickle(b *testing.B) {
	for _, shards := range []int{4, 5000} {
		b.Run(strconv.Itoa(shards), func(b *testing.B) {
			p := newBenchProducer(b, shards)
			keys := benchKeys
			payload := trade(1)
			ctx := context.Background()
			const rate = 5000
			runtime.GC() // New's garbage is not the trickle's cost
			b.ResetTimer()
			cpu0 := cputime.Process()
			n := 0
			for range b.N {
				start := time.Now()
				for i := range rate {
					if d := time.Until(start.Add(time.Duration(i) * time.Second / rate)); d > 0 && i%50 == 0 {
						time.Sleep(d)
					}
					if _, err := p.Put(ctx, keys[n%len(keys)], payload); err != nil {
						b.Fatal(err)
					}
					n++
				}
			}
			if err := p.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			cpu := cputime.Process() - cpu0
			st := p.Stats()
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "cpu-ns/rec")
			b.ReportMetric(st.UserRecordsPerKinesisRecord()*st.KinesisRecordsPerCall(), "recs/call")
		})
	}
}

// BenchmarkRandomKeys compares 16-character random partition keys (request
// ids, device ids) with the 50 symbols of the trade feed: the hash cache
// must not make high-cardinality keys slow (target: >= 0.7x the symbols'
// rate in the same run). random16-vs-symbols puts rounds of each in turn
// and reports the ratio; the other sub-benchmarks give each alone, with its
// allocations (uuid: random 36-character keys).
func BenchmarkRandomKeys(b *testing.B) {
	random := make([]string, 1<<16)
	for i := range random {
		var buf [8]byte
		_, _ = rand.Read(buf[:])
		random[i] = hex.EncodeToString(buf[:])
	}
	uuids := make([]string, 1<<16) // 36 characters: hashed without allocating too
	for i := range uuids {
		var buf [16]byte
		_, _ = rand.Read(buf[:])
		h := hex.EncodeToString(buf[:])
		uuids[i] = h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
	}
	symbols := make([]string, 50)
	for i := range symbols {
		symbols[i] = "SYM" + strconv.Itoa(i)
	}
	b.Run("random16-vs-symbols", func(b *testing.B) {
		interleaved(b, 50_000, putSide{"symbols", newBenchProducer(b, 4), symbols}, putSide{"random16", newBenchProducer(b, 4), random})
	})
	for _, tc := range []struct {
		name string
		keys []string
	}{{"symbols", symbols}, {"random16", random}, {"uuid", uuids}} {
		b.Run(tc.name, func(b *testing.B) {
			c := newCountingClient(4)
			p, err := New(context.Background(), c, "bench", func(o *Options) { o.RateLimit = 0 })
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			b.ReportAllocs()
			b.ResetTimer()
			el, cpu := putN(b, p, b.N, tc.keys)
			b.ReportMetric(float64(b.N)/el.Seconds(), "recs/s")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/rec")
		})
	}
}

// BenchmarkBufferedHeap fills the buffer with 4 KB records while every call
// hangs, then measures the heap in use against MaxBufferedBytes: the
// producer holds the data once (target: at most 1.5x + 8 MiB).
func BenchmarkBufferedHeap(b *testing.B) {
	const bufBytes = 64 << 20
	for range b.N {
		c := newFakeClient(4)
		release := make(chan struct{})
		c.script = func(ctx context.Context, _ int, _ *kinesis.PutRecordsInput) ([]string, error) {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil, ctx.Err()
		}
		p, err := New(context.Background(), c, "bench", func(o *Options) {
			o.RateLimit = 0
			o.MaxBufferedBytes = bufBytes
			o.FailWhenFull = true
			o.RequestTimeout = time.Hour
		})
		if err != nil {
			b.Fatal(err)
		}
		// Twice: what the last iteration's producer left in its pools
		// (sync.Pool keeps a victim cache through one collection) must
		// not count in the baseline.
		runtime.GC()
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		ctx := context.Background()
		for i := 0; ; i++ {
			data := make([]byte, 4096) // a fresh buffer per record, as a caller would have
			data[0] = byte(i)
			if _, err := p.Put(ctx, "key-"+strconv.Itoa(i%1000), data); err != nil {
				break
			}
		}
		time.Sleep(100 * time.Millisecond) // let the calls start and encode
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		buffered := p.Stats().BufferedBytes
		heap := float64(after.HeapAlloc) - float64(before.HeapAlloc)
		b.ReportMetric(heap/float64(buffered), "heap/buffered")
		b.ReportMetric(heap/(1<<20), "heap-MiB")
		// Close waits for every goroutine and result, so that nothing of
		// this producer is left in the next iteration's baseline.
		close(release)
		if err := p.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeAtScale sends 1 KiB records through a producer into a
// counting client of 1,000 shards, with the batch encoder hashing in SIMD
// lanes and with crypto/md5, in one run, and reports the CPU per GB sent:
// what the lanes save where a stream moves 1 GB/s.
func BenchmarkEncodeAtScale(b *testing.B) {
	for _, mode := range []aggregation.HashMode{aggregation.HashLanes, aggregation.HashStdlib} {
		b.Run(mode.String(), func(b *testing.B) {
			pool, err := NewPool()
			if err != nil {
				b.Fatal(err)
			}
			pool.enc.close()
			pool.enc = newEncoderMode(mode)
			p, err := New(context.Background(), newCountingClient(1000), "bench", func(o *Options) { o.RateLimit = 0; o.Pool = pool })
			if err != nil {
				b.Fatal(err)
			}
			keys := spreadKeys(20_000)
			data := make([]byte, 1024)
			ctx := context.Background()
			b.ResetTimer()
			cpu0 := cputime.Process()
			for i := range b.N {
				if _, err := p.Put(ctx, keys[i%len(keys)], data); err != nil {
					b.Fatal(err)
				}
			}
			if err := p.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			cpu := cputime.Process() - cpu0
			b.StopTimer()
			sent := p.Stats().BytesSent
			if err := p.Close(); err != nil {
				b.Fatal(err)
			}
			if err := pool.Close(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(cpu.Seconds()/(float64(sent)/1e9), "cpu-s/GB")
		})
	}
}
