package kinesismock_test

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kplgo/kpl/kinesistest/kinesismock"
)

// Start kinesis-mock, create a stream, write a record and read it back.
// In a package's tests, start one server from TestMain with StartForTests
// and give each test its own stream with TestServer.NewStream.
func ExampleStart() {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	srv, err := kinesismock.Start(ctx, kinesismock.Options{})
	if err != nil {
		panic(err) // kinesismock.ErrNotInstalled: run `make tools`
	}
	defer srv.Close()

	client := srv.Client()
	if err := kinesismock.CreateStream(ctx, client, "example", 1); err != nil {
		panic(err)
	}
	if _, err := client.PutRecord(ctx, &kinesis.PutRecordInput{
		StreamName: aws.String("example"), PartitionKey: aws.String("AAPL"), Data: []byte("trade 1"),
	}); err != nil {
		panic(err)
	}
	it, err := client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
		StreamName: aws.String("example"), ShardId: aws.String("shardId-000000000000"),
		ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
	})
	if err != nil {
		panic(err)
	}
	out, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	if err != nil {
		panic(err)
	}
	for _, r := range out.Records {
		fmt.Println(aws.ToString(r.PartitionKey), string(r.Data))
	}
	// Output:
	// AAPL trade 1
}
