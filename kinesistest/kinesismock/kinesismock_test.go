package kinesismock_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
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

// TestSIGSTOPFreezesTheServerUntilSIGCONT freezes the shared server: a call
// made while it is stopped gets no answer; after SIGCONT calls are answered
// again.
func TestSIGSTOPFreezesTheServerUntilSIGCONT(t *testing.T) {
	client := server.Client()
	if err := server.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	t.Cleanup(func() {
		if !resumed {
			_ = server.Signal(syscall.SIGCONT)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	_, err := client.ListStreams(ctx, &kinesis.ListStreamsInput{}, func(o *kinesis.Options) { o.RetryMaxAttempts = 1 })
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ListStreams on a stopped server: %v, want a deadline exceeded", err)
	}
	if err := server.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed = true
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := client.ListStreams(ctx, &kinesis.ListStreamsInput{}); err != nil {
		t.Fatalf("ListStreams after SIGCONT: %v", err)
	}
}
