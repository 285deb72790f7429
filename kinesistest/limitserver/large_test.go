package limitserver_test

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kplgo/kpl/kinesistest/limitserver"
)

const mib = 1 << 20

// createSized creates a one-shard stream with a record limit of kib KiB
// through the SDK, as a user of the service would.
func createSized(t *testing.T, c *kinesis.Client, name string, kib int32) {
	t.Helper()
	in := &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(1)}
	if kib != 0 {
		in.MaxRecordSizeInKiB = aws.Int32(kib)
	}
	if _, err := c.CreateStream(ctxFor(t), in); err != nil {
		t.Fatalf("CreateStream: %v", err)
	}
}

// putSizes puts one PutRecords call of records with key "k" and the given
// data sizes. It returns the call's error and, when it succeeded, which
// entries were throttled.
func putSizes(t *testing.T, c *kinesis.Client, stream string, sizes ...int) ([]bool, error) {
	t.Helper()
	entries := make([]types.PutRecordsRequestEntry, len(sizes))
	for i, n := range sizes {
		entries[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String("k"), Data: make([]byte, n)}
	}
	out, err := c.PutRecords(ctxFor(t), &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries})
	if err != nil {
		return nil, err
	}
	throttled := make([]bool, len(out.Records))
	for i, r := range out.Records {
		throttled[i] = aws.ToString(r.ErrorCode) == "ProvisionedThroughputExceededException"
	}
	return throttled, nil
}

func TestRecordSizeLimitFollowsTheStream(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		kib   int32 // 0: the default 1 MiB stream
		sizes []int // data sizes of one PutRecords call; the key "k" adds 1 byte each
		want  string
	}{
		{name: "a 5 MiB record is refused by a default stream", sizes: []int{5 * mib}, want: "ValidationException"},
		{name: "a 1 MiB record with its key is accepted by a default stream", sizes: []int{mib - 1}},
		{name: "a 5 MiB record with its key is accepted by a 5 MiB stream", kib: 5120, sizes: []int{5*mib - 1}},
		{name: "5 MiB of data plus the key is refused by a 5 MiB stream", kib: 5120, sizes: []int{5 * mib}, want: "InvalidArgumentException"},
		{name: "a 10 MiB record is refused by a 5 MiB stream", kib: 5120, sizes: []int{10*mib - 1}, want: "ValidationException"},
		{name: "a 5 MiB record is accepted by a 10 MiB stream", kib: 10240, sizes: []int{5 * mib}},
		{name: "a 10 MiB record with its key is accepted by a 10 MiB stream", kib: 10240, sizes: []int{10*mib - 1}},
		{name: "10 MiB of data plus the key is refused by a 10 MiB stream", kib: 10240, sizes: []int{10 * mib}, want: "InvalidArgumentException"},
		{name: "two 5 MiB records with their keys fill a 10 MiB call", kib: 10240, sizes: []int{5*mib - 1, 5*mib - 1}},
		{name: "a call over 10 MiB is refused by a 10 MiB stream", kib: 10240, sizes: []int{5 * mib, 5 * mib}, want: "InvalidArgumentException"},
		{name: "a call over 5 MiB is refused by a default stream", sizes: []int{mib - 1, mib - 1, mib - 1, mib - 1, mib - 1, 1}, want: "InvalidArgumentException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := limitserver.New(limitserver.Options{Clock: newFakeClock(), RecordsPerSecond: -1})
			c := start(t, srv)
			createSized(t, c, "s", tt.kib)
			throttled, err := putSizes(t, c, "s", tt.sizes...)
			if tt.want != "" {
				if !isErrorType(err, tt.want) {
					t.Fatalf("PutRecords: %v, want %s", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("PutRecords: %v, want accepted", err)
			}
			for i, th := range throttled {
				if th {
					t.Errorf("entry %d was throttled by a full bucket", i)
				}
			}
		})
	}
}

func TestLargeRecordsDrawOnABurstBucketRefillingAtOneMiBPerSecond(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	srv := limitserver.New(limitserver.Options{Clock: clock, RecordsPerSecond: -1})
	c := start(t, srv)
	createSized(t, c, "big", 10240)
	createSized(t, c, "small", 0)

	steps := []struct {
		name    string
		stream  string
		advance time.Duration
		size    int
		want    bool // accepted
	}{
		{name: "a full 10 MiB bucket takes a 10 MiB record", stream: "big", size: 10*mib - 1, want: true},
		{name: "the empty bucket throttles the next record", stream: "big", size: 100, want: false},
		{name: "one second refills 1 MiB", stream: "big", advance: time.Second, size: mib - 1, want: true},
		{name: "4 s refill less than a 5 MiB record", stream: "big", advance: 4 * time.Second, size: 5*mib - 1, want: false},
		{name: "5 s refill a 5 MiB record", stream: "big", advance: time.Second, size: 5*mib - 1, want: true},
		{name: "the bucket holds at most 10 MiB", stream: "big", advance: time.Minute, size: 10*mib - 1, want: true},
		{name: "a default stream's bucket holds 1 MiB", stream: "small", size: 600 << 10, want: true},
		{name: "so a second 600 KiB record is throttled", stream: "small", size: 600 << 10, want: false},
	}
	for _, s := range steps {
		clock.Advance(s.advance)
		throttled, err := putSizes(t, c, s.stream, s.size)
		if err != nil {
			t.Fatalf("%s: PutRecords: %v", s.name, err)
		}
		if got := !throttled[0]; got != s.want {
			t.Errorf("%s: accepted = %v, want %v", s.name, got, s.want)
		}
	}
}

func TestUpdateMaxRecordSizeIsReportedAndGrowsTheBucketAtTheShardRate(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	srv := limitserver.New(limitserver.Options{Clock: clock, RecordsPerSecond: -1})
	c := start(t, srv)
	createSized(t, c, "s", 0)
	arn := "arn:aws:kinesis:us-east-1:000000000000:stream/s"
	kib := func() int32 {
		out, err := c.DescribeStreamSummary(ctxFor(t), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s")})
		if err != nil {
			t.Fatalf("DescribeStreamSummary: %v", err)
		}
		return aws.ToInt32(out.StreamDescriptionSummary.MaxRecordSizeInKiB)
	}
	if got := kib(); got != 1024 {
		t.Errorf("a new stream reports MaxRecordSizeInKiB %d, want 1024", got)
	}
	for _, bad := range []int32{1023, 10241} {
		_, err := c.UpdateMaxRecordSize(ctxFor(t), &kinesis.UpdateMaxRecordSizeInput{StreamARN: aws.String(arn), MaxRecordSizeInKiB: aws.Int32(bad)})
		if !isErrorType(err, "ValidationException") {
			t.Errorf("UpdateMaxRecordSize(%d): %v, want ValidationException", bad, err)
		}
	}
	if _, err := putSizes(t, c, "s", 5*mib-1); !isErrorType(err, "ValidationException") {
		t.Fatalf("a 5 MiB record before the update: %v, want ValidationException", err)
	}
	if _, err := c.UpdateMaxRecordSize(ctxFor(t), &kinesis.UpdateMaxRecordSizeInput{StreamARN: aws.String(arn), MaxRecordSizeInKiB: aws.Int32(10240)}); err != nil {
		t.Fatalf("UpdateMaxRecordSize: %v", err)
	}
	if got := kib(); got != 10240 {
		t.Errorf("after the update MaxRecordSizeInKiB is %d, want 10240", got)
	}
	// The bucket held 1 MiB; it grows by refilling, not at once.
	throttled, err := putSizes(t, c, "s", 5*mib-1)
	if err != nil || !throttled[0] {
		t.Fatalf("a 5 MiB record right after the update: throttled %v, %v; want throttled", throttled, err)
	}
	clock.Advance(4 * time.Second)
	throttled, err = putSizes(t, c, "s", 5*mib-1)
	if err != nil || throttled[0] {
		t.Fatalf("a 5 MiB record 4 s later: throttled %v, %v; want accepted", throttled, err)
	}
	if st, _ := srv.Stats("s"); st.MaxRecordSize != 10*mib {
		t.Errorf("Stats().MaxRecordSize = %d, want %d", st.MaxRecordSize, 10*mib)
	}
}
