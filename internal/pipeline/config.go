// Package pipeline holds the logic of the trade pipeline commands: the
// configuration of the trade producer (flags, environment, .env file), the
// encoding of a Finnhub trade into the JSON record written to Kinesis, the
// run loop that forwards trades to the producer and accounts for every one of
// them, the status line, and the read-back verification used by cmd/verify
// and the end-to-end tests.
package pipeline

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"strings"
	"time"

	"github.com/joho/godotenv"
)

// Environment variable names read by the trade producer. They are the names
// the original Python script used, plus FINNHUB_URL.
const (
	EnvAPIKey     = "FINNHUB_API_KEY"
	EnvStream     = "KINESIS_STREAM_NAME"
	EnvRegion     = "AWS_REGION"
	EnvSymbols    = "STOCK_SYMBOLS"
	EnvFinnhubURL = "FINNHUB_URL"
)

// Defaults of the trade producer's configuration.
const (
	DefaultStream     = "datalake-stream"
	DefaultRegion     = "us-east-1"
	DefaultSymbols    = "AAPL,AMZN,MSFT,GOOGL,TSLA,NVDA,META"
	DefaultFinnhubURL = "wss://ws.finnhub.io"
	DefaultEnvFile    = ".env"
)

// RealFinnhubHost is the host of the real Finnhub websocket; an API key is
// required when FINNHUB_URL points at it.
const RealFinnhubHost = "ws.finnhub.io"

// ProducerConfig holds the producer knobs exposed as flags. A zero value
// means "the producer's default".
type ProducerConfig struct {
	Aggregation         bool
	AggregationMaxSize  int
	AggregationMaxCount int
	CollectionMaxCount  int
	CollectionMaxSize   int
	Linger              time.Duration
	RecordTTL           time.Duration
	MaxConnections      int
	RequestTimeout      time.Duration
	RateLimit           int
	MaxBufferedRecords  int
	MaxBufferedBytes    int
	FailWhenFull        bool
	Ordered             bool
}

// Config is the trade producer's configuration. Its String method never
// shows the API key.
type Config struct {
	APIKey     string
	Stream     string
	Region     string
	Symbols    []string
	FinnhubURL string
	EnvFile    string

	LogFormat       string // "text" or "json"
	LogLevel        string // a logrus level name
	StatusInterval  time.Duration
	MetricsAddr     string
	ShutdownTimeout time.Duration
	DeadTimeout     time.Duration
	MaxTrades       uint64 // stop after this many accepted trades; 0 = no limit

	Producer ProducerConfig
}

// String describes the configuration for a log line, with the API key
// replaced by whether it is set.
func (c Config) String() string {
	key := "unset"
	if c.APIKey != "" {
		key = "set"
	}
	return fmt.Sprintf("stream=%s region=%s symbols=%s finnhub_url=%s api_key=%s",
		c.Stream, c.Region, strings.Join(c.Symbols, ","), c.FinnhubURL, key)
}

// ErrHelp is returned by ParseConfig when -h or -help was given; the usage
// text has been written to the output.
var ErrHelp = flag.ErrHelp

// envFlag pairs a flag with the environment variable that sets it.
type envFlag struct{ flag, env string }

// envFlags returns the flags that have an environment variable.
func envFlags() []envFlag {
	return []envFlag{
		{"stream", EnvStream},
		{"region", EnvRegion},
		{"symbols", EnvSymbols},
		{"finnhub-url", EnvFinnhubURL},
	}
}

// ReadEnvFile reads a .env file into a map. It is the default file reader of
// ParseConfig.
func ReadEnvFile(name string) (map[string]string, error) {
	return godotenv.Read(name)
}

// ParseConfig builds the configuration from the command-line arguments
// (without the program name), the environment (lookupEnv, os.LookupEnv in
// the command) and an optional .env file read with readEnvFile (ReadEnvFile
// in the command). Precedence, highest first: flags, environment, .env file,
// defaults. A missing .env file is not an error unless -env-file names it
// explicitly. Usage text and flag errors go to out.
func ParseConfig(args []string, lookupEnv func(string) (string, bool), readEnvFile func(string) (map[string]string, error), out io.Writer) (Config, error) {
	var c Config
	flags := flag.NewFlagSet("tradeproducer", flag.ContinueOnError)
	flags.SetOutput(out)
	var symbols string
	flags.StringVar(&c.Stream, "stream", DefaultStream, "Kinesis stream name (env "+EnvStream+")")
	flags.StringVar(&c.Region, "region", DefaultRegion, "AWS region (env "+EnvRegion+")")
	flags.StringVar(&symbols, "symbols", DefaultSymbols, "comma-separated symbols to subscribe to (env "+EnvSymbols+")")
	flags.StringVar(&c.FinnhubURL, "finnhub-url", DefaultFinnhubURL, "Finnhub websocket URL, without the token (env "+EnvFinnhubURL+")")
	flags.StringVar(&c.EnvFile, "env-file", DefaultEnvFile, "optional .env file with KEY=value lines; a missing default file is ignored")
	flags.StringVar(&c.LogFormat, "log-format", "text", "log format: text or json")
	flags.StringVar(&c.LogLevel, "log-level", "info", "log level: trace, debug, info, warn, error")
	flags.DurationVar(&c.StatusInterval, "status-interval", 10*time.Second, "interval of the one-line status log; 0 disables it")
	flags.StringVar(&c.MetricsAddr, "metrics-addr", "", "if set, serve Prometheus /metrics and /healthz on this address, e.g. :9090")
	flags.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "on SIGINT/SIGTERM, how long to wait for buffered trades to be delivered")
	flags.DurationVar(&c.DeadTimeout, "dead-timeout", 0, "treat the websocket as dead after this long without any message; 0 = the client's default")
	flags.Uint64Var(&c.MaxTrades, "max-trades", 0, "stop (as on SIGTERM) after this many trades were accepted; 0 = run until signalled")

	p := &c.Producer
	flags.BoolVar(&p.Aggregation, "aggregation", true, "pack several trades into one Kinesis record (KPL aggregation)")
	flags.IntVar(&p.AggregationMaxSize, "aggregation-max-size", 0, "maximum bytes of one aggregated record; 0 = producer default (51200)")
	flags.IntVar(&p.AggregationMaxCount, "aggregation-max-count", 0, "maximum trades in one aggregated record; 0 = producer default")
	flags.IntVar(&p.CollectionMaxCount, "collection-max-count", 0, "maximum Kinesis records per PutRecords call; 0 = producer default (500)")
	flags.IntVar(&p.CollectionMaxSize, "collection-max-size", 0, "maximum bytes per PutRecords call; 0 = producer default (5 MiB)")
	flags.DurationVar(&p.Linger, "linger", 0, "how long a trade may wait in the buffer for others to join it; 0 = producer default (100ms)")
	flags.DurationVar(&p.RecordTTL, "record-ttl", 0, "give up on a trade not delivered after this long, reporting it failed; 0 = producer default (30s)")
	flags.IntVar(&p.MaxConnections, "max-connections", 0, "maximum concurrent PutRecords calls; 0 = producer default (24)")
	flags.DurationVar(&p.RequestTimeout, "request-timeout", 0, "timeout of one PutRecords call; 0 = producer default (6s)")
	flags.IntVar(&p.RateLimit, "rate-limit", 0, "per-shard rate limit in percent of the shard limits; 0 = producer default (150)")
	flags.IntVar(&p.MaxBufferedRecords, "max-buffered-records", 0, "bound on buffered trades; 0 = producer default")
	flags.IntVar(&p.MaxBufferedBytes, "max-buffered-bytes", 0, "bound on buffered bytes; 0 = producer default")
	flags.BoolVar(&p.FailWhenFull, "fail-when-full", false, "when the buffer is full, refuse (and count) trades instead of pausing the websocket reader")
	flags.BoolVar(&p.Ordered, "ordered", true, "keep each symbol's trades in order in the stream (one PutRecords in flight per shard)")
	flags.Usage = func() { usage(flags) }

	if err := flags.Parse(args); err != nil {
		return Config{}, err
	}
	if flags.NArg() > 0 {
		fmt.Fprintf(out, "unexpected arguments: %q\n", flags.Args())
		return Config{}, fmt.Errorf("unexpected arguments %q", flags.Args())
	}
	set := map[string]bool{}
	flags.Visit(func(f *flag.Flag) { set[f.Name] = true })

	dotenv, err := readEnvFile(c.EnvFile)
	if err != nil {
		if !set["env-file"] && errors.Is(err, fs.ErrNotExist) {
			dotenv = nil
		} else {
			return Config{}, fmt.Errorf("read env file %s: %w", c.EnvFile, err)
		}
	}
	lookup := func(name string) (string, bool) {
		if v, ok := lookupEnv(name); ok && v != "" {
			return v, true
		}
		if v, ok := dotenv[name]; ok && v != "" {
			return v, true
		}
		return "", false
	}
	for _, ef := range envFlags() {
		if set[ef.flag] {
			continue
		}
		if v, ok := lookup(ef.env); ok {
			if err := flags.Set(ef.flag, v); err != nil {
				return Config{}, fmt.Errorf("%s: %w", ef.env, err)
			}
		}
	}
	c.APIKey, _ = lookup(EnvAPIKey)
	c.Symbols = SplitSymbols(symbols)
	if err := c.validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// SplitSymbols splits a comma-separated symbol list, trimming spaces and
// dropping empty entries and repeats.
func SplitSymbols(s string) []string {
	var out []string
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" || seen[part] {
			continue
		}
		seen[part] = true
		out = append(out, part)
	}
	return out
}

// ConfigError is a fatal misconfiguration. Its message is one sentence that
// says what to do.
type ConfigError struct{ Sentence string }

func (e *ConfigError) Error() string { return e.Sentence }

func (c Config) validate() error {
	if len(c.Symbols) == 0 {
		return &ConfigError{"No symbols to subscribe to: set STOCK_SYMBOLS or -symbols to a comma-separated list such as AAPL,MSFT."}
	}
	u, err := url.Parse(c.FinnhubURL)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return &ConfigError{fmt.Sprintf("FINNHUB_URL %q is not a ws:// or wss:// URL: set it to wss://ws.finnhub.io or to a simulator's address.", redactedURL(c.FinnhubURL))}
	}
	if c.APIKey == "" && u.Hostname() == RealFinnhubHost {
		return &ConfigError{"FINNHUB_API_KEY is not set: put your Finnhub API key in the environment or in a .env file (FINNHUB_API_KEY=...), or point FINNHUB_URL at a simulator."}
	}
	if c.Stream == "" {
		return &ConfigError{"The Kinesis stream name is empty: set KINESIS_STREAM_NAME or -stream."}
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return &ConfigError{fmt.Sprintf("Unknown log format %q: use -log-format text or json.", c.LogFormat)}
	}
	if c.ShutdownTimeout <= 0 {
		return &ConfigError{"The shutdown timeout must be positive: set -shutdown-timeout to, for example, 30s."}
	}
	return nil
}

// redactedURL drops the query of a URL given on the command line or in the
// environment, in case it carries a token.
func redactedURL(s string) string {
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		return s[:i] + "?REDACTED"
	}
	return s
}

func usage(flags *flag.FlagSet) {
	w := flags.Output()
	fmt.Fprint(w, `tradeproducer reads trades from the Finnhub websocket and writes them to an
Amazon Kinesis data stream through the aggregating producer, one JSON record per
trade: the trade object exactly as Finnhub sent it, plus "ingestion_timestamp"
(Unix ms), partition key = symbol.

Usage: tradeproducer [flags]

Configuration, highest precedence first: flags, environment variables, the .env
file (-env-file), built-in defaults.

Environment:
  FINNHUB_API_KEY      Finnhub API key (required for wss://ws.finnhub.io; it is
                       read only from the environment or the .env file and never logged)
  KINESIS_STREAM_NAME  stream name (default `+DefaultStream+`)
  AWS_REGION           region (default `+DefaultRegion+`)
  STOCK_SYMBOLS        comma-separated symbols (default `+DefaultSymbols+`)
  FINNHUB_URL          websocket URL (default `+DefaultFinnhubURL+`)
  AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_KINESIS, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
  AWS_PROFILE, ...     standard AWS SDK settings (config.LoadDefaultConfig); point
                       AWS_ENDPOINT_URL at LocalStack (http://localhost:4566) or kinesis-mock.
                       AWS_* variables in the .env file are honoured too.

On SIGINT or SIGTERM it stops reading, waits up to -shutdown-timeout for every
accepted trade to be delivered (what is not delivered by then is reported failed),
logs a final summary line (received, accepted, refused, delivered, failed) and exits
0; 1 if the feed failed for good. Misconfiguration exits 2 with one sentence on stderr.

Flags:
`)
	flags.PrintDefaults()
}
