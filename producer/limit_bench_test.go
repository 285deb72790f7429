package producer

import (
	"context"
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/kplgo/kpl/kinesistest/limitserver"
)

// BenchmarkLimitEndpoint puts 120-byte trades flat out for a few seconds
// through the real SDK client into the in-process endpoint that enforces the
// service's shard limits (4 shards), with the default options, and reports
// the steady share of the shards' byte limit that acknowledged trades use
// (user data and partition keys, and whole Kinesis records), plus throttled
// entries per second. Each iteration takes about 6 seconds.
func BenchmarkLimitEndpoint(b *testing.B) {
	const shards, warm, window = 4, 2 * time.Second, 4 * time.Second
	for i := 0; i < b.N; i++ {
		srv := limitserver.New(limitserver.Options{})
		stream := fmt.Sprintf("limit-%d", i)
		if err := srv.CreateStream(stream, shards); err != nil {
			b.Fatal(err)
		}
		ts := httptest.NewServer(srv.Handler())
		client := kinesis.NewFromConfig(aws.Config{
			Region:       "us-east-1",
			Credentials:  credentials.NewStaticCredentialsProvider("AKIDBENCH", "secret", ""),
			BaseEndpoint: aws.String(ts.URL),
		}, ClientOptions())
		ctx := context.Background()
		p, err := New(ctx, client, stream, func(o *Options) { o.MaxBufferedRecords = 40_000 })
		if err != nil {
			b.Fatal(err)
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for g := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := g; ; j += 2 {
					select {
					case <-stop:
						return
					default:
					}
					data := trade(j)
					if _, err := p.Put(ctx, fmt.Sprintf("SYM%02d-%d", j%50, j%16), data); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		time.Sleep(warm)
		s0, t0 := p.Stats(), time.Now()
		time.Sleep(window)
		s1, t1 := p.Stats(), time.Now()
		close(stop)
		wg.Wait()
		if err := p.Close(); err != nil {
			b.Fatal(err)
		}
		ts.Close()
		st := p.Stats()
		if st.UserRecordsFailed != 0 || st.UserRecordsSucceeded != st.UserRecordsPut {
			b.Fatalf("%d of %d trades failed", st.UserRecordsFailed, st.UserRecordsPut)
		}
		el := t1.Sub(t0).Seconds()
		limit := float64(shards * ShardBytesPerSecond)
		acked := float64(s1.UserRecordsSucceeded-s0.UserRecordsSucceeded) / el
		b.ReportMetric(acked, "trades/s")
		b.ReportMetric(100*acked*(120+8)/limit, "%bytelimit-user")
		b.ReportMetric(100*float64(s1.BytesSucceeded-s0.BytesSucceeded)/el/limit, "%bytelimit-kinesis")
		b.ReportMetric(float64(s1.Throttles-s0.Throttles)/el, "throttled/s")
	}
}
