package metrics

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kplgo/kpl/producer"
)

func TestCollectorExportsStats(t *testing.T) {
	st := producer.Stats{
		UserRecordsPut:          10,
		UserRecordsSucceeded:    8,
		UserRecordsFailed:       1,
		KinesisRecordsSucceeded: 2,
		Throttles:               3,
		RetriesByCode:           map[string]uint64{"InternalFailure": 2, "ProvisionedThroughputExceededException": 3},
		BufferedRecords:         1,
		Shards:                  4,
	}
	c := NewStatsCollector(func() producer.Stats { return st }, "kpl")
	want := `
# HELP kpl_producer_buffered_records User records accepted and not yet resolved.
# TYPE kpl_producer_buffered_records gauge
kpl_producer_buffered_records 1
# HELP kpl_producer_retries_total Kinesis records scheduled for another attempt, by error code.
# TYPE kpl_producer_retries_total counter
kpl_producer_retries_total{code="InternalFailure"} 2
kpl_producer_retries_total{code="ProvisionedThroughputExceededException"} 3
# HELP kpl_producer_shards Open shards in the shard map.
# TYPE kpl_producer_shards gauge
kpl_producer_shards 4
# HELP kpl_producer_throttles_total Kinesis records refused for throughput.
# TYPE kpl_producer_throttles_total counter
kpl_producer_throttles_total 3
# HELP kpl_producer_user_records_per_kinesis_record Average user records per stored Kinesis record.
# TYPE kpl_producer_user_records_per_kinesis_record gauge
kpl_producer_user_records_per_kinesis_record 4
# HELP kpl_producer_user_records_put_total User records accepted by Put.
# TYPE kpl_producer_user_records_put_total counter
kpl_producer_user_records_put_total 10
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want),
		"kpl_producer_buffered_records", "kpl_producer_retries_total", "kpl_producer_shards",
		"kpl_producer_throttles_total", "kpl_producer_user_records_per_kinesis_record",
		"kpl_producer_user_records_put_total"); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %+v", err, problems)
	}
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Errorf("register: %v", err)
	}
	if _, err := reg.Gather(); err != nil {
		t.Errorf("gather: %v", err)
	}
}

// oneShard is a one-shard stream that stores nothing and acknowledges all.
type oneShard struct{}

func (oneShard) ListShards(context.Context, *kinesis.ListShardsInput, ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	return &kinesis.ListShardsOutput{Shards: []types.Shard{{
		ShardId:      aws.String("shardId-000000000000"),
		HashKeyRange: &types.HashKeyRange{StartingHashKey: aws.String("0"), EndingHashKey: aws.String("340282366920938463463374607431768211455")},
	}}}, nil
}

func (oneShard) PutRecords(_ context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	out := &kinesis.PutRecordsOutput{}
	for range in.Records {
		out.Records = append(out.Records, types.PutRecordsResultEntry{ShardId: aws.String("shardId-000000000000"), SequenceNumber: aws.String("1")})
	}
	return out, nil
}

func TestCollectorFollowsAProducer(t *testing.T) {
	ctx := context.Background()
	p, err := producer.New(ctx, oneShard{}, "s")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c := NewCollector(p, "app")
	for range 5 {
		if _, err := p.Put(ctx, "k", []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP app_producer_user_records_succeeded_total User records delivered.
# TYPE app_producer_user_records_succeeded_total counter
app_producer_user_records_succeeded_total 5
# HELP app_producer_kinesis_records_succeeded_total Kinesis records stored.
# TYPE app_producer_kinesis_records_succeeded_total counter
app_producer_kinesis_records_succeeded_total 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want),
		"app_producer_user_records_succeeded_total", "app_producer_kinesis_records_succeeded_total"); err != nil {
		t.Error(err)
	}
}

func TestCollectorExportsLatencyHistogramsAndFailureCodes(t *testing.T) {
	st := producer.Stats{
		FailuresByCode: map[string]uint64{"RecordExpired": 2},
		PutLatency: producer.Histogram{
			Bounds: []time.Duration{time.Millisecond, 2 * time.Millisecond},
			Counts: []uint64{3, 1, 1},
			Count:  5,
			Sum:    10 * time.Millisecond,
		},
	}
	c := NewStatsCollector(func() producer.Stats { return st }, "kpl")
	want := `
# HELP kpl_producer_put_latency_seconds Time from Put to each user record's result.
# TYPE kpl_producer_put_latency_seconds histogram
kpl_producer_put_latency_seconds_bucket{le="0.001"} 3
kpl_producer_put_latency_seconds_bucket{le="0.002"} 4
kpl_producer_put_latency_seconds_bucket{le="+Inf"} 5
kpl_producer_put_latency_seconds_sum 0.01
kpl_producer_put_latency_seconds_count 5
# HELP kpl_producer_user_records_failed_by_code_total User records that failed, by the error code of their last attempt.
# TYPE kpl_producer_user_records_failed_by_code_total counter
kpl_producer_user_records_failed_by_code_total{code="RecordExpired"} 2
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want),
		"kpl_producer_put_latency_seconds", "kpl_producer_user_records_failed_by_code_total"); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %+v", err, problems)
	}
}

// A snapshot's Sum stops at the largest Duration (292 years of summed
// latency); the exported _sum is SumSeconds, which goes on.
func TestCollectorExportsTheLatencySumPastTheLargestDuration(t *testing.T) {
	tests := []struct {
		name    string
		sum     time.Duration
		seconds float64
		want    string
	}{
		{"SumSeconds past where Sum stops", math.MaxInt64, 1.5e10, "1.5e+10"},
		{"SumSeconds to the microsecond", 1234567 * time.Microsecond, 1.234567, "1.234567"},
		{"Sum when SumSeconds is not set", 10 * time.Millisecond, 0, "0.01"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := producer.Histogram{Bounds: []time.Duration{time.Millisecond}, Counts: []uint64{0, 5}, Count: 5, Sum: tc.sum, SumSeconds: tc.seconds}
			c := NewStatsCollector(func() producer.Stats { return producer.Stats{PutLatency: h, CallDuration: h} }, "kpl")
			want := `
# HELP kpl_producer_put_latency_seconds Time from Put to each user record's result.
# TYPE kpl_producer_put_latency_seconds histogram
kpl_producer_put_latency_seconds_bucket{le="0.001"} 0
kpl_producer_put_latency_seconds_bucket{le="+Inf"} 5
kpl_producer_put_latency_seconds_sum ` + tc.want + `
kpl_producer_put_latency_seconds_count 5
# HELP kpl_producer_put_records_call_duration_seconds Duration of PutRecords calls.
# TYPE kpl_producer_put_records_call_duration_seconds histogram
kpl_producer_put_records_call_duration_seconds_bucket{le="0.001"} 0
kpl_producer_put_records_call_duration_seconds_bucket{le="+Inf"} 5
kpl_producer_put_records_call_duration_seconds_sum ` + tc.want + `
kpl_producer_put_records_call_duration_seconds_count 5
`
			if err := testutil.CollectAndCompare(c, strings.NewReader(want),
				"kpl_producer_put_latency_seconds", "kpl_producer_put_records_call_duration_seconds"); err != nil {
				t.Error(err)
			}
		})
	}
}

// Two producers of one Pool (two streams) exported to one registry under
// one namespace, each with its stream's label.
func TestCollectorsOfTwoStreamsShareARegistry(t *testing.T) {
	h := producer.Histogram{Bounds: []time.Duration{time.Millisecond}, Counts: []uint64{1, 0}, Count: 1, Sum: time.Millisecond, SumSeconds: 0.001}
	reg := prometheus.NewPedanticRegistry()
	for i, stream := range []string{"orders", "trades"} {
		st := producer.Stats{Shards: i + 1, RetriesByCode: map[string]uint64{"InternalFailure": uint64(i + 3)}, PutLatency: h}
		c := NewStatsCollectorWithLabels(func() producer.Stats { return st }, "kpl", prometheus.Labels{"stream": stream})
		if err := reg.Register(c); err != nil {
			t.Fatalf("stream %s: %v", stream, err)
		}
	}
	want := `
# HELP kpl_producer_put_latency_seconds Time from Put to each user record's result.
# TYPE kpl_producer_put_latency_seconds histogram
kpl_producer_put_latency_seconds_bucket{stream="orders",le="0.001"} 1
kpl_producer_put_latency_seconds_bucket{stream="orders",le="+Inf"} 1
kpl_producer_put_latency_seconds_sum{stream="orders"} 0.001
kpl_producer_put_latency_seconds_count{stream="orders"} 1
kpl_producer_put_latency_seconds_bucket{stream="trades",le="0.001"} 1
kpl_producer_put_latency_seconds_bucket{stream="trades",le="+Inf"} 1
kpl_producer_put_latency_seconds_sum{stream="trades"} 0.001
kpl_producer_put_latency_seconds_count{stream="trades"} 1
# HELP kpl_producer_retries_total Kinesis records scheduled for another attempt, by error code.
# TYPE kpl_producer_retries_total counter
kpl_producer_retries_total{code="InternalFailure",stream="orders"} 3
kpl_producer_retries_total{code="InternalFailure",stream="trades"} 4
# HELP kpl_producer_shards Open shards in the shard map.
# TYPE kpl_producer_shards gauge
kpl_producer_shards{stream="orders"} 1
kpl_producer_shards{stream="trades"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"kpl_producer_put_latency_seconds", "kpl_producer_retries_total", "kpl_producer_shards"); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %+v", err, problems)
	}
}

func TestCollectorsInOneRegistryNeedLabelsOfTheSameNamesWithOtherValues(t *testing.T) {
	stream := func(name string) prometheus.Labels { return prometheus.Labels{"stream": name} }
	tests := []struct {
		name           string
		first, second  prometheus.Labels
		firstNamespace string // "kpl" unless set
		wantFirst      bool   // the first registration fails
		wantSecond     bool   // the second registration fails
	}{
		{"two streams register", stream("a"), stream("b"), "", false, false},
		{"two streams in two namespaces register without labels", nil, nil, "app", false, false},
		{"two collectors without labels in one namespace do not", nil, nil, "", false, true},
		{"the same labels twice do not", stream("a"), stream("a"), "", false, true},
		{"labels next to none do not", nil, stream("b"), "", false, true},
		{"other label names do not", stream("a"), prometheus.Labels{"tenant": "b"}, "", false, true},
		{"a label named code does not", prometheus.Labels{"code": "x"}, nil, "", true, false},
		{"a label named le does not", prometheus.Labels{"le": "x"}, nil, "", true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := func() producer.Stats {
				return producer.Stats{RetriesByCode: map[string]uint64{"InternalFailure": 1}, FailuresByCode: map[string]uint64{"RecordExpired": 1}}
			}
			ns := tc.firstNamespace
			if ns == "" {
				ns = "kpl"
			}
			reg := prometheus.NewRegistry()
			first := NewStatsCollectorWithLabels(st, ns, tc.first)
			if err := reg.Register(first); (err != nil) != tc.wantFirst {
				t.Errorf("first registration: %v, want failure %v", err, tc.wantFirst)
			}
			if err := reg.Register(NewStatsCollectorWithLabels(st, "kpl", tc.second)); (err != nil) != tc.wantSecond {
				t.Errorf("second registration: %v, want failure %v", err, tc.wantSecond)
			}
			if _, err := reg.Gather(); err != nil {
				t.Errorf("gather: %v", err)
			}
			// Collected all the same, a refused collector sends invalid
			// metrics, not a panic.
			ch := make(chan prometheus.Metric, 2*len(metricDefs))
			first.Collect(ch)
			if len(ch) != len(metricDefs) {
				t.Errorf("collected %d metrics, want %d", len(ch), len(metricDefs))
			}
		})
	}
}
