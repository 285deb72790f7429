package kinesistest_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/kplgo/kpl/aggregation"
	"github.com/kplgo/kpl/kinesistest"
	"github.com/kplgo/kpl/kinesistest/limitserver"
	"github.com/kplgo/kpl/producer"
)

// A producer unit test with the fake client: the first PutRecords call has
// every entry throttled, so the producer must retry them, and the test
// checks that each record was stored once.
func ExampleClient() {
	ctx := context.Background()
	client := kinesistest.NewClient(kinesistest.ClientOptions{Stream: "trades", Shards: 2})
	client.SetEntryHook(func(e kinesistest.Entry) kinesistest.Outcome {
		if e.Call == 1 {
			return kinesistest.Outcome{ErrorCode: kinesistest.CodeThrottled}
		}
		return kinesistest.Outcome{}
	})

	p, err := producer.New(ctx, client, "trades", func(o *producer.Options) { o.Linger = time.Millisecond })
	if err != nil {
		panic(err)
	}
	for i := range 10 {
		if _, err := p.Put(ctx, fmt.Sprintf("sym-%d", i), fmt.Appendf(nil, "trade %d", i)); err != nil {
			panic(err)
		}
	}
	if err := p.Close(); err != nil {
		panic(err)
	}

	stored := map[string]int{}
	for _, r := range client.Stored() {
		users, _ := aggregation.Deaggregate(r.Data, r.PartitionKey, r.ExplicitHashKey)
		for _, u := range users {
			stored[string(u.Data)]++
		}
	}
	fmt.Println("distinct records stored:", len(stored), "retried:", p.Stats().UserRecordsRetried > 0)
	// Output:
	// distinct records stored: 10 retried: true
}

// Write through the producer to the in-process endpoint, split a shard,
// write again, and check the whole stream.
func ExampleCheck() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv := limitserver.New(limitserver.Options{KeepData: true})
	if err := srv.CreateStream("trades", 2); err != nil {
		panic(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	client := kinesis.NewFromConfig(aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
	}, producer.ClientOptions(), func(o *kinesis.Options) { o.BaseEndpoint = aws.String(ts.URL) })

	var want []aggregation.Record
	write := func(round int) {
		p, err := producer.New(ctx, client, "trades")
		if err != nil {
			panic(err)
		}
		for i := range 50 {
			r := aggregation.Record{PartitionKey: fmt.Sprintf("sym-%d", i%7), Data: fmt.Appendf(nil, "round %d trade %d", round, i)}
			if _, err := p.PutRecord(ctx, r); err != nil {
				panic(err)
			}
			want = append(want, r)
		}
		if err := p.Close(); err != nil {
			panic(err)
		}
	}
	write(1)
	if err := srv.SplitShard("trades", "shardId-000000000000", "85070591730234615865843651857942052864"); err != nil {
		panic(err)
	}
	write(2)

	report, err := kinesistest.Check(ctx, client, "trades", want, kinesistest.CheckOptions{})
	if err != nil {
		panic(err)
	}
	fmt.Println(report.OK())
	fmt.Println(report)
	// Output:
	// true
	// expected 100, read 100: lost 0, duplicated 0, misrouted 0, out of order 0, unexpected 0, corrupt 0
}
