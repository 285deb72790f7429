package kinesismock

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

// TestServer is a server shared by the tests of one package. Start it from
// TestMain with StartForTests and stop it with Close.
type TestServer struct {
	*Server
	seq atomic.Int64
}

// StartForTests starts a server for a package's tests. It panics with a clear
// message when kinesis-local is missing, since integration tests must not be
// skipped silently.
func StartForTests() *TestServer {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	s, err := Start(ctx, Options{})
	if err != nil {
		panic(fmt.Sprintf("kinesis-mock is needed by these tests: %v", err))
	}
	return &TestServer{Server: s}
}

// NewStream creates a fresh stream with a name unique to the test and deletes
// it when the test ends. It returns a client and the stream's name.
func (s *TestServer) NewStream(t testing.TB, shards int32) (*kinesis.Client, string) {
	t.Helper()
	name := streamName(t.Name(), s.seq.Add(1))
	client := s.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := CreateStream(ctx, client, name, shards); err != nil {
		t.Fatalf("create stream: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := DeleteStream(ctx, client, name); err != nil {
			t.Logf("delete stream: %v", err)
		}
	})
	return client, name
}

// streamName makes a valid stream name (1-128 of [a-zA-Z0-9_.-]) from a test name.
func streamName(testName string, n int64) string {
	var b strings.Builder
	for _, r := range testName {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	name := b.String()
	if len(name) > 100 {
		name = name[:100]
	}
	return fmt.Sprintf("%s-%d", name, n)
}
