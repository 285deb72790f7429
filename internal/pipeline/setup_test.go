package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"

	"github.com/kplgo/kpl/producer"
)

func TestLoggerNeverPrintsTheAPIKey(t *testing.T) {
	t.Parallel()
	const key = "c0ffee-key-42"
	for _, format := range []string{"text", "json"} {
		t.Run(format+" lines have the key redacted in messages and fields", func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			log, err := NewLogger(format, "debug", &out, key)
			if err != nil {
				t.Fatal(err)
			}
			log.WithField("url", "wss://ws.finnhub.io?token="+key).Info("dialing")
			log.WithField("error", fmt.Errorf("dial wss://x/?token=%s: refused", key)).Warn("reconnect")
			log.Errorf("the key is %s", key)
			if strings.Contains(out.String(), key) {
				t.Errorf("key in the log:\n%s", out.String())
			}
			if !strings.Contains(out.String(), "REDACTED") {
				t.Errorf("nothing redacted:\n%s", out.String())
			}
		})
	}
}

func TestNewLoggerRefusesAnUnknownLevel(t *testing.T) {
	t.Parallel()
	var ce *ConfigError
	if _, err := NewLogger("text", "loud", &bytes.Buffer{}, ""); !errors.As(err, &ce) {
		t.Errorf("err = %v, want a ConfigError", err)
	}
}

func TestProducerConfigApply(t *testing.T) {
	t.Parallel()
	defaults := producer.Options{AggregationEnabled: true, AggregationMaxSize: 51200, Linger: 100 * time.Millisecond, RecordTTL: 30 * time.Second, MaxBufferedRecords: 200000}
	tests := []struct {
		name string
		in   ProducerConfig
		want producer.Options
	}{
		{
			name: "zero knobs keep the producer defaults",
			in:   ProducerConfig{Aggregation: true, Ordered: true, RecordIDs: true},
			want: producer.Options{AggregationEnabled: true, AggregationMaxSize: 51200, Linger: 100 * time.Millisecond, RecordTTL: 30 * time.Second, MaxBufferedRecords: 200000, Ordered: true, RecordIDs: true},
		},
		{
			name: "set knobs override them",
			in:   ProducerConfig{Aggregation: false, AggregationMaxSize: 1000, Linger: time.Second, RecordTTL: time.Minute, MaxBufferedRecords: 10, FailWhenFull: true, RecordIDs: true},
			want: producer.Options{AggregationEnabled: false, AggregationMaxSize: 1000, Linger: time.Second, RecordTTL: time.Minute, MaxBufferedRecords: 10, FailWhenFull: true, RecordIDs: true},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := defaults
			tc.in.Apply(&got)
			if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestStartupErrorSaysWhatToDo(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"a missing stream names the stream and the endpoint", fmt.Errorf("producer: list shards: %w", &types.ResourceNotFoundException{Message: strPtr("nope")}), `The Kinesis stream "s" was not found in us-east-1 at http://localhost:4566: create it`},
		{"rejected credentials point at the credential variables", &smithy.GenericAPIError{Code: "UnrecognizedClientException"}, "AWS refused the credentials (UnrecognizedClientException): check AWS_ACCESS_KEY_ID"},
		{"an unreachable endpoint points at AWS_ENDPOINT_URL", fmt.Errorf("list shards: %w", &net.OpError{Op: "dial", Err: errors.New("connection refused")}), "Cannot reach http://localhost:4566: check AWS_ENDPOINT_URL"},
		{"anything else is passed on in one sentence", errors.New("boom"), `Cannot start the producer for stream "s": boom.`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := StartupError(tc.err, "s", "us-east-1", "http://localhost:4566")
			var ce *ConfigError
			if !errors.As(err, &ce) || !strings.HasPrefix(ce.Sentence, tc.want) {
				t.Errorf("got %v\nwant prefix %s", err, tc.want)
			}
			if strings.Count(err.Error(), "\n") > 0 {
				t.Errorf("more than one line: %q", err)
			}
		})
	}
}

func strPtr(s string) *string { return &s }

func TestStatusFields(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1000, 0)
	prev := Snapshot{Time: t0, Trades: Counters{Received: 100, Delivered: 50}}
	cur := Snapshot{Time: t0.Add(10 * time.Second), Trades: Counters{Received: 1100, Delivered: 850, Failed: 2, Refused: 1},
		Producer: producer.Stats{KinesisRecordsSucceeded: 20, UserRecordsSucceeded: 850, PutRecordsCalls: 7, BufferedRecords: 248, Retries: 3,
			// 90 results in (1ms, 2ms], 10 in (64ms, 128ms].
			PutLatency: producer.Histogram{Bounds: []time.Duration{1e6, 2e6, 4e6, 8e6, 16e6, 32e6, 64e6, 128e6},
				Counts: []uint64{0, 90, 0, 0, 0, 0, 0, 10, 0}, Count: 100}}}
	f := StatusFields(prev, cur)
	want := map[string]any{"trades_in_per_s": 100.0, "acked_per_s": 80.0, "kinesis_records": uint64(20), "put_records_calls": uint64(7),
		"agg_ratio": 42.5, "buffered": int64(248), "failed": uint64(2), "refused": uint64(1), "retries": uint64(3),
		"latency_p50": "1.556ms", "latency_p99": "122ms"}
	for k, v := range want {
		if f[k] != v {
			t.Errorf("%s = %v (%T), want %v (%T)", k, f[k], f[k], v, v)
		}
	}
	if len(f) != len(want) {
		t.Errorf("fields %v, want exactly %v", f, want)
	}
}

func TestSummaryFieldsCarryTheAccounting(t *testing.T) {
	t.Parallel()
	s := Summary{Counters: Counters{Received: 10, Accepted: 9, Refused: 1, Delivered: 8, Failed: 1, LatencySeconds: 0.080}, ShutdownErr: errors.New("shutdown: context deadline exceeded")}
	f := SummaryFields(s)
	for k, v := range map[string]any{"received": uint64(10), "accepted": uint64(9), "refused": uint64(1), "delivered": uint64(8), "failed": uint64(1), "unresolved": uint64(0), "mean_latency": "10ms", "shutdown_error": "shutdown: context deadline exceeded"} {
		if f[k] != v {
			t.Errorf("%s = %v, want %v", k, f[k], v)
		}
	}
}

func TestLoadAWSConfigTakesTheRegionFromTheChainUnlessGiven(t *testing.T) {
	// t.Setenv: not parallel.
	for _, k := range []string{"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "config")
	if err := os.WriteFile(cfgFile, []byte("[profile trading]\nregion = eu-central-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_CONFIG_FILE", cfgFile)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "none"))
	tests := []struct {
		name, profile, flag, want string
	}{
		{name: "a profile's region applies", profile: "trading", want: "eu-central-1"},
		{name: "a given region wins over the profile's", profile: "trading", flag: "ap-south-1", want: "ap-south-1"},
		{name: "without any region the default applies", want: DefaultRegion},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("AWS_PROFILE", tc.profile)
			cfg, err := LoadAWSConfig(context.Background(), tc.flag)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Region != tc.want {
				t.Errorf("region %q, want %q", cfg.Region, tc.want)
			}
		})
	}
}
