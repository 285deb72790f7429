package dedupe

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/kplgo/kpl/aggregation"
)

// BenchmarkCheck measures Check per user record as a consumer calls it after
// Deaggregate: aggregates of 400 user records (one Kinesis sequence number,
// sub-sequence numbers 0 to 399) from one producer id with consecutive
// sequence numbers, and every 50th aggregate read a second time as a retry
// copy (a duplicate). "lanes" is the number of producer ids taking turns
// aggregate by aggregate: 4 is a producer on a 4-shard stream, 1000 makes
// every aggregate a producer id change past the cache.
func BenchmarkCheck(b *testing.B) {
	for _, lanes := range []int{1, 4, 1000} {
		b.Run(fmt.Sprintf("lanes=%d", lanes), func(b *testing.B) {
			const perAgg = 400
			pids := make([]string, lanes)
			for i := range pids {
				pids[i] = fmt.Sprintf("%032x", i+1)
			}
			seqs := make([]uint64, lanes)
			// Kinesis sequence numbers as a consumer gets them: one string
			// per Kinesis record, made before the timer starts.
			nAggs := b.N/perAgg + 2
			kseq := make([]string, nAggs)
			for i := range kseq {
				kseq[i] = "4959033827149025660855969253836157109592157598913" + strconv.Itoa(1000000+i)
			}
			f := NewFilter(Options{})
			dups := 0
			b.ReportAllocs()
			b.ResetTimer()
			agg, lane, sub := 0, 0, 0
			first := seqs[0]
			for range b.N {
				v := f.Check("shardId-000000000000", kseq[agg], uint64(sub), aggregation.RecordID{PID: pids[lane], Seq: seqs[lane]})
				if v == Duplicate {
					dups++
				}
				seqs[lane]++
				if sub++; sub == perAgg {
					sub = 0
					agg++
					if agg%50 == 49 {
						seqs[lane] = first // the next aggregate is a retry copy of this one
					} else {
						lane = (lane + 1) % lanes
					}
					first = seqs[lane]
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(dups)/float64(b.N)*100, "dup-%")
		})
	}
}
