package limitserver_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kplgo/kpl/kinesistest/limitserver"
)

// Example serves the endpoint with httptest, puts through the unmodified SDK
// client, and reads the counters. The shard takes 3 records per second here,
// so 3 of 5 entries pass and 2 come back throttled.
func Example() {
	srv := limitserver.New(limitserver.Options{RecordsPerSecond: 3})
	if err := srv.CreateStream("trades", 1); err != nil {
		panic(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()

	client := kinesis.NewFromConfig(aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
	}, func(o *kinesis.Options) { o.BaseEndpoint = aws.String(ts.URL) })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var entries []types.PutRecordsRequestEntry
	for i := range 5 {
		entries = append(entries, types.PutRecordsRequestEntry{
			PartitionKey: aws.String("AAPL"),
			Data:         fmt.Appendf(nil, `{"p":189.5,"i":%d}`, i),
		})
	}
	out, err := client.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("trades"), Records: entries})
	if err != nil {
		panic(err)
	}
	fmt.Println("failed:", aws.ToInt32(out.FailedRecordCount), aws.ToString(out.Records[4].ErrorCode))

	st, err := srv.Stats("trades")
	if err != nil {
		panic(err)
	}
	fmt.Println("accepted:", st.Records, "throttled:", st.Throttled, "calls:", st.PutRecordsCalls)
	// Output:
	// failed: 2 ProvisionedThroughputExceededException
	// accepted: 3 throttled: 2 calls: 1
}

// A stream raised to 10 MiB records takes a 5 MiB record at once from its
// shard's burst bucket, which then refills at 1 MiB/s; a default stream
// refuses the record outright.
func ExampleServer_UpdateMaxRecordSize() {
	srv := limitserver.New(limitserver.Options{})
	for _, name := range []string{"large", "default"} {
		if err := srv.CreateStream(name, 1); err != nil {
			panic(err)
		}
	}
	if err := srv.UpdateMaxRecordSize("large", 10240); err != nil {
		panic(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	client := kinesis.NewFromConfig(aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
	}, func(o *kinesis.Options) { o.BaseEndpoint = aws.String(ts.URL); o.RetryMaxAttempts = 1 })

	ctx := context.Background()
	for _, name := range []string{"large", "default"} {
		d, err := client.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		if err != nil {
			panic(err)
		}
		_, err = client.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(name), PartitionKey: aws.String("k"), Data: make([]byte, 5<<20)})
		var tooBig *types.ValidationException
		fmt.Printf("%s: MaxRecordSizeInKiB %d, 5 MiB record refused: %v\n",
			name, aws.ToInt32(d.StreamDescriptionSummary.MaxRecordSizeInKiB), errors.As(err, &tooBig))
	}
	// Output:
	// large: MaxRecordSizeInKiB 10240, 5 MiB record refused: false
	// default: MaxRecordSizeInKiB 1024, 5 MiB record refused: true
}
