package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/sirupsen/logrus"

	"github.com/kplgo/kpl/internal/cli/clitest"
)

func TestParseStreams(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []streamSpec
		wantErr bool
	}{
		{name: "an empty flag creates no streams", in: ""},
		{name: "one stream with its shard count", in: "trades:4", want: []streamSpec{{"trades", 4}}},
		{name: "several streams with spaces around items", in: "a:1, b:2", want: []streamSpec{{"a", 1}, {"b", 2}}},
		{name: "a missing shard count is an error", in: "a", wantErr: true},
		{name: "zero shards is an error", in: "a:0", wantErr: true},
		{name: "a non-numeric shard count is an error", in: "a:x", wantErr: true},
		{name: "an empty name is an error", in: ":3", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStreams(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("item %d = %v, want %v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestParseFlagsRejectsZeroLimits(t *testing.T) {
	if _, err := parseFlags([]string{"-records-per-sec", "0"}, io.Discard); err == nil {
		t.Error("a zero records limit was accepted")
	}
	cfg, err := parseFlags([]string{"-streams", "s:2", "-bytes-per-sec", "-1", "-latency", "5ms"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.bytesPerSec != -1 || cfg.latency != 5*time.Millisecond || len(cfg.streams) != 1 || cfg.addr != "127.0.0.1:4568" {
		t.Errorf("cfg = %+v", cfg)
	}
}

// urlWriter hands the first line written to it to a channel.
type urlWriter struct{ ch chan string }

func (w urlWriter) Write(p []byte) (int, error) {
	w.ch <- strings.TrimSpace(string(p))
	return len(p), nil
}

func TestRunServesTheStreamsAndStopsWhenCanceled(t *testing.T) {
	cfg, err := parseFlags([]string{"-addr", "127.0.0.1:0", "-streams", "s:3", "-status-interval", "0"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := logrus.New()
	log.SetOutput(io.Discard)
	urls := urlWriter{ch: make(chan string, 1)}
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, log, urls) }()

	var url string
	select {
	case url = <-urls.ch:
	case err := <-done:
		t.Fatalf("run ended early: %v", err)
	}
	client := kinesis.NewFromConfig(aws.Config{Region: "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "")},
		func(o *kinesis.Options) { o.BaseEndpoint = aws.String(url) })
	cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
	defer ccancel()
	out, err := client.ListShards(cctx, &kinesis.ListShardsInput{StreamName: aws.String("s")})
	if err != nil {
		t.Fatalf("ListShards: %v", err)
	}
	if len(out.Shards) != 3 {
		t.Errorf("%d shards, want 3", len(out.Shards))
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run after cancel: %v", err)
	}
}

func TestUsageErrorsAreOneLineAndHelpDescribesTheCommand(t *testing.T) {
	clitest.RunUsage(t, mainCode, []clitest.UsageCase{
		{Name: "a negative interval names the flag and its range", Args: []string{"-status-interval", "-1s"}, Code: 2, Contains: "-status-interval: out of range: must be 0s to 24h0m0s"},
		{Name: "a duration without a unit is refused", Args: []string{"-burst", "100"}, Code: 2, Contains: "-burst: not a duration"},
		{Name: "a zero limit is refused", Args: []string{"-bytes-per-sec", "0"}, Code: 2, Contains: "-bytes-per-sec"},
		{Name: "a bad stream list is refused", Args: []string{"-streams", "a"}, Code: 2, Contains: "not name:shards"},
		{Name: "-h describes the command", Args: []string{"-h"}, Code: 0, Contains: "limitserver runs an in-memory Kinesis endpoint"},
	})
}
