package kinesismock_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kplgo/kpl/internal/kinesisread"
	"github.com/kplgo/kpl/kinesistest/kinesismock"
)

var server *kinesismock.TestServer

func TestMain(m *testing.M) {
	server = kinesismock.StartForTests()
	code := m.Run()
	server.Close()
	os.Exit(code)
}

func TestRecordsWrittenAreReadBackInOrder(t *testing.T) {
	client, stream := server.NewStream(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var entries []types.PutRecordsRequestEntry
	for i := range 20 {
		entries = append(entries, types.PutRecordsRequestEntry{
			PartitionKey: aws.String("key"),
			Data:         []byte(fmt.Sprintf("record-%02d", i)),
		})
	}
	out, err := client.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries})
	if err != nil {
		t.Fatalf("PutRecords: %v", err)
	}
	if n := aws.ToInt32(out.FailedRecordCount); n != 0 {
		t.Fatalf("FailedRecordCount = %d", n)
	}
	shards, err := kinesisread.ReadAll(ctx, client, stream)
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	if len(shards) != 2 {
		t.Fatalf("got %d shards, want 2", len(shards))
	}
	var got []string
	for _, sh := range shards {
		for _, r := range sh.Records {
			if aws.ToString(sh.Shard.ShardId) != aws.ToString(out.Records[0].ShardId) {
				t.Errorf("record on shard %s, PutRecords said %s", aws.ToString(sh.Shard.ShardId), aws.ToString(out.Records[0].ShardId))
			}
			got = append(got, string(r.Data))
		}
	}
	if len(got) != 20 {
		t.Fatalf("read %d records, want 20", len(got))
	}
	for i, g := range got {
		if want := fmt.Sprintf("record-%02d", i); g != want {
			t.Errorf("record %d = %q, want %q", i, g, want)
		}
	}
}
