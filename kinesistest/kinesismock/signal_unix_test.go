//go:build unix

package kinesismock_test

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

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
