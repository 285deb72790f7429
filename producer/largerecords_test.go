package producer_test

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/kplgo/kpl/aggregation"
	"github.com/kplgo/kpl/kinesistest/limitserver"
	"github.com/kplgo/kpl/producer"
)

// limitClient returns an SDK client of an in-process limit endpoint.
func limitClient(t *testing.T, srv *limitserver.Server) *kinesis.Client {
	t.Helper()
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return kinesis.NewFromConfig(aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
	}, func(o *kinesis.Options) { o.BaseEndpoint = aws.String(ts.URL) }, producer.ClientOptions())
}

func TestLargeRecordsFollowTheStreamsLimit(t *testing.T) {
	srv := limitserver.New(limitserver.Options{KeepData: true})
	client := limitClient(t, srv)
	ctx := context.Background()
	// Created large, so that its shards' burst buckets start full.
	for name, kib := range map[string]int32{"large": 10240, "default": 1024} {
		if _, err := client.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(2), MaxRecordSizeInKiB: aws.Int32(kib)}); err != nil {
			t.Fatal(err)
		}
	}
	sizes := []int{5 << 20, 10<<20 - 16, 100}

	p, err := producer.New(ctx, client, "large", func(o *producer.Options) {
		o.Linger = 0
		// 15 MiB through the SDK and the endpoint, under -race on a loaded
		// machine, take seconds.
		o.RequestTimeout, o.RecordTTL = time.Minute, 2*time.Minute
	})
	if err != nil {
		t.Fatal(err)
	}
	var futures []*producer.Future
	// One large record per shard: each fits its shard's 10 MiB burst.
	hashKeys := []string{"1", "170141183460469231731687303715884105729", "2"}
	for i, n := range sizes {
		data := bytes.Repeat([]byte{byte('a' + i)}, n)
		f, err := p.PutRecord(ctx, aggregation.Record{PartitionKey: "k", ExplicitHashKey: hashKeys[i], Data: data})
		if err != nil {
			t.Fatalf("a %d-byte record on a 10 MiB stream: %v", n, err)
		}
		futures = append(futures, f)
	}
	for i, f := range futures {
		if _, err := f.Wait(ctx); err != nil {
			t.Fatalf("record of %d bytes: %v", sizes[i], err)
		}
	}
	if _, err := p.Put(ctx, "k", make([]byte, 10<<20)); !errors.Is(err, producer.ErrRecordTooLarge) {
		t.Errorf("a record above 10 MiB: %v, want ErrRecordTooLarge", err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	recs, err := srv.Records("large")
	if err != nil {
		t.Fatal(err)
	}
	stored := 0
	for _, shard := range recs {
		for _, r := range shard {
			stored += len(r.Data)
		}
	}
	if want := 5<<20 + 10<<20 - 16 + 100; stored < want {
		t.Errorf("stored %d bytes, want at least %d", stored, want)
	}

	// A stream with the default limit refuses a 5 MiB record at Put.
	d, err := producer.New(ctx, client, "default")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Put(ctx, "k", make([]byte, 5<<20)); !errors.Is(err, producer.ErrRecordTooLarge) {
		t.Errorf("a 5 MiB record on a 1 MiB stream: %v, want ErrRecordTooLarge", err)
	}
	// So does a producer told not to read the limits.
	s, err := producer.New(ctx, client, "large", func(o *producer.Options) { o.SkipStreamLimits = true })
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Put(ctx, "k", make([]byte, 2<<20)); !errors.Is(err, producer.ErrRecordTooLarge) {
		t.Errorf("SkipStreamLimits: a 2 MiB record: %v, want ErrRecordTooLarge", err)
	}
}
