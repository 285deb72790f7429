package aggregation

import (
	"crypto/md5"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/kplgo/kpl/internal/cputime"
)

// benchBatchAggregates is the number of aggregates in one benchmark batch:
// about what one PutRecords call carries at the 5 MiB request limit with
// aggregates of the default 51200 bytes.
const benchBatchAggregates = 100

// sealedBatch returns n full aggregates of benchMaxSize bytes holding
// records of size bytes with the benchmark's 16 repeating partition keys,
// and the number of user records in them.
func sealedBatch(b *testing.B, n, size int) ([]*Aggregator, int) {
	b.Helper()
	recs := benchRecords(size)
	aggs := make([]*Aggregator, n)
	records := 0
	for i := range aggs {
		a := NewAggregator(benchMaxSize, 0)
		for j := 0; a.Add(recs[j%len(recs)]) == nil; j++ {
		}
		aggs[i] = a
		records += a.Count()
	}
	return aggs, records
}

// runPerRecord runs encode once per batch of records user records from
// GOMAXPROCS goroutines at once (b.RunParallel), each with its own buffers,
// and reports records/s and heap allocations per record.
func runPerRecord(b *testing.B, records int, encode func(dsts [][]byte)) {
	b.Helper()
	// One set of buffers per goroutine, made before counting allocations.
	bufs := make(chan [][]byte, runtime.GOMAXPROCS(0))
	for range cap(bufs) {
		dsts := make([][]byte, benchBatchAggregates)
		for i := range dsts {
			dsts[i] = make([]byte, 0, benchMaxSize)
		}
		bufs <- dsts
	}
	// Warm up: the encoder makes a set of lane hashers per call in flight
	// on first use.
	var wg sync.WaitGroup
	for range cap(bufs) {
		wg.Go(func() {
			dsts := <-bufs
			for range 3 {
				for i := range dsts {
					dsts[i] = dsts[i][:0]
				}
				encode(dsts)
			}
			bufs <- dsts
		})
	}
	wg.Wait()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		dsts := <-bufs
		for pb.Next() {
			for i := range dsts {
				dsts[i] = dsts[i][:0]
			}
			encode(dsts)
		}
	})
	b.StopTimer()
	runtime.ReadMemStats(&after)
	n := float64(b.N) * float64(records)
	b.ReportMetric(n/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/n, "allocs/record")
	b.ReportMetric(0, "ns/op") // per batch: records/s is the figure
}

// BenchmarkBatchEncoder compares, in one run, the three ways to put MD5
// trailers on a PutRecords call's worth of full aggregates (100 of 51200
// bytes): the batch encoder (HashAuto: md5-simd lanes on this CPU when it
// has AVX2 or AVX-512), the single encoder (Aggregator.AppendEncoded one
// aggregate after another), and the single-stream floor (crypto/md5 over the
// same protobuf bytes, without even the copy). Run it with -cpu 1,2: every
// variant runs in GOMAXPROCS goroutines at once, as the producer's
// concurrent PutRecords calls would; the batch encoder's goroutines share
// one hashing server.
func BenchmarkBatchEncoder(b *testing.B) {
	b.Logf("lanes supported: %v", LanesSupported())
	for _, bs := range benchSizes[:3] {
		aggs, records := sealedBatch(b, benchBatchAggregates, bs.size)
		b.Run(bs.name+"/batch", func(b *testing.B) {
			e := NewBatchEncoder(HashAuto)
			defer e.Close()
			runPerRecord(b, records, func(dsts [][]byte) { e.AppendEncoded(dsts, aggs) })
		})
		b.Run(bs.name+"/single", func(b *testing.B) {
			runPerRecord(b, records, func(dsts [][]byte) {
				for i, a := range aggs {
					dsts[i] = a.AppendEncoded(dsts[i])
				}
			})
		})
		b.Run(bs.name+"/md5floor", func(b *testing.B) {
			bodies := make([][]byte, len(aggs))
			for i, a := range aggs {
				enc := a.AppendEncoded(nil)
				bodies[i] = enc[len(MagicPrefix) : len(enc)-DigestSize]
			}
			runPerRecord(b, records, func(dsts [][]byte) {
				for i, body := range bodies {
					sum := md5.Sum(body)
					dsts[i] = append(dsts[i], sum[:]...)
				}
			})
		})
	}
}

// BenchmarkBatchAggregate is BenchmarkAggregate's whole path, Add included,
// with the batch encoder: one goroutine fills 100 aggregates of 51200 bytes
// from records taking turns over 16 partition keys, encodes them as one
// batch, resets them and starts over. The single variant encodes each
// aggregate with AppendEncoded as it fills, as BenchmarkAggregate does.
func BenchmarkBatchAggregate(b *testing.B) {
	for _, bs := range benchSizes[:3] {
		recs := benchRecords(bs.size)
		for _, batch := range []bool{true, false} {
			name := bs.name + "/single"
			if batch {
				name = bs.name + "/batch"
			}
			b.Run(name, func(b *testing.B) {
				e := NewBatchEncoder(HashAuto)
				defer e.Close()
				aggs := make([]*Aggregator, benchBatchAggregates)
				dsts := make([][]byte, benchBatchAggregates)
				for i := range aggs {
					aggs[i] = NewAggregator(benchMaxSize, 0)
					dsts[i] = make([]byte, 0, benchMaxSize)
				}
				// Warm up: grow every aggregator's buffers and key index to
				// a full aggregate's, and make the encoder's lane hashers.
				for _, a := range aggs {
					for j := 0; a.Add(recs[j%len(recs)]) == nil; j++ {
					}
				}
				e.AppendEncoded(dsts, aggs)
				for i, a := range aggs {
					a.Reset()
					dsts[i] = dsts[i][:0]
				}
				// full counts the sealed aggregates waiting for the batch;
				// the single variant encodes each as it fills, in dsts[0].
				full := 0
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				b.ResetTimer()
				j := 0
				for range b.N {
					r := recs[j]
					if j++; j == len(recs) {
						j = 0
					}
					if err := aggs[full].Add(r); err == nil {
						continue
					}
					if batch {
						if full++; full == len(aggs) {
							e.AppendEncoded(dsts, aggs)
							for i := range aggs {
								aggs[i].Reset()
								dsts[i] = dsts[i][:0]
							}
							full = 0
						}
					} else {
						dsts[0] = aggs[0].AppendEncoded(dsts[0][:0])
						aggs[0].Reset()
					}
					if err := aggs[full].Add(r); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
				b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(b.N), "allocs/record")
			})
		}
	}
}

// BenchmarkBatchEncoderLanes measures where lanes start to pay off: a batch
// of n aggregates of 51200 bytes hashed by a HashLanes encoder and with
// crypto/md5 one after another (HashStdlib), for n from 1 to 16, the two
// interleaved as in BenchmarkBatchEncoderPaired. The crossover, where
// lanes/stdlib passes 1, sets minAutoLanes.
func BenchmarkBatchEncoderLanes(b *testing.B) {
	aggs, _ := sealedBatch(b, 16, 120)
	for _, n := range []int{1, 2, 3, 4, 5, 6, 8, 12, 16} {
		b.Run(fmt.Sprint(n), func(b *testing.B) { benchLanesVsStdlib(b, aggs[:n]) })
	}
}

// benchLanesVsStdlib encodes aggs with a HashLanes and a HashStdlib encoder
// in turn, timing each, and reports their rates and lanes/stdlib.
func benchLanesVsStdlib(b *testing.B, aggs []*Aggregator) {
	encs := []*BatchEncoder{NewBatchEncoder(HashLanes), NewBatchEncoder(HashStdlib)}
	defer encs[0].Close()
	dsts := make([][]byte, len(aggs))
	for i, a := range aggs {
		dsts[i] = make([]byte, 0, a.Size())
	}
	var spent [2]time.Duration
	b.ReportAllocs()
	for b.Loop() {
		for k, e := range encs {
			for i := range dsts {
				dsts[i] = dsts[i][:0]
			}
			start := time.Now()
			e.AppendEncoded(dsts, aggs)
			spent[k] += time.Since(start)
		}
	}
	rate := func(k int) float64 { return float64(b.N*len(aggs)) / spent[k].Seconds() }
	b.ReportMetric(rate(0), "lanes-aggregates/s")
	b.ReportMetric(rate(1), "stdlib-aggregates/s")
	b.ReportMetric(rate(0)/rate(1), "lanes/stdlib")
}

// BenchmarkBatchEncoderPaired measures the same three encoders as
// BenchmarkBatchEncoder, but interleaved: every iteration encodes one batch
// with each of them in turn, timing each, so that load from other processes
// on a shared machine hits all three alike and the ratios it reports
// (batch/single, batch/md5floor, computed from the process's CPU time) hold
// even when the absolute rates drift. It runs in one goroutine.
func BenchmarkBatchEncoderPaired(b *testing.B) {
	for _, bs := range benchSizes[:3] {
		b.Run(bs.name, func(b *testing.B) {
			aggs, records := sealedBatch(b, benchBatchAggregates, bs.size)
			e := NewBatchEncoder(HashAuto)
			defer e.Close()
			bodies := make([][]byte, len(aggs))
			dsts := make([][]byte, len(aggs))
			aggBytes := 0
			for i, a := range aggs {
				enc := a.AppendEncoded(nil)
				bodies[i] = enc[len(MagicPrefix) : len(enc)-DigestSize]
				dsts[i] = make([]byte, 0, benchMaxSize)
				aggBytes += len(enc)
			}
			reset := func() {
				for i := range dsts {
					dsts[i] = dsts[i][:0]
				}
			}
			variants := []func(){
				func() { e.AppendEncoded(dsts, aggs) },
				func() {
					for i, a := range aggs {
						dsts[i] = a.AppendEncoded(dsts[i])
					}
				},
				func() {
					for i, body := range bodies {
						sum := md5.Sum(body)
						dsts[i] = append(dsts[i], sum[:]...)
					}
				},
			}
			for _, v := range variants { // warm up
				reset()
				v()
			}
			var spent, cpu [3]time.Duration
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			b.ResetTimer()
			for range b.N {
				for k, v := range variants {
					reset()
					start, cpuStart := time.Now(), cputime.Process()
					v()
					spent[k] += time.Since(start)
					cpu[k] += cputime.Process() - cpuStart
				}
			}
			b.StopTimer()
			runtime.ReadMemStats(&after)
			n := float64(b.N) * float64(records)
			rate := func(k int) float64 { return n / spent[k].Seconds() }
			cpuRate := func(k int) float64 { return n / cpu[k].Seconds() }
			b.ReportMetric(rate(0), "batch-records/s")
			b.ReportMetric(rate(1), "single-records/s")
			b.ReportMetric(rate(2), "md5floor-records/s")
			// The same per second of the process's CPU time (the hashing
			// servers' included), which time taken by other processes on a
			// shared machine does not inflate; the ratios use these.
			b.ReportMetric(cpuRate(0), "batch-records/cpu-s")
			b.ReportMetric(cpuRate(1), "single-records/cpu-s")
			b.ReportMetric(cpuRate(2), "md5floor-records/cpu-s")
			b.ReportMetric(cpuRate(0)/cpuRate(1), "batch/single")
			b.ReportMetric(cpuRate(0)/cpuRate(2), "batch/md5floor")
			b.ReportMetric(cpu[0].Seconds()/(n*float64(aggBytes)/float64(records)/1e9), "batch-cpu-s/GB")
			b.ReportMetric(float64(aggBytes)/float64(records), "B/record")
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/(3*n), "allocs/record")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkBatchEncoderAggregateSize measures lanes against crypto/md5 for
// groups of n aggregates of several sizes, interleaved as in
// BenchmarkBatchEncoderLanes: small aggregates (a lightly loaded shard's,
// sent at the linger deadline) have little to hash per digest, while every
// digest still costs a round trip to the hashing server. The crossover sets
// minAutoLaneBytes.
func BenchmarkBatchEncoderAggregateSize(b *testing.B) {
	for _, n := range []int{3, 4, 8, 16} {
		for _, size := range []int{256, 1 << 10, 2 << 10, 4 << 10, 8 << 10, 16 << 10} {
			b.Run(fmt.Sprintf("%dx%d", n, size), func(b *testing.B) {
				data := make([]byte, 120)
				aggs := make([]*Aggregator, n)
				for i := range aggs {
					aggs[i] = NewAggregator(size, 0)
					for j := 0; aggs[i].Add(Record{PartitionKey: benchSymbols[j%len(benchSymbols)], Data: data}) == nil; j++ {
					}
				}
				benchLanesVsStdlib(b, aggs)
			})
		}
	}
}
