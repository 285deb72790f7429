package faultinject_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kplgo/kpl/kinesistest/faultinject"
	"github.com/kplgo/kpl/kinesistest/limitserver"
)

// A Kinesis client whose calls go through the injector.
func ExampleTransport() {
	var cfg aws.Config // e.g. kinesismock.Server.Config()
	tr := faultinject.New(nil)
	client := kinesis.NewFromConfig(cfg, func(o *kinesis.Options) {
		o.HTTPClient = &http.Client{Transport: tr}
	})
	_ = client

	// Throttle a fifth of the entries, and reset the next two PutRecords
	// calls after Kinesis stored them.
	_ = tr.SetEntryFaults(faultinject.EntryFault{Code: faultinject.CodeThrottled, Probability: 0.2})
	_ = tr.AddRequestFault(faultinject.RequestFault{Kind: faultinject.ResetAfterForward, Count: 2, Operations: []string{"PutRecords"}})
	// Later: take Kinesis away for ten seconds.
	tr.StartOutage(10 * time.Second)

	// At the end: what was stored by calls the client saw fail.
	tr.Wait()
	fmt.Println(len(tr.Ambiguous()))
}

// A proxy for another process, e.g. the trade producer started with its
// Kinesis endpoint set to the proxy's URL.
func ExampleNewProxy() {
	target, _ := url.Parse("http://127.0.0.1:4567") // kinesis-mock
	tr := faultinject.New(nil)
	proxy := httptest.NewServer(faultinject.NewProxy(target, tr))
	defer proxy.Close()
	fmt.Println("point the process at", proxy.URL)

	_ = tr.AddRequestFault(faultinject.RequestFault{Kind: faultinject.HTTP503, Probability: 0.1})
}

// Example throttles every entry of one shard in front of the in-process
// limit endpoint: the throttled entries are reported as the service would
// report them, and the endpoint never stored them.
func Example() {
	srv := limitserver.New(limitserver.Options{KeepData: true})
	if err := srv.CreateStream("trades", 2); err != nil {
		panic(err)
	}
	engine := httptest.NewServer(srv.Handler())
	defer engine.Close()

	tr := faultinject.New(nil)
	client := kinesis.NewFromConfig(aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
	}, func(o *kinesis.Options) {
		o.BaseEndpoint = aws.String(engine.URL)
		o.HTTPClient = &http.Client{Transport: tr}
	})
	ctx := context.Background()
	shards, err := client.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("trades")})
	if err != nil {
		panic(err)
	}
	second := shards.Shards[1]
	if err := tr.SetEntryFaults(faultinject.EntryFault{HashRanges: []faultinject.HashRange{faultinject.RangeOf(second)}}); err != nil {
		panic(err)
	}

	var entries []types.PutRecordsRequestEntry
	for _, sym := range []string{"AAPL", "MSFT", "AMZN", "GOOG", "TSLA", "NVDA"} {
		entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String(sym), Data: []byte(sym)})
	}
	out, err := client.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("trades"), Records: entries})
	if err != nil {
		panic(err)
	}
	throttled := 0
	for i, r := range out.Records {
		if r.ErrorCode != nil {
			throttled++
			fmt.Println(aws.ToString(entries[i].PartitionKey), aws.ToString(r.ErrorCode))
		}
	}
	stored, _ := srv.Records("trades")
	fmt.Println("throttled:", throttled, "stored on the second shard:", len(stored[1]))
	fmt.Println("injected:", tr.Counters().EntryFailures())
	// Output:
	// AAPL ProvisionedThroughputExceededException
	// MSFT ProvisionedThroughputExceededException
	// GOOG ProvisionedThroughputExceededException
	// TSLA ProvisionedThroughputExceededException
	// throttled: 4 stored on the second shard: 0
	// injected: 4
}
