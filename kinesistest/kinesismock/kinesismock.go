// Package kinesismock starts and stops a real kinesis-mock server (the Kinesis
// engine inside LocalStack, from the npm package kinesis-local) for
// integration tests and local runs, and creates streams on it. It needs node
// on PATH and the npm package installed (npm install kinesis-local).
//
// The package is found through the KINESIS_LOCAL_DIR environment variable or,
// failing that, in .tools/node_modules/kinesis-local (where this module's
// `make tools` installs the pinned version) or node_modules/kinesis-local of
// the working directory or an enclosing folder.
package kinesismock

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// Region is the region kinesis-mock answers for by default.
const Region = "us-east-1"

// ErrNotInstalled is returned by Start when the kinesis-local package cannot be
// found. Run `make tools` to install it.
var ErrNotInstalled = errors.New("kinesismock: kinesis-local is not installed (run `make tools`, or set KINESIS_LOCAL_DIR)")

// Server is a running kinesis-mock process. Close stops it.
type Server struct {
	// Endpoint is the plain-HTTP URL the server listens on, e.g. http://127.0.0.1:4567.
	Endpoint string

	cmd    *exec.Cmd
	logBuf *lockedBuffer
	done   chan struct{}
	once   sync.Once
}

// PackageDir returns the folder of the kinesis-local npm package.
func PackageDir() (string, error) {
	if dir := os.Getenv("KINESIS_LOCAL_DIR"); dir != "" {
		if _, err := os.Stat(filepath.Join(dir, "main.js")); err == nil {
			return dir, nil
		}
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		for _, candidate := range []string{
			filepath.Join(dir, ".tools", "node_modules", "kinesis-local"),
			filepath.Join(dir, "node_modules", "kinesis-local"),
		} {
			if _, err := os.Stat(filepath.Join(candidate, "main.js")); err == nil {
				return candidate, nil
			}
		}
		if parent := filepath.Dir(dir); parent == dir {
			break
		}
	}
	return "", ErrNotInstalled
}

// Options tune a server started by Start. The zero value is usable.
type Options struct {
	// Port is the plain-HTTP port; 0 picks a free one.
	Port int
	// StreamDuration is how long CreateStream, DeleteStream, SplitShard,
	// MergeShards and UpdateShardCount take to settle. The default is 100ms
	// (kinesis-mock's own default is 500ms).
	StreamDuration time.Duration
	// Stdout, if set, receives the server's output; otherwise the output is
	// kept in memory and included in start-up errors.
	Stdout io.Writer
}

// Start launches kinesis-mock and waits until it answers, or ctx ends.
func Start(ctx context.Context, opts Options) (*Server, error) {
	dir, err := PackageDir()
	if err != nil {
		return nil, err
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("kinesismock: node is not on PATH: %w", err)
	}
	port := opts.Port
	if port == 0 {
		if port, err = freePort(); err != nil {
			return nil, err
		}
	}
	tlsPort, err := freePort()
	if err != nil {
		return nil, err
	}
	settle := opts.StreamDuration
	if settle <= 0 {
		settle = 100 * time.Millisecond
	}
	d := fmt.Sprintf("%dms", settle.Milliseconds())

	cmd := exec.Command(node, filepath.Join(dir, "main.js"))
	cmd.Env = append(os.Environ(),
		"KINESIS_MOCK_CERT_PATH="+filepath.Join(dir, "server.json"),
		"KINESIS_MOCK_PLAIN_PORT="+strconv.Itoa(port),
		"KINESIS_MOCK_TLS_PORT="+strconv.Itoa(tlsPort),
		"LOG_LEVEL=WARN",
		"SHARD_LIMIT=1000",
		"CREATE_STREAM_DURATION="+d,
		"DELETE_STREAM_DURATION="+d,
		"SPLIT_SHARD_DURATION="+d,
		"MERGE_SHARDS_DURATION="+d,
		"UPDATE_SHARD_COUNT_DURATION="+d,
	)
	// Its own process group, so that Close also ends anything node spawned;
	// and killed with this process, so that a test binary that panics or is
	// killed leaves no server behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	buf := &lockedBuffer{}
	if opts.Stdout != nil {
		cmd.Stdout, cmd.Stderr = opts.Stdout, opts.Stdout
	} else {
		cmd.Stdout, cmd.Stderr = buf, buf
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("kinesismock: start: %w", err)
	}
	s := &Server{
		Endpoint: "http://127.0.0.1:" + strconv.Itoa(port),
		cmd:      cmd,
		logBuf:   buf,
		done:     make(chan struct{}),
	}
	go func() { _ = cmd.Wait(); close(s.done) }()

	if err := s.waitReady(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	client := s.Client()
	for {
		_, err := client.ListStreams(ctx, &kinesis.ListStreamsInput{})
		if err == nil {
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("kinesismock: server exited during start-up: %s", lastLines(s.logBuf.String(), 20))
		case <-ctx.Done():
			return fmt.Errorf("kinesismock: server did not answer: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Close stops the server and waits for it to exit. It is safe to call more
// than once.
func (s *Server) Close() error {
	s.once.Do(func() {
		if s.cmd.Process != nil {
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
			select {
			case <-s.done:
			case <-time.After(5 * time.Second):
				_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
				<-s.done
			}
		}
	})
	return nil
}

// Config returns an aws.Config that points at the server with static
// credentials, which kinesis-mock requires but does not check.
func (s *Server) Config() aws.Config {
	return aws.Config{
		Region:       Region,
		Credentials:  credentials.NewStaticCredentialsProvider("AKIAKINESISMOCK", "secret", ""),
		BaseEndpoint: aws.String(s.Endpoint),
	}
}

// Client returns a Kinesis client for the server.
func (s *Server) Client(optFns ...func(*kinesis.Options)) *kinesis.Client {
	return kinesis.NewFromConfig(s.Config(), optFns...)
}

// CreateStream creates a provisioned stream with the given number of shards
// and waits until it is ACTIVE.
func CreateStream(ctx context.Context, client *kinesis.Client, name string, shards int32) error {
	_, err := client.CreateStream(ctx, &kinesis.CreateStreamInput{
		StreamName: aws.String(name),
		ShardCount: aws.Int32(shards),
	})
	if err != nil {
		return fmt.Errorf("create stream %s: %w", name, err)
	}
	return WaitActive(ctx, client, name)
}

// WaitActive waits until the stream's status is ACTIVE, as after a create or
// a reshard.
func WaitActive(ctx context.Context, client *kinesis.Client, name string) error {
	for {
		out, err := client.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		if err == nil && out.StreamDescriptionSummary.StreamStatus == types.StreamStatusActive {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for stream %s: %w (last error: %v)", name, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// DeleteStream deletes a stream, ignoring a stream that is already gone.
func DeleteStream(ctx context.Context, client *kinesis.Client, name string) error {
	_, err := client.DeleteStream(ctx, &kinesis.DeleteStreamInput{
		StreamName:              aws.String(name),
		EnforceConsumerDeletion: aws.Bool(true),
	})
	var nf *types.ResourceNotFoundException
	if err != nil && !errors.As(err, &nf) {
		return fmt.Errorf("delete stream %s: %w", name, err)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("kinesismock: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func lastLines(s string, n int) string {
	var lines []string
	sc := bufio.NewScanner(bytes.NewBufferString(s))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	var b bytes.Buffer
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 1<<20 { // keep the tail bounded
		b.buf.Reset()
	}
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
