package limitserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kplgo/kpl/internal/httpserve"
)

// Service limits the server enforces unless Options override them.
const (
	// DefaultBytesPerSecond is a shard's write limit in bytes (data plus
	// partition key) per second: 1 MiB.
	DefaultBytesPerSecond = 1 << 20
	// DefaultRecordsPerSecond is a shard's write limit in records per second.
	DefaultRecordsPerSecond = 1000
	// DefaultBurst is how much time's worth of capacity a shard's buckets
	// hold: one second, so a shard idle for a while takes 1 MiB or 1,000
	// records at once and then its sustained rate.
	DefaultBurst = time.Second
	// DefaultMaxRecordSize is the largest record (data plus partition key)
	// of a stream whose limit was not raised: 1 MiB.
	DefaultMaxRecordSize = 1 << 20
	// MinMaxRecordSizeKiB and MaxMaxRecordSizeKiB bound a stream's record
	// size limit in KiB, as CreateStream and UpdateMaxRecordSize take it
	// (1 MiB to 10 MiB).
	MinMaxRecordSizeKiB = 1024
	MaxMaxRecordSizeKiB = 10240
	// DefaultMaxBytesPerLargeCall is the most bytes (data plus partition
	// keys) of one PutRecords call to a stream whose record size limit is
	// above 1 MiB: 10 MiB.
	DefaultMaxBytesPerLargeCall = 10 << 20
	// DefaultLargeRecordBurst is the byte capacity of each shard's bucket on
	// a stream whose record size limit is above 1 MiB: 10 MiB, refilling at
	// the shard's 1 MiB/s, as the KPL 1.0.6 models the service's burst.
	DefaultLargeRecordBurst = 10 << 20
	// DefaultMaxRecordsPerCall is the most entries of one PutRecords call.
	DefaultMaxRecordsPerCall = 500
	// DefaultMaxBytesPerCall is the most bytes (data plus partition keys) of
	// one PutRecords call: 5 MiB.
	DefaultMaxBytesPerCall = 5 << 20
	// DefaultOnDemandShards is the shard count of a stream created through
	// the API without ShardCount (on-demand mode starts with 4 shards).
	DefaultOnDemandShards = 4
	// MaxPartitionKeyLength is the longest partition key in Unicode characters.
	MaxPartitionKeyLength = 256
	// maxRequestBody bounds the HTTP body read; the service answers larger
	// bodies with 413. 10 MiB of data is about 14 MiB of base64.
	maxRequestBody = 24 << 20
)

// Options configures a Server. The zero value models the real service.
type Options struct {
	// BytesPerSecond is each shard's write limit in bytes (data plus
	// partition key) per second. 0 means DefaultBytesPerSecond (1 MiB);
	// negative means unlimited.
	BytesPerSecond int64
	// RecordsPerSecond is each shard's write limit in records per second.
	// 0 means DefaultRecordsPerSecond (1,000); negative means unlimited.
	RecordsPerSecond int64
	// Burst is the time's worth of capacity each bucket holds (at least one
	// byte or record). 0 means DefaultBurst (1s). A record larger than the
	// byte bucket's capacity is always throttled.
	Burst time.Duration
	// MaxRecordSize is the record size limit (data plus partition key) of a
	// stream created without one; a stream's own limit, set by CreateStream's
	// MaxRecordSizeInKiB or UpdateMaxRecordSize, replaces it. 0 means
	// DefaultMaxRecordSize (1 MiB). Data alone above the limit is a
	// ValidationException, data plus key above it an InvalidArgumentException.
	MaxRecordSize int
	// LargeRecordBurst is the byte capacity of each shard's bucket on a
	// stream whose record limit is above 1 MiB, when more than Burst gives:
	// such a shard absorbs a large record at once and then refills at
	// BytesPerSecond. 0 means DefaultLargeRecordBurst (10 MiB).
	LargeRecordBurst int64
	// MaxRecordsPerCall is the most entries of a PutRecords call; more is a
	// ValidationException. 0 means DefaultMaxRecordsPerCall (500).
	MaxRecordsPerCall int
	// MaxBytesPerCall is the most data plus partition key bytes of a
	// PutRecords call; more is an InvalidArgumentException. 0 means
	// DefaultMaxBytesPerCall (5 MiB), or DefaultMaxBytesPerLargeCall
	// (10 MiB) for a stream whose record limit is above 1 MiB; a value set
	// here applies to every stream.
	MaxBytesPerCall int
	// Latency is added to every request before it is processed (it ends
	// early when the client goes away). 0 means none.
	Latency time.Duration
	// KeepData keeps every accepted record for Server.Records. Off by
	// default: load tests only need counts, and keeping data costs memory
	// and a second decoding of each request.
	KeepData bool
	// Clock is the time source of the token buckets. nil means the system
	// clock.
	Clock Clock
	// Region and AccountID appear in stream ARNs and error messages.
	// Defaults: "us-east-1" and "000000000000".
	Region    string
	AccountID string
}

// withDefaults returns o with zero fields set to their defaults.
func (o Options) withDefaults() Options {
	if o.BytesPerSecond == 0 {
		o.BytesPerSecond = DefaultBytesPerSecond
	}
	if o.RecordsPerSecond == 0 {
		o.RecordsPerSecond = DefaultRecordsPerSecond
	}
	if o.Burst <= 0 {
		o.Burst = DefaultBurst
	}
	if o.MaxRecordSize <= 0 {
		o.MaxRecordSize = DefaultMaxRecordSize
	}
	if o.MaxRecordsPerCall <= 0 {
		o.MaxRecordsPerCall = DefaultMaxRecordsPerCall
	}
	if o.MaxBytesPerCall <= 0 {
		o.MaxBytesPerCall = DefaultMaxBytesPerCall
	}
	if o.LargeRecordBurst <= 0 {
		o.LargeRecordBurst = DefaultLargeRecordBurst
	}
	if o.Clock == nil {
		o.Clock = systemClock{}
	}
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	if o.AccountID == "" {
		o.AccountID = "000000000000"
	}
	return o
}

// rate converts a per-second option to a bucket rate (0 = unlimited).
func rate(v int64) uint64 {
	if v < 0 {
		return 0
	}
	return uint64(v)
}

// Errors of the direct (non-HTTP) API. Wrapped errors carry the stream name.
var (
	// ErrStreamNotFound: no stream has that name.
	ErrStreamNotFound = errors.New("limitserver: stream not found")
	// ErrStreamExists: CreateStream for a name already in use.
	ErrStreamExists = errors.New("limitserver: stream already exists")
	// ErrInvalidStream: a bad stream name or shard count.
	ErrInvalidStream = errors.New("limitserver: invalid stream")
	// ErrShardNotFound: no shard of the stream has that id.
	ErrShardNotFound = errors.New("limitserver: shard not found")
	// ErrInvalidReshard: a split or merge the service refuses (a closed
	// shard, a hash key outside the shard, shards that are not adjacent).
	ErrInvalidReshard = errors.New("limitserver: invalid reshard")
	// ErrServerStarted: Start or Serve called twice.
	ErrServerStarted = errors.New("limitserver: already serving")
)

// streamNamePattern is the service's stream name rule.
var streamNamePattern = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,128}$`)

// maxShards bounds CreateStream's shard count; enough for any load test.
const maxShards = 10000

// Server is the limit-enforcing Kinesis endpoint. Create it with New; it
// serves HTTP through Handler (for httptest or your own http.Server) or
// through Start/Serve and Close. All methods are safe for concurrent use.
type Server struct {
	opts         Options
	callBytesSet bool // Options.MaxBytesPerCall was given

	mu      sync.RWMutex       // guards streams
	streams map[string]*stream // by name

	ids atomic.Uint64 // numbers requests for x-amzn-RequestId

	bodies    sync.Pool // *bytes.Buffer: request bodies
	responses sync.Pool // *[]byte: response bodies
	routes    sync.Pool // *[]routed: PutRecords routing

	httpMu  sync.Mutex   // guards httpSrv
	httpSrv *http.Server // set by Start or Serve
}

// New returns a server with no streams. It does not listen; see Handler,
// Start and Serve.
func New(opts Options) *Server {
	o := opts.withDefaults()
	s := &Server{opts: o, callBytesSet: opts.MaxBytesPerCall > 0, streams: make(map[string]*stream)}
	s.bodies.New = func() any { return new(bytes.Buffer) }
	s.responses.New = func() any { b := make([]byte, 0, 4096); return &b }
	s.routes.New = func() any { r := make([]routed, 0, DefaultMaxRecordsPerCall); return &r }
	return s
}

// Options returns the server's options with defaults filled in.
func (s *Server) Options() Options { return s.opts }

// Handler returns the HTTP handler speaking the Kinesis JSON 1.1 protocol.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// Start listens on addr (for example "127.0.0.1:0") and serves in a new
// goroutine until Close. A Server serves through Start or Serve at most
// once (ErrServerStarted otherwise); Handler has no such limit. It returns
// the base URL to give the SDK client as
// BaseEndpoint, such as "http://127.0.0.1:4568".
func (s *Server) Start(addr string) (string, error) {
	l, url, err := httpserve.Listen(addr)
	if err != nil {
		return "", fmt.Errorf("limitserver: listen on %s: %w", addr, err)
	}
	srv, err := s.install()
	if err != nil {
		_ = l.Close()
		return "", err
	}
	go func() { _ = srv.Serve(l) }() // ends with ErrServerClosed on Close
	return url, nil
}

// ShutdownTimeout is how long Serve waits for requests in progress after
// its context ends before closing their connections.
const ShutdownTimeout = 5 * time.Second

// Serve serves HTTP on l and blocks until ctx is done, Close, or a listener
// error. When ctx ends it shuts down gracefully (waiting up to
// ShutdownTimeout for requests in progress) and returns nil; it returns nil
// after Close too.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	srv, err := s.install()
	if err != nil {
		_ = l.Close()
		return err
	}
	if err := httpserve.Serve(ctx, srv, l, ShutdownTimeout); err != nil {
		return fmt.Errorf("limitserver: serve: %w", err)
	}
	return nil
}

// install creates the http.Server Start and Serve run.
func (s *Server) install() (*http.Server, error) {
	s.httpMu.Lock()
	defer s.httpMu.Unlock()
	if s.httpSrv != nil {
		return nil, ErrServerStarted
	}
	s.httpSrv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	return s.httpSrv, nil
}

// Shutdown stops a server started with Start or Serve gracefully: it stops
// listening and waits for requests in progress until ctx is done.
func (s *Server) Shutdown(ctx context.Context) error {
	s.httpMu.Lock()
	srv := s.httpSrv
	s.httpMu.Unlock()
	if srv == nil {
		return nil
	}
	if err := srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("limitserver: shutdown: %w", err)
	}
	return nil
}

// Close stops a server started with Start or Serve at once, closing open
// connections. It is a no-op otherwise and safe to call more than once.
func (s *Server) Close() error {
	s.httpMu.Lock()
	srv := s.httpSrv
	s.httpMu.Unlock()
	if srv == nil {
		return nil
	}
	if err := srv.Close(); err != nil {
		return fmt.Errorf("limitserver: close: %w", err)
	}
	return nil
}

// CreateStream creates an ACTIVE stream with the given number of shards
// (1 to 10,000), splitting the hash key space evenly, with the record size
// limit of Options.MaxRecordSize. Its buckets start full.
// Errors wrap ErrStreamExists or ErrInvalidStream.
func (s *Server) CreateStream(name string, shards int) error {
	return s.createStreamSized(name, shards, s.opts.MaxRecordSize)
}

// UpdateMaxRecordSize sets a stream's record size limit (data plus
// partition key) to kib KiB, 1024 to 10240, as the service's
// UpdateMaxRecordSize does. Above 1024 KiB the stream takes PutRecords
// calls of up to 10 MiB and its shards' byte buckets grow to
// Options.LargeRecordBurst (filling at the shard's rate). Errors wrap
// ErrStreamNotFound or ErrInvalidStream.
func (s *Server) UpdateMaxRecordSize(name string, kib int) error {
	if kib < MinMaxRecordSizeKiB || kib > MaxMaxRecordSizeKiB {
		return fmt.Errorf("%w: max record size %d KiB is not in [%d, %d]", ErrInvalidStream, kib, MinMaxRecordSizeKiB, MaxMaxRecordSizeKiB)
	}
	st := s.stream(name)
	if st == nil {
		return fmt.Errorf("%w: %s", ErrStreamNotFound, name)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.setMaxRecordSize(s, kib<<10)
	return nil
}

// createStreamSized creates a stream whose records may be up to
// maxRecordSize bytes.
func (s *Server) createStreamSized(name string, shards, maxRecordSize int) error {
	if !streamNamePattern.MatchString(name) {
		return fmt.Errorf("%w: name %q does not match [a-zA-Z0-9_.-]{1,128}", ErrInvalidStream, name)
	}
	if shards < 1 || shards > maxShards {
		return fmt.Errorf("%w: shard count %d is not in [1, %d]", ErrInvalidStream, shards, maxShards)
	}
	st := s.newStream(name, shards, maxRecordSize)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.streams[name]; ok {
		return fmt.Errorf("%w: %s", ErrStreamExists, name)
	}
	s.streams[name] = st
	return nil
}

// DeleteStream removes a stream and its counters. Errors wrap
// ErrStreamNotFound.
func (s *Server) DeleteStream(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.streams[name]; !ok {
		return fmt.Errorf("%w: %s", ErrStreamNotFound, name)
	}
	delete(s.streams, name)
	return nil
}

// StreamNames returns the names of all streams, sorted.
func (s *Server) StreamNames() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	names := make([]string, 0, len(s.streams))
	for n := range s.streams {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// stream returns the named stream or nil.
func (s *Server) stream(name string) *stream {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.streams[name]
}

// Stats returns a snapshot of a stream's counters since it was created.
// Errors wrap ErrStreamNotFound.
func (s *Server) Stats(name string) (StreamStats, error) {
	st := s.stream(name)
	if st == nil {
		return StreamStats{}, fmt.Errorf("%w: %s", ErrStreamNotFound, name)
	}
	return st.stats(), nil
}

// Records returns the records a stream accepted, per shard in the order of
// StreamStats.Shards and in sequence order within a shard. It needs Options.KeepData; without it the
// slices are empty. Errors wrap ErrStreamNotFound.
func (s *Server) Records(name string) ([][]Record, error) {
	st := s.stream(name)
	if st == nil {
		return nil, fmt.Errorf("%w: %s", ErrStreamNotFound, name)
	}
	st.mu.RLock()
	shards := st.shards
	st.mu.RUnlock()
	out := make([][]Record, len(shards))
	for i, sh := range shards {
		sh.mu.Lock()
		out[i] = append([]Record(nil), sh.kept...)
		sh.mu.Unlock()
	}
	return out, nil
}

// arn returns a stream's ARN.
func (s *Server) arn(name string) string {
	return "arn:aws:kinesis:" + s.opts.Region + ":" + s.opts.AccountID + ":stream/" + name
}
