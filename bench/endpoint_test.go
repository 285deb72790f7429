package bench

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/kplgo/kpl/internal/loadgen"
	"github.com/kplgo/kpl/kinesistest/limitserver"
	"github.com/kplgo/kpl/producer"
)

// endpointWindow is how long each mode offers trades per iteration of
// BenchmarkLimitEndpoint: long enough for the shards' token buckets to reach
// their steady rate, short enough for `make bench` to finish in minutes.
const endpointWindow = 5 * time.Second

// endpointShards is the stream's shard count in BenchmarkLimitEndpoint.
const endpointShards = 4

// sdkClient returns a real AWS SDK Kinesis client for url with a pool of
// conns connections and one attempt per call (both modes retry themselves).
func sdkClient(url string, conns int) *kinesis.Client {
	hc := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.MaxIdleConns = conns
		tr.MaxIdleConnsPerHost = conns
	})
	cfg := aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIABENCH", "secret", ""),
		BaseEndpoint: aws.String(url),
	}
	return kinesis.NewFromConfig(cfg, func(o *kinesis.Options) {
		o.HTTPClient = hc
		o.RetryMaxAttempts = 1
	})
}

// BenchmarkLimitEndpoint runs the aggregated producer and one PutRecord per
// trade (64 workers, throttled puts retried with backoff) one after the
// other, each for endpointWindow flat out, through the real AWS SDK client
// against the in-process limit-enforcing endpoint with 4 shards. It reports
// the steady acknowledged trades/s of each mode, their ratio, and the
// aggregated goodput as a percentage of the shards' byte limit. Every trade
// must be acknowledged: a lost or failed trade fails the benchmark.
func BenchmarkLimitEndpoint(b *testing.B) {
	ctx := context.Background()
	var agg, single loadgen.ModeResult
	for i := 0; i < b.N; i++ {
		for _, mode := range []string{"aggregated", "single"} {
			url, stop := startLimitEndpoint(b)
			stream := fmt.Sprintf("bench-%s-%d", mode, i)
			createStream(b, url, stream, endpointShards)
			rec := loadgen.NewRecorder(time.Now(), time.Second)
			var sink loadgen.Sink
			if mode == "single" {
				sink = loadgen.NewSingleSink(sdkClient(url, 64), stream, rec, loadgen.SingleOptions{Workers: 64})
			} else {
				p, err := producer.New(ctx, sdkClient(url, 32), stream, func(o *producer.Options) {
					// A buffer of about a second at the shards' limit, so the
					// drain after the window stays short.
					o.MaxBufferedRecords = 40_000
				})
				if err != nil {
					b.Fatal(err)
				}
				sink = loadgen.NewProducerSink(p, rec)
			}
			res, err := loadgen.Run(ctx, loadgen.RunConfig{
				Mode: mode, Duration: endpointWindow, Symbols: loadgen.DefaultSymbols(50), RecordSize: 120,
				Keys: loadgen.KeySpread, Seed: uint64(i + 1),
			}, sink, rec)
			stop()
			if err != nil {
				b.Fatal(err)
			}
			if res.Lost != 0 || res.Failed != 0 {
				b.Fatalf("%s: %d trades lost, %d failed (%v)", mode, res.Lost, res.Failed, res.FailuresByCode)
			}
			if mode == "single" {
				single = res
			} else {
				agg = res
			}
		}
	}
	limit := float64(endpointShards * loadgen.ShardBytesPerSec)
	b.ReportMetric(agg.SteadyAckedPerSec, "aggregated-trades/s")
	b.ReportMetric(single.SteadyAckedPerSec, "single-trades/s")
	if single.SteadyAckedPerSec > 0 {
		b.ReportMetric(agg.SteadyAckedPerSec/single.SteadyAckedPerSec, "x-ratio")
	}
	if agg.Acked > 0 {
		perTrade := float64(agg.AckedDataBytes) / float64(agg.Acked)
		b.ReportMetric(100*agg.SteadyAckedPerSec*perTrade/limit, "aggregated-%bytelimit")
	}
	b.ReportMetric(agg.CPUSecondsPerMillion, "aggregated-cpu-s/Mtrade")
	b.ReportMetric(single.CPUSecondsPerMillion, "single-cpu-s/Mtrade")
}

// startLimitEndpoint serves a fresh limit-enforcing endpoint over loopback
// (an httptest server) and returns its URL and a function that stops it.
func startLimitEndpoint(b *testing.B) (string, func()) {
	b.Helper()
	srv := limitserver.New(limitserver.Options{})
	ts := httptest.NewServer(srv.Handler())
	return ts.URL, ts.Close
}

// createStream creates a stream through the endpoint's CreateStream API.
func createStream(b *testing.B, url, name string, shards int32) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := sdkClient(url, 1).CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(shards)})
	if err != nil {
		b.Fatal(err)
	}
}
