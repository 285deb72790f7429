package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/kplgo/kpl/producer"
	"io/fs"
	"reflect"
	"strings"
	"testing"
	"time"
)

func envFrom(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func fileFrom(files map[string]map[string]string) func(string) (DotEnv, error) {
	return func(name string) (DotEnv, error) {
		m, ok := files[name]
		if !ok {
			return DotEnv{}, fmt.Errorf("open %s: %w", name, fs.ErrNotExist)
		}
		return DotEnv{Path: name, Values: m}, nil
	}
}

func environment(env map[string]string, files map[string]map[string]string) Environment {
	return Environment{LookupEnv: envFrom(env), ReadEnvFile: fileFrom(files), ExecutableDir: "/opt/bin"}
}

func TestParseConfig(t *testing.T) {
	t.Parallel()
	const key = "sekrit-key-123"
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		files   map[string]map[string]string
		check   func(t *testing.T, c Config)
		wantErr string // substring; "" = no error
	}{
		{
			name: "defaults apply when only the key is set",
			env:  map[string]string{EnvAPIKey: key},
			check: func(t *testing.T, c Config) {
				want := Config{APIKey: key, Stream: DefaultStream, Region: "", FinnhubURL: DefaultFinnhubURL,
					Symbols: []string{"AAPL", "AMZN", "MSFT", "GOOGL", "TSLA", "NVDA", "META"}}
				if c.APIKey != want.APIKey || c.Stream != want.Stream || c.Region != want.Region || c.FinnhubURL != want.FinnhubURL || !reflect.DeepEqual(c.Symbols, want.Symbols) {
					t.Errorf("got %+v", c)
				}
				if !c.Producer.Aggregation || !c.Producer.Ordered || !c.Producer.RecordIDs || c.StatusInterval != 10*time.Second || c.ShutdownTimeout != 30*time.Second {
					t.Errorf("flag defaults wrong: %+v", c)
				}
			},
		},
		{
			name: "with a spool, trades do not expire in the producer unless -record-ttl says so",
			args: []string{"-spool-dir", "/tmp/spool"},
			env:  map[string]string{EnvAPIKey: key},
			check: func(t *testing.T, c Config) {
				var o producer.Options
				c.Producer.Apply(&o)
				if o.RecordTTL != SpoolRecordTTL {
					t.Errorf("RecordTTL with a spool = %v, want %v", o.RecordTTL, SpoolRecordTTL)
				}
			},
		},
		{
			name: "with a spool, -record-ttl still applies",
			args: []string{"-spool-dir", "/tmp/spool", "-record-ttl", "3s"},
			env:  map[string]string{EnvAPIKey: key},
			check: func(t *testing.T, c Config) {
				var o producer.Options
				c.Producer.Apply(&o)
				if o.RecordTTL != 3*time.Second {
					t.Errorf("RecordTTL = %v, want the flag's 3s", o.RecordTTL)
				}
			},
		},
		{
			name: "the spool is off and record ids are on by default",
			env:  map[string]string{EnvAPIKey: key},
			check: func(t *testing.T, c Config) {
				if c.SpoolDir != "" || c.SpoolMaxBytes != DefaultSpoolMaxBytes || c.SpoolWhenFull != SpoolRefuse || !c.Producer.RecordIDs {
					t.Errorf("spool %q %d %q, record ids %v", c.SpoolDir, c.SpoolMaxBytes, c.SpoolWhenFull, c.Producer.RecordIDs)
				}
			},
		},
		{
			name: "the spool flags configure the spool",
			args: []string{"-spool-dir", "/var/spool/tp", "-spool-max-bytes", "1048576", "-spool-when-full", "block", "-record-ids=false"},
			env:  map[string]string{EnvAPIKey: key},
			check: func(t *testing.T, c Config) {
				if c.SpoolDir != "/var/spool/tp" || c.SpoolMaxBytes != 1<<20 || c.SpoolWhenFull != SpoolBlock || c.Producer.RecordIDs {
					t.Errorf("spool %q %d %q, record ids %v", c.SpoolDir, c.SpoolMaxBytes, c.SpoolWhenFull, c.Producer.RecordIDs)
				}
			},
		},
		{
			name:    "an unknown full policy is refused",
			args:    []string{"-spool-when-full", "drop"},
			env:     map[string]string{EnvAPIKey: key},
			wantErr: "-spool-when-full",
		},
		{
			name:    "a linger as long as the TTL is refused",
			args:    []string{"-linger", "30s"},
			env:     map[string]string{EnvAPIKey: key},
			wantErr: "-linger 30s must be shorter than -record-ttl 30s",
		},
		{
			name:    "a spool limit below 64 KiB is refused",
			args:    []string{"-spool-max-bytes", "1000"},
			env:     map[string]string{EnvAPIKey: key},
			wantErr: "-spool-max-bytes",
		},
		{
			name:  "the .env file applies when the environment is silent",
			files: map[string]map[string]string{".env": {EnvAPIKey: key, EnvStream: "from-file", EnvSymbols: "IBM"}},
			check: func(t *testing.T, c Config) {
				if c.APIKey != key || c.Stream != "from-file" || !reflect.DeepEqual(c.Symbols, []string{"IBM"}) {
					t.Errorf("got %+v", c)
				}
			},
		},
		{
			name:  "the environment wins over the .env file",
			env:   map[string]string{EnvStream: "from-env", EnvAPIKey: "env-key"},
			files: map[string]map[string]string{".env": {EnvAPIKey: key, EnvStream: "from-file"}},
			check: func(t *testing.T, c Config) {
				if c.Stream != "from-env" || c.APIKey != "env-key" {
					t.Errorf("got stream %q key %q", c.Stream, c.APIKey)
				}
			},
		},
		{
			name: "flags win over the environment",
			args: []string{"-stream", "from-flag", "-region", "eu-west-1", "-symbols", "X,Y"},
			env:  map[string]string{EnvStream: "from-env", EnvRegion: "us-west-2", EnvSymbols: "Z", EnvAPIKey: key},
			check: func(t *testing.T, c Config) {
				if c.Stream != "from-flag" || c.Region != "eu-west-1" || !reflect.DeepEqual(c.Symbols, []string{"X", "Y"}) {
					t.Errorf("got %+v", c)
				}
			},
		},
		{
			name:  "an explicit -env-file is read",
			args:  []string{"-env-file", "other.env"},
			files: map[string]map[string]string{"other.env": {EnvAPIKey: key, EnvRegion: "ap-south-1"}},
			check: func(t *testing.T, c Config) {
				if c.Region != "ap-south-1" || c.APIKey != key {
					t.Errorf("got %+v", c)
				}
			},
		},
		{
			name:    "an explicit -env-file that does not exist is an error",
			args:    []string{"-env-file", "missing.env"},
			env:     map[string]string{EnvAPIKey: key},
			wantErr: "missing.env",
		},
		{
			name:    "no API key for the real Finnhub is fatal",
			wantErr: "FINNHUB_API_KEY is not set",
		},
		{
			name: "a simulator URL needs no API key",
			env:  map[string]string{EnvFinnhubURL: "ws://127.0.0.1:8080/"},
			check: func(t *testing.T, c Config) {
				if c.APIKey != "" || c.FinnhubURL != "ws://127.0.0.1:8080/" {
					t.Errorf("got %+v", c)
				}
			},
		},
		{
			name:    "an http URL is refused",
			env:     map[string]string{EnvFinnhubURL: "http://example.com/?token=abc", EnvAPIKey: key},
			wantErr: "is not a ws:// or wss:// URL",
		},
		{
			name: "symbols are trimmed and repeats dropped",
			env:  map[string]string{EnvSymbols: " AAPL, ,MSFT,AAPL ", EnvAPIKey: key},
			check: func(t *testing.T, c Config) {
				if !reflect.DeepEqual(c.Symbols, []string{"AAPL", "MSFT"}) {
					t.Errorf("symbols = %q", c.Symbols)
				}
			},
		},
		{
			name:    "an empty symbol list is fatal",
			args:    []string{"-symbols", " , "},
			env:     map[string]string{EnvAPIKey: key},
			wantErr: "No symbols",
		},
		{
			name: "producer knobs are read from flags",
			args: []string{"-linger", "250ms", "-aggregation-max-size", "100000", "-record-ttl", "1m", "-max-buffered-records", "5000", "-fail-when-full", "-ordered=false", "-aggregation=false", "-record-ids=false"},
			env:  map[string]string{EnvAPIKey: key},
			check: func(t *testing.T, c Config) {
				p := c.Producer
				if p.Linger != 250*time.Millisecond || p.AggregationMaxSize != 100000 || p.RecordTTL != time.Minute || p.MaxBufferedRecords != 5000 || !p.FailWhenFull || p.Ordered || p.Aggregation || p.RecordIDs {
					t.Errorf("got %+v", p)
				}
			},
		},
		{
			name:    "an unknown log format is fatal",
			args:    []string{"-log-format", "xml"},
			env:     map[string]string{EnvAPIKey: key},
			wantErr: "invalid value \"xml\" for flag -log-format: must be one of text, json (see tradeproducer -h)",
		},
		{
			name:    "positional arguments are refused",
			args:    []string{"extra"},
			env:     map[string]string{EnvAPIKey: key},
			wantErr: "unexpected argument",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			c, err := ParseConfig(tc.args, environment(tc.env, tc.files), &out)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), key) {
					t.Errorf("error shows the API key: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseConfig: %v", err)
			}
			tc.check(t, c)
			if strings.Contains(c.String(), key) || strings.Contains(out.String(), key) {
				t.Errorf("the API key leaks: %q / %q", c.String(), out.String())
			}
		})
	}
}

func TestParseConfigHelpDocumentsEveryVariable(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	_, err := ParseConfig([]string{"-h"}, environment(nil, nil), &out)
	if !errors.Is(err, ErrHelp) {
		t.Fatalf("err = %v, want ErrHelp", err)
	}
	for _, want := range []string{EnvAPIKey, EnvStream, EnvRegion, EnvSymbols, EnvFinnhubURL, "AWS_ENDPOINT_URL", "-linger", "-shutdown-timeout", "-metrics-addr", "-status-interval", "flags, environment variables, the .env"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("usage does not mention %q", want)
		}
	}
}

func TestLowerCaseSymbols(t *testing.T) {
	t.Parallel()
	got := LowerCaseSymbols([]string{"AAPL", "msft", "BINANCE:BTCUSDT", "Binance:ETHUSDT", "OANDA:EUR_USD"})
	if want := []string{"msft", "Binance:ETHUSDT"}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}
