package kinesistest_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/kplgo/kpl/aggregation"
	"github.com/kplgo/kpl/kinesistest"
	"github.com/kplgo/kpl/kinesistest/limitserver"
	"github.com/kplgo/kpl/producer"
)

// One producer keeps writing while a shard splits under it: its records
// start landing on a shard it does not know, it refreshes its shard map from
// ListShards, and nothing is lost.
func TestProducerFollowsASplitOfTheLimitEndpoint(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv := limitserver.New(limitserver.Options{KeepData: true})
	if err := srv.CreateStream("s", 2); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	client := kinesis.NewFromConfig(aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
	}, producer.ClientOptions(), func(o *kinesis.Options) { o.BaseEndpoint = aws.String(ts.URL) })

	p, err := producer.New(ctx, client, "s", func(o *producer.Options) { o.Linger = 5 * time.Millisecond })
	if err != nil {
		t.Fatal(err)
	}
	var want []aggregation.Record
	var futures []*producer.Future
	put := func(round int) {
		for i := range 200 {
			r := aggregation.Record{PartitionKey: fmt.Sprintf("k%d", i%40), Data: fmt.Appendf(nil, "%d/%d", round, i)}
			f, err := p.PutRecord(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, r)
			futures = append(futures, f)
		}
		if err := p.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	put(1)
	if err := srv.SplitShard("s", "shardId-000000000000", "85070591730234615865843651857942052864"); err != nil {
		t.Fatal(err)
	}
	put(2)
	put(3)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	for i, f := range futures {
		if _, err := f.Wait(ctx); err != nil {
			t.Fatalf("record %d failed: %v", i, err)
		}
	}
	report, err := kinesistest.Check(ctx, client, "s", want, kinesistest.CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%v", report)
	if report.Lost != 0 || report.Unexpected != 0 || report.Corrupt != 0 {
		t.Errorf("after the split: %v", report)
	}
	// A KCL reader drops the aggregates that landed on the wrong child; the
	// producer re-sent their records, so such a reader misses nothing.
	kcl, err := kinesistest.Check(ctx, client, "s", want, kinesistest.CheckOptions{AsKCL: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("as a KCL reads: %v", kcl)
	if kcl.Lost != 0 || kcl.Duplicated != 0 || kcl.Unexpected != 0 {
		t.Errorf("as a KCL reads, after the split: %v", kcl)
	}
	var children uint64
	st, _ := srv.Stats("s")
	for _, sh := range st.Shards {
		if sh.ParentShardID != "" {
			children += sh.Records
		}
	}
	if children == 0 {
		t.Error("no record reached the children of the split shard")
	}
}
