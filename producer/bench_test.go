package producer

import (
	"context"
	"fmt"
	"runtime/metrics"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kplgo/kpl/aggregation"
	"github.com/kplgo/kpl/internal/cputime"
)

// countingClient acknowledges every entry on the shard owning its hash key
// and only counts: it measures the producer's own overhead.
type countingClient struct {
	*fakeClient
	entries, bytes atomic.Int64
}

func newCountingClient(shards int) *countingClient {
	return &countingClient{fakeClient: newFakeClient(shards)}
}

func (c *countingClient) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	out := &kinesis.PutRecordsOutput{Records: make([]types.PutRecordsResultEntry, len(in.Records)), FailedRecordCount: aws.Int32(0)}
	seq := aws.String("1")
	for i, e := range in.Records {
		var h aggregation.HashKey
		if e.ExplicitHashKey != nil {
			h, _ = aggregation.ParseHashKey(*e.ExplicitHashKey)
		} else {
			h = aggregation.PartitionKeyHash(*e.PartitionKey)
		}
		s := c.owner(h)
		out.Records[i] = types.PutRecordsResultEntry{ShardId: &s.id, SequenceNumber: seq}
		c.bytes.Add(int64(len(e.Data) + len(*e.PartitionKey)))
	}
	c.entries.Add(int64(len(in.Records)))
	return out, nil
}

// trade is a 120-byte record like a Finnhub trade as JSON.
func trade(i int) []byte {
	b := fmt.Appendf(nil, `{"s":"SYM%02d","p":189.5%04d,"t":17000000%05d,"v":100,"c":["1","12"]}`, i%50, i%10000, i%100000)
	for len(b) < 120 {
		b = append(b, ' ')
	}
	return b[:120]
}

// putWay is how a benchmark puts one record.
type putWay func(p *Producer, ctx context.Context, pk string, data []byte) error

func putFuture(p *Producer, ctx context.Context, pk string, data []byte) error {
	_, err := p.Put(ctx, pk, data)
	return err
}

func benchmarkPut(b *testing.B, ordered bool) { benchmarkPutWay(b, ordered, putFuture) }

func benchmarkPutWay(b *testing.B, ordered bool, put putWay) {
	c := newCountingClient(4)
	ctx := context.Background()
	p, err := New(ctx, c, "bench", func(o *Options) {
		o.RateLimit = 0 // the counting client has no limits to respect
		o.Ordered = ordered
	})
	if err != nil {
		b.Fatal(err)
	}
	keys := make([]string, 50)
	for i := range keys {
		keys[i] = "SYM" + strconv.Itoa(i)
	}
	payloads := make([][]byte, 1000)
	for i := range payloads {
		payloads[i] = trade(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cputime.Process()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if err := put(p, ctx, keys[i%len(keys)], payloads[i%len(payloads)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
	if err := p.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	el := time.Since(start)
	cpu := cputime.Process() - cpu0
	b.StopTimer()
	st := p.Stats()
	if err := p.Close(); err != nil {
		b.Fatal(err)
	}
	if st.UserRecordsSucceeded != uint64(b.N) {
		b.Fatalf("succeeded %d of %d", st.UserRecordsSucceeded, b.N)
	}
	b.ReportMetric(float64(b.N)/el.Seconds(), "recs/s")
	b.ReportMetric(st.UserRecordsPerKinesisRecord(), "recs/krec")
	// CPU time per record, all goroutines: unlike recs/s it does not depend
	// on what else the machine runs. 2 cores / cpu-ns/rec bounds recs/s.
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/rec")
}

// cpuTime returns the process's user plus system CPU time.
// gcCPUTime returns the CPU time the garbage collector has used so far
// (runtime/metrics: marking, assists included, and pauses).
func gcCPUTime() time.Duration {
	s := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64 {
		return 0
	}
	return time.Duration(s[0].Value.Float64() * float64(time.Second))
}

// BenchmarkPut measures the producer's overhead per 120-byte record, put
// from parallel goroutines into a client that only counts, through
// aggregation, batching and result delivery.
func BenchmarkPut(b *testing.B) { benchmarkPut(b, false) }

// BenchmarkOrdered is BenchmarkPut with Options.Ordered, to show its cost:
// one call in flight per shard, one aggregate per shard per call.
func BenchmarkOrdered(b *testing.B) {
	b.Run("unordered", func(b *testing.B) { benchmarkPut(b, false) })
	b.Run("ordered", func(b *testing.B) { benchmarkPut(b, true) })
}

// BenchmarkPutAsync compares the callback form with the Future form in one
// run, each consuming every result as a caller must: the futures go to a
// goroutine that waits for each (the queue-and-collect code the callback
// form spares its users), the callbacks read theirs. The callback path must
// be at least as fast.
func BenchmarkPutAsync(b *testing.B) {
	b.Run("future", func(b *testing.B) {
		futures := make(chan *Future, 1<<18) // more than the buffer holds: never the bottleneck
		done := make(chan struct{})
		go func() {
			defer close(done)
			for f := range futures {
				if _, err := f.Wait(context.Background()); err != nil {
					b.Error(err)
				}
			}
		}()
		benchmarkPutWay(b, false, func(p *Producer, ctx context.Context, pk string, data []byte) error {
			f, err := p.Put(ctx, pk, data)
			if err == nil {
				futures <- f
			}
			return err
		})
		close(futures)
		<-done
	})
	b.Run("callback", func(b *testing.B) {
		benchmarkPutWay(b, false, func(p *Producer, ctx context.Context, pk string, data []byte) error {
			p.PutAsync(ctx, aggregation.Record{PartitionKey: pk, Data: data}, checkResult)
			return nil
		})
	})
}

// checkResult is the benchmarks' callback: it reads the result, as a caller
// would, and nothing more.
func checkResult(_ Result, err error) {
	if err != nil {
		panic(err)
	}
}
