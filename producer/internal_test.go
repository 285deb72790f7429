package producer

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/kplgo/kpl/aggregation"
)

func TestLimiter(t *testing.T) {
	t0 := time.Unix(1000, 0)
	t.Run("a full bucket passes one second of the scaled rate and no more", func(t *testing.T) {
		l := newLimiter(100, 0, t0)
		sent := 0
		for l.take(t0, 1024) {
			sent++
		}
		if sent != 1000 { // records/s binds before bytes: 1000 x 1 KiB = 1000 KiB < 1 MiB
			t.Errorf("sent %d records at once, want 1000", sent)
		}
		if at := l.when(t0, 1024); at.Sub(t0) < time.Millisecond || at.Sub(t0) > 3*time.Millisecond {
			t.Errorf("next record at +%v, want about 1ms", at.Sub(t0))
		}
	})
	t.Run("RateLimit scales the bytes per second", func(t *testing.T) {
		l := newLimiter(50, 0, t0)
		var bytes int
		for l.take(t0, 100<<10) {
			bytes += 100 << 10
		}
		if bytes > 1<<20/2+100<<10 || bytes < 1<<20/2-100<<10 {
			t.Errorf("passed %d bytes at once, want about 512 KiB", bytes)
		}
	})
	t.Run("at the lowest RateLimit a throttled shard still sends once its bucket refills", func(t *testing.T) {
		l := newLimiter(1, 0, t0) // 10 records/s at factor 1
		now := t0
		for range 30 { // down to the floor: below one record per bucket
			now = now.Add(rateCutInterval)
			l.throttled(now)
		}
		if l.factor != rateFloor {
			t.Fatalf("factor %v, want the floor %v", l.factor, rateFloor)
		}
		at := l.when(now, 100)
		if wait := at.Sub(now); wait <= 0 || wait > 3*time.Second {
			t.Fatalf("next record in %v, want within the 2 s of one record at the floor", wait)
		}
		if !l.take(at, 100) {
			t.Error("the record cannot go at the time when says")
		}
	})
	t.Run("a record larger than the bucket passes when the bucket is full", func(t *testing.T) {
		l := newLimiter(10, 0, t0) // 104857 bytes per second
		if !l.take(t0, 1<<20) {
			t.Fatal("a 1 MiB record never passes a 10% bucket")
		}
		if l.take(t0.Add(time.Second), 1<<20) {
			t.Error("the debt of the large record was not paid")
		}
	})
	t.Run("throttling lowers the rate multiplicatively, once per interval", func(t *testing.T) {
		l := newLimiter(100, 0, t0)
		l.throttled(t0)
		l.throttled(t0.Add(time.Millisecond))
		if l.factor != rateDecrease {
			t.Errorf("factor %v after two throttles in one interval, want %v", l.factor, rateDecrease)
		}
		l.throttled(t0.Add(rateCutInterval + time.Millisecond))
		if want := rateDecrease * rateDecrease; l.factor < want-1e-9 || l.factor > want+1e-9 {
			t.Errorf("factor %v, want %v", l.factor, want)
		}
		if l.take(t0.Add(rateCutInterval+time.Millisecond), 1) {
			t.Error("a throttled bucket still had tokens")
		}
		for i := range 100 {
			l.throttled(t0.Add(time.Duration(i+2) * rateCutInterval * 2))
		}
		if l.factor != rateFloor {
			t.Errorf("factor %v, want the floor %v", l.factor, rateFloor)
		}
	})
	t.Run("success raises the rate additively back to the ceiling", func(t *testing.T) {
		l := newLimiter(100, 0, t0)
		l.throttled(t0)
		l.succeeded(t0.Add(time.Second))
		if want := rateDecrease + rateIncreasePerSecond; l.factor < want-1e-9 || l.factor > want+1e-9 {
			t.Errorf("factor %v after one second of success, want %v", l.factor, want)
		}
		l.succeeded(t0.Add(time.Hour))
		if l.factor != 1 {
			t.Errorf("factor %v, want 1", l.factor)
		}
	})
	t.Run("a large-record stream's bucket bursts to 10 MiB and refills at the rate", func(t *testing.T) {
		l := newLimiter(100, largeRecordBurst, t0)
		if !l.take(t0, 9<<20) {
			t.Fatal("a 9 MiB record does not pass a full 10 MiB bucket")
		}
		if l.take(t0, 2<<20) {
			t.Error("2 MiB more passed at once: the burst is larger than 10 MiB")
		}
		if at := l.when(t0, 2<<20); at.Sub(t0) < 900*time.Millisecond || at.Sub(t0) > 1100*time.Millisecond {
			t.Errorf("2 MiB more at +%v, want about 1s at 1 MiB/s", at.Sub(t0))
		}
	})
	t.Run("a disabled limiter passes everything", func(t *testing.T) {
		l := newLimiter(0, 0, t0)
		for range 100000 {
			if !l.take(t0, 1<<20) {
				t.Fatal("refused")
			}
		}
	})
}

func TestClassify(t *testing.T) {
	respErr := func(status int, err error) error {
		return &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}}, Err: err,
		}}
	}
	op := func(err error) error {
		return &smithy.OperationError{ServiceID: "Kinesis", OperationName: "PutRecords", Err: err}
	}
	tests := []struct {
		name      string
		err       error
		code      string
		retryable bool
		refresh   bool
		throttle  bool
		maybe     bool // the call may have stored its records
	}{
		{"throttling is retried and slows the shard", op(respErr(400, &types.ProvisionedThroughputExceededException{Message: aws.String("x")})), "ProvisionedThroughputExceededException", true, false, true, false},
		{"KMS throttling is retried", op(respErr(400, &types.KMSThrottlingException{})), "KMSThrottlingException", true, false, false, false},
		{"a missing stream is retried after a refresh", op(respErr(400, &types.ResourceNotFoundException{})), "ResourceNotFoundException", true, true, false, false},
		{"a validation error fails", op(respErr(400, &types.InvalidArgumentException{})), "InvalidArgumentException", false, false, false, false},
		{"an access error fails", op(respErr(400, &types.AccessDeniedException{})), "AccessDeniedException", false, false, false, false},
		{"a KMS configuration error fails", op(respErr(400, &types.KMSDisabledException{})), "KMSDisabledException", false, false, false, false},
		{"an unknown 500 error is retried", op(respErr(500, &smithy.GenericAPIError{Code: "Boom"})), "Boom", true, false, false, true},
		{"a 503 without a body is retried", op(respErr(503, errors.New("bad gateway"))), "HTTP503", true, false, false, true},
		{"a 403 without a body fails", op(respErr(403, errors.New("forbidden"))), "HTTP403", false, false, false, false},
		{"a reset connection is retried", op(fmt.Errorf("send: %w", syscall.ECONNRESET)), "NetworkError", true, false, false, true},
		{"a refused connection is retried, and sent nothing", op(&net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}), "NetworkError", true, false, false, false},
		{"a name that does not resolve sent nothing", op(&net.DNSError{Err: "no such host", Name: "kinesis.example"}), "NetworkError", true, false, false, false},
		{"a timed-out call is retried", op(context.DeadlineExceeded), "RequestTimeout", true, false, false, true},
		{"a request the SDK refuses fails", op(fmt.Errorf("validate: %w", &smithy.SerializationError{Err: errors.New("bad")})), "InvalidRequest", false, false, false, false},
		{"an invalid response is retried", &invalidResponseError{msg: "2 results for 3 records"}, "InvalidResponse", true, false, false, true},
		{"a 200 whose body cannot be read is retried, and may have stored", op(respErr(200, &smithy.DeserializationError{Err: errors.New("unexpected EOF")})), "InvalidResponse", true, false, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := classify(tt.err)
			if c.code != tt.code || c.retryable != tt.retryable || c.refresh != tt.refresh || c.throttle != tt.throttle || c.maybeStored != tt.maybe {
				t.Errorf("classify = %+v", c)
			}
			if c.cause != tt.err {
				t.Error("the cause is not kept")
			}
		})
	}
	t.Run("per-entry codes", func(t *testing.T) {
		for code, retry := range map[string]bool{
			"ProvisionedThroughputExceededException": true, "InternalFailure": true, "KMSThrottlingException": true,
			"InvalidArgumentException": false, "KMSAccessDeniedException": false, "ValidationException": false,
		} {
			if c := classifyCode(code, ""); c.retryable != retry {
				t.Errorf("%s: retryable %v, want %v", code, c.retryable, retry)
			}
		}
	})
}

// TestAResponseCutShortIsRetriedAndMayHaveStored: the service answers 200
// and the body ends in the middle of its JSON (the connection was cut):
// through the real SDK client, the call counts as maybe stored and is
// retried, not failed as refused.
func TestAResponseCutShortIsRetriedAndMayHaveStored(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		_, _ = w.Write([]byte(`{"FailedRecordCount":0,"Records":[{"SequenceNumber":"1","Shard`))
	}))
	defer srv.Close()
	c := kinesis.New(kinesis.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKIATEST", "secret", "")}, ClientOptions())
	_, err := c.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String("s"),
		Records: []types.PutRecordsRequestEntry{{Data: []byte("x"), PartitionKey: aws.String("k")}}})
	if err == nil {
		t.Fatal("a body cut short was read as a response")
	}
	if cl := classify(err); cl.code != "InvalidResponse" || !cl.retryable || !cl.maybeStored {
		t.Errorf("classify(%v) = %+v, want a retried InvalidResponse that may have stored", err, cl)
	}
}

func TestBackoffHasFullJitterUnderACap(t *testing.T) {
	p := &Producer{opts: defaultOptions()}
	for n := 1; n <= 40; n++ {
		window := min(p.opts.RetryBaseDelay<<min(n-1, 30), p.opts.RetryMaxDelay)
		for range 200 {
			if d := p.backoff(n); d <= 0 || d > window {
				t.Fatalf("backoff(%d) = %v outside (0, %v]", n, d, window)
			}
		}
	}
}

func TestShardMapFind(t *testing.T) {
	t.Parallel()
	even := newFakeClient(7).shards
	// Uneven: one shard split again and again (a hot key range), as
	// buckets sized for an even split see it.
	uneven := append([]*fakeShard(nil), even[:2]...)
	lo, hi := even[2].start, even[2].end
	for range 40 {
		mid := midKey(lo, hi)
		uneven = append(uneven, &fakeShard{id: fmt.Sprintf("split-%d", len(uneven)), start: lo, end: before(mid)})
		lo = mid
	}
	uneven = append(uneven, &fakeShard{id: "split-last", start: lo, end: hi})
	uneven = append(uneven, even[3:]...)
	for _, tc := range []struct {
		name   string
		shards []*fakeShard
	}{{"even", even}, {"uneven", uneven}, {"one", []*fakeShard{{id: "only", start: aggregation.HashKey{}, end: aggregation.HashKey{Hi: ^uint64(0), Lo: ^uint64(0)}}}}} {
		owner := func(h aggregation.HashKey) string {
			for _, s := range tc.shards {
				if s.start.Cmp(h) <= 0 && h.Cmp(s.end) <= 0 {
					return s.id
				}
			}
			return ""
		}
		for _, indexed := range []bool{false, true} {
			m := newShardMap(0)
			for _, s := range tc.shards {
				m.add(&shard{id: s.id, start: s.start, end: s.end})
			}
			if indexed {
				m.index()
			}
			for i := range 5000 {
				h := aggregationHash(fmt.Sprintf("key-%d", i))
				if got, want := m.find(h).id, owner(h); got != want {
					t.Fatalf("%s, indexed %v: key-%d routed to %s, owner %s", tc.name, indexed, i, got, want)
				}
			}
			for _, s := range tc.shards {
				if m.find(s.start).id != s.id || m.find(s.end).id != s.id {
					t.Errorf("%s, indexed %v: the edges of %s are routed elsewhere", tc.name, indexed, s.id)
				}
			}
		}
	}
}

// midKey returns the hash key halfway between lo and hi.
func midKey(lo, hi aggregation.HashKey) aggregation.HashKey {
	toBig := func(h aggregation.HashKey) *big.Int {
		return new(big.Int).Add(new(big.Int).Lsh(new(big.Int).SetUint64(h.Hi), 64), new(big.Int).SetUint64(h.Lo))
	}
	m := new(big.Int).Rsh(new(big.Int).Add(toBig(lo), toBig(hi)), 1)
	return aggregation.HashKey{Hi: new(big.Int).Rsh(m, 64).Uint64(), Lo: m.Uint64()}
}

// before returns the hash key just below h, which is not zero.
func before(h aggregation.HashKey) aggregation.HashKey {
	if h.Lo == 0 {
		return aggregation.HashKey{Hi: h.Hi - 1, Lo: ^uint64(0)}
	}
	return aggregation.HashKey{Hi: h.Hi, Lo: h.Lo - 1}
}

func aggregationHash(pk string) aggregation.HashKey { return aggregation.PartitionKeyHash(pk) }

func TestDefaultOptionsAreWhatNewStartsFrom(t *testing.T) {
	t.Parallel()
	var seen Options
	p, err := New(context.Background(), newFakeClient(1), "s", func(o *Options) { seen = *o })
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if d := DefaultOptions(); !reflect.DeepEqual(seen, d) {
		t.Errorf("New starts from %+v, DefaultOptions returns %+v", seen, d)
	}
}

// TestShardLayout keeps what every Put reads of a shard in its first cache
// line, and its size a whole number of lines, so that its allocations are
// aligned to them (64-bit platforms).
func TestShardLayout(t *testing.T) {
	t.Parallel()
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("the layout is tuned for 64-bit platforms")
	}
	var s shard
	if n := unsafe.Sizeof(s); n%64 != 0 {
		t.Errorf("shard is %d bytes, not a multiple of 64: adjust its padding", n)
	}
	if end := unsafe.Offsetof(s.aggOld) + unsafe.Sizeof(s.aggOld); end > 64 {
		t.Errorf("the fields a Put reads end at byte %d, past the first cache line", end)
	}
}

func TestFutureLayout(t *testing.T) {
	t.Parallel()
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("the layout is tuned for 64-bit platforms")
	}
	var f Future
	// The allocator's 192-byte size class is three whole cache lines, so
	// that every Future starts on a line boundary (the next class down is
	// 176 bytes).
	if n := unsafe.Sizeof(f); n <= 176 || n > 192 {
		t.Errorf("Future is %d bytes, want 177 to 192: the 192-byte size class of three whole cache lines", n)
	}
	if end := unsafe.Offsetof(f.p) + unsafe.Sizeof(f.p); end > 64 {
		t.Errorf("the fields completing a delivered record touches end at byte %d, past the first cache line", end)
	}
}

// TestACompletedFutureHoldsNoData: once a record has its result, its
// Future no longer references the record's data (a failure's RecordError
// carries it), whether it travelled plain or in an aggregate.
func TestACompletedFutureHoldsNoData(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		agg     bool
		keys, n int
		fail    bool
	}{
		{"aggregated", true, 3, 30, false},
		{"an aggregate of one, sent plain", true, 1, 1, false},
		{"plain", false, 3, 10, false},
		{"aggregated, failed", true, 3, 30, true},
		{"plain, failed", false, 3, 10, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newFakeClient(2)
			if tc.fail {
				c.script = func(_ context.Context, _ int, in *kinesis.PutRecordsInput) ([]string, error) {
					codes := make([]string, len(in.Records))
					for i := range codes {
						codes[i] = "InvalidArgumentException"
					}
					return codes, nil
				}
			}
			// Everything waits for the Flush: a shard's records share one
			// aggregate however slowly they are put.
			p := newProducer(t, c, func(o *Options) { o.AggregationEnabled, o.Linger, o.RecordTTL = tc.agg, time.Hour, 2*time.Hour })
			recs := putAll(t, p, tc.n, tc.keys)
			if err := p.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				res, err := r.f.Wait(context.Background())
				var re *RecordError
				switch {
				case tc.fail && (!errors.As(err, &re) || string(re.Data) != r.data):
					t.Fatalf("%s: %v, want a RecordError with the data", r.data, err)
				case !tc.fail && err != nil:
					t.Fatalf("%s: %v", r.data, err)
				case !tc.fail && res.Aggregated != (tc.agg && tc.n > 1):
					t.Fatalf("%s: aggregated %v", r.data, res.Aggregated)
				}
				if r.f.data != nil {
					t.Errorf("%s: the completed Future still holds %q", r.data, r.f.data)
				}
			}
		})
	}
}

// TestDoneChannelsCloseOnceWhateverTheOrder calls Done from several
// goroutines while the results come in: every channel closes (a double close
// would panic), before or after the result, whoever made it.
func TestDoneChannelsCloseOnceWhateverTheOrder(t *testing.T) {
	t.Parallel()
	p := newProducer(t, newFakeClient(2), func(o *Options) { o.Linger = time.Millisecond })
	const n, waiters = 300, 3
	futures := make([]*Future, n)
	for i := range futures {
		f, err := p.Put(context.Background(), fmt.Sprintf("key-%d", i%7), []byte("data"))
		if err != nil {
			t.Fatal(err)
		}
		futures[i] = f
	}
	var wg sync.WaitGroup
	for _, step := range []int{1, 7, 11}[:waiters] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range futures {
				f := futures[(i*step)%n] // a different order per goroutine (steps prime to n)
				select {
				case <-f.Done():
				case <-time.After(30 * time.Second):
					t.Errorf("Done of record %d not closed", i)
					return
				}
				if f.state.Load()&futureDone == 0 {
					t.Errorf("Done of record %d closed before its result", i)
				}
			}
		}()
	}
	wg.Wait()
	for i, f := range futures {
		if _, err := f.Wait(context.Background()); err != nil {
			t.Errorf("record %d: %v", i, err)
		}
		<-f.Done() // after the result: closed at once
	}
}
