// Package pipeline holds the logic of the trade pipeline commands: the
// configuration of the trade producer (flags, environment, .env file), the
// encoding of a Finnhub trade into the JSON record written to Kinesis, the
// run loop that forwards trades to the producer and accounts for every one of
// them, the status line, and the read-back verification used by cmd/verify
// and the end-to-end tests.
package pipeline

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/url"
	"strings"
	"time"

	"github.com/kplgo/kpl/finnhub"
	"github.com/kplgo/kpl/internal/cli"
	"github.com/kplgo/kpl/producer"
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
	// DefaultStartupTimeout is how long the trade producer waits for a
	// first connection to the feed before it gives up with exit status 2.
	DefaultStartupTimeout = 30 * time.Second
)

// RealFinnhubHost is the host of the real Finnhub websocket; an API key is
// required when FINNHUB_URL points at it.
const RealFinnhubHost = "ws.finnhub.io"

// ProducerConfig holds the producer knobs exposed as flags. Apply sets only
// the knobs given on the command line (or, for a ProducerConfig built in
// code, the non-zero ones); the others keep the producer's defaults.
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
	// RecordIDs gives every trade a record id (producer.Options.RecordIDs)
	// so that a consumer can drop the duplicates of ambiguous failures.
	RecordIDs bool

	set map[string]bool // flags given; nil for a ProducerConfig built in code
}

// SpoolRecordTTL is the producer's RecordTTL when -spool-dir is set and
// -record-ttl is not.
const SpoolRecordTTL = 24 * time.Hour

// Config is the trade producer's configuration. Its String method never
// shows the API key.
type Config struct {
	APIKey string
	Stream string
	// Region is the region given by -region, AWS_REGION or the .env file;
	// "" leaves it to the AWS configuration (a profile's region), with
	// DefaultRegion as the last resort.
	Region     string
	Symbols    []string
	FinnhubURL string
	// EnvFile is the .env file read (Path "" if none) and its skipped lines.
	EnvFile DotEnv

	LogFormat       string // "text" or "json"
	LogLevel        string // a logrus level name
	StatusInterval  time.Duration
	MetricsAddr     string
	ShutdownTimeout time.Duration
	StartupTimeout  time.Duration
	DeadTimeout     time.Duration
	MaxTrades       uint64 // stop after this many accepted trades; 0 = no limit

	// SpoolDir is the durable spool's directory; "" (the default) runs
	// without a spool.
	SpoolDir string
	// SpoolMaxBytes is the spool's disk limit.
	SpoolMaxBytes int64
	// SpoolWhenFull is what happens to trades at the limit: "refuse" (the
	// default: refused and counted, the feed stays connected) or "block"
	// (the feed is paused until there is room).
	SpoolWhenFull string

	Producer ProducerConfig
}

// Spool full policies of -spool-when-full.
const (
	SpoolRefuse = "refuse"
	SpoolBlock  = "block"
)

// DefaultSpoolMaxBytes is the default of -spool-max-bytes: 1 GiB, about an
// hour of trades at 2,000 trades/s.
const DefaultSpoolMaxBytes = 1 << 30

// String describes the configuration for a log line, with the API key
// replaced by whether it is set.
func (c Config) String() string {
	key := "unset"
	if c.APIKey != "" {
		key = "set"
	}
	region := c.Region
	if region == "" {
		region = "(AWS configuration)"
	}
	envFile := c.EnvFile.Path
	if envFile == "" {
		envFile = "none"
	}
	return fmt.Sprintf("stream=%s region=%s symbols=%s finnhub_url=%s api_key=%s env_file=%s",
		c.Stream, region, strings.Join(c.Symbols, ","), redactedURL(c.FinnhubURL), key, envFile)
}

// ErrHelp is returned by ParseConfig when -h or -help was given; the usage
// text has been written to the output.
var ErrHelp = cli.ErrHelp

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

// Environment is what ParseConfig reads besides the command line.
type Environment struct {
	// LookupEnv reads a process environment variable: os.LookupEnv in the
	// command.
	LookupEnv func(string) (string, bool)
	// ReadEnvFile reads a .env file: ReadEnvFile in the command. A missing
	// file must give an error wrapping fs.ErrNotExist.
	ReadEnvFile func(string) (DotEnv, error)
	// ExecutableDir is the directory of the running executable, where a
	// .env file is looked for after the working directory; "" looks only in
	// the working directory.
	ExecutableDir string
}

// ParseConfig builds the configuration from the command-line arguments
// (without the program name), the environment and a .env file. Precedence,
// highest first: flags, environment, .env file, defaults. Without -env-file
// the first .env of EnvFileCandidates is read, if any; -env-file names a
// file that must exist. Config.EnvFile tells which file was read and its
// skipped lines. The usage goes to out on -h; errors are returned (one line,
// never showing a value of the file or the environment), nothing else is
// written.
func ParseConfig(args []string, env Environment, out io.Writer) (Config, error) {
	var c Config
	flags := cli.NewFlagSet("tradeproducer", description)
	var symbols, envFile string
	flags.StringVar(&c.Stream, "stream", DefaultStream, "Kinesis stream name (env "+EnvStream+")")
	flags.StringVar(&c.Region, "region", "", "AWS region (env "+EnvRegion+"); default: the AWS configuration's (profile), else "+DefaultRegion)
	flags.StringVar(&symbols, "symbols", DefaultSymbols, "comma-separated symbols to subscribe to (env "+EnvSymbols+")")
	flags.StringVar(&c.FinnhubURL, "finnhub-url", DefaultFinnhubURL, "Finnhub websocket URL, without the token (env "+EnvFinnhubURL+")")
	flags.StringVar(&envFile, "env-file", "", "the .env file to read (it must exist); default: .env in the working directory, else beside the executable, if there is one")
	lf := cli.LogFlags{}
	flags.AddLogFlags(&lf)
	flags.DurationVar(&c.StatusInterval, "status-interval", 10*time.Second, 0, 24*time.Hour, "interval of the one-line status log; 0 disables it")
	flags.StringVar(&c.MetricsAddr, "metrics-addr", "", "if set, serve Prometheus /metrics, /healthz and /readyz on this address, e.g. :9090")
	flags.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 30*time.Second, time.Millisecond, time.Hour, "on SIGINT/SIGTERM, how long to wait for buffered trades to be delivered")
	flags.DurationVar(&c.StartupTimeout, "startup-timeout", DefaultStartupTimeout, time.Second, time.Hour, "exit 2 unless the feed connects within this long after start (once it has, outages are retried without end)")
	flags.DurationVar(&c.DeadTimeout, "dead-timeout", finnhub.DefaultDeadTimeout, time.Second, time.Hour, "treat the websocket as dead after this long without any frame")
	var maxTrades int
	flags.IntVar(&maxTrades, "max-trades", 0, 0, math.MaxInt, "stop (as on SIGTERM) after this many trades were accepted; 0 = run until signalled")

	flags.StringVar(&c.SpoolDir, "spool-dir", "", "keep accepted trades in a durable spool in this directory until Kinesis acknowledges them (they survive a crash and outages longer than -record-ttl); empty: no spool")
	var spoolMax int
	flags.IntVar(&spoolMax, "spool-max-bytes", DefaultSpoolMaxBytes, 64<<10, math.MaxInt, "disk limit of the spool")
	flags.ChoiceVar(&c.SpoolWhenFull, "spool-when-full", SpoolRefuse, []string{SpoolRefuse, SpoolBlock}, "at the spool's limit, refuse (and count) trades, or block the feed until there is room (Finnhub may then drop the connection, losing trades uncounted)")

	p := &c.Producer
	flags.BoolVar(&p.Aggregation, "aggregation", true, "pack several trades into one Kinesis record (KPL aggregation)")
	flags.IntVar(&p.AggregationMaxSize, "aggregation-max-size", 51200, 1, 1<<20, "maximum bytes of one aggregated record")
	flags.IntVar(&p.AggregationMaxCount, "aggregation-max-count", math.MaxInt32, 1, math.MaxInt32, "maximum trades in one aggregated record (the producer's default, 4294967295 on 64-bit systems, is no limit in practice)")
	flags.IntVar(&p.CollectionMaxCount, "collection-max-count", producer.MaxPutRecordsCount, 1, producer.MaxPutRecordsCount, "maximum Kinesis records per PutRecords call")
	flags.IntVar(&p.CollectionMaxSize, "collection-max-size", producer.MaxPutRecordsSize, 1, producer.MaxPutRecordsSize, "maximum bytes per PutRecords call")
	flags.DurationVar(&p.Linger, "linger", 100*time.Millisecond, 0, time.Minute, "how long a trade may wait in the buffer for others to join it; 0 sends at once")
	flags.DurationVar(&p.RecordTTL, "record-ttl", 30*time.Second, time.Millisecond, 24*time.Hour, "give up on a trade not delivered after this long, reporting it failed (24h with -spool-dir unless given)")
	flags.IntVar(&p.MaxConnections, "max-connections", 24, 1, 1024, "maximum concurrent PutRecords calls")
	flags.DurationVar(&p.RequestTimeout, "request-timeout", 6*time.Second, time.Millisecond, 10*time.Minute, "timeout of one PutRecords call")
	flags.IntVar(&p.RateLimit, "rate-limit", 150, 1, 10000, "per-shard rate limit in percent of the shard limits")
	flags.IntVar(&p.MaxBufferedRecords, "max-buffered-records", 200_000, 1, math.MaxInt32, "bound on buffered trades")
	flags.IntVar(&p.MaxBufferedBytes, "max-buffered-bytes", 64<<20, 1, math.MaxInt32, "bound on buffered bytes")
	flags.BoolVar(&p.FailWhenFull, "fail-when-full", false, "when the buffer is full, refuse (and count) trades instead of pausing the websocket reader")
	flags.BoolVar(&p.RecordIDs, "record-ids", true, "give every trade an id (producer id, sequence number) in its KPL record, so that a consumer can drop duplicates (the spool's ids are kept across restarts)")
	flags.BoolVar(&p.Ordered, "ordered", true, "keep each symbol's trades in order in the stream (one PutRecords in flight per shard)")

	if err := flags.Parse(args, out); err != nil {
		if errors.Is(err, ErrHelp) {
			return Config{}, err
		}
		// The hint the other commands give with cli.FlagSet.Fail.
		return Config{}, fmt.Errorf("%w (see tradeproducer -h)", err)
	}
	c.LogFormat, c.LogLevel, c.MaxTrades = lf.Format, lf.Level, uint64(maxTrades)
	c.SpoolMaxBytes = int64(spoolMax)
	set := flags.Given()
	// Only the producer knobs given on the command line are applied; the
	// others keep the producer's own defaults (shown in the usage).
	p.set = set
	if c.SpoolDir != "" && !set["record-ttl"] {
		// With a spool, a trade the producer gives up on only goes back to
		// disk to be sent again, after trades put later: expiring costs
		// order and gains nothing, since the producer's buffer bounds what
		// waits in memory and the rest waits on disk. So the trades wait
		// in the producer, in order, unless -record-ttl says otherwise.
		p.RecordTTL = SpoolRecordTTL
		set["record-ttl"] = true
	}
	if p.Linger >= p.RecordTTL {
		return Config{}, fmt.Errorf("-linger %v must be shorter than -record-ttl %v: a trade would wait past its time to live (see tradeproducer -h)", p.Linger, p.RecordTTL)
	}

	var dotenv DotEnv
	if set["env-file"] {
		d, err := env.ReadEnvFile(envFile)
		if err != nil {
			return Config{}, &ConfigError{fmt.Sprintf("Cannot read the -env-file: %v.", err)}
		}
		dotenv = d
	} else {
		for _, name := range EnvFileCandidates(env.ExecutableDir) {
			d, err := env.ReadEnvFile(name)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return Config{}, &ConfigError{fmt.Sprintf("Cannot read the .env file: %v; fix its permissions or name another with -env-file.", err)}
			}
			dotenv = d
			break
		}
	}
	c.EnvFile = dotenv
	lookup := func(name string) (string, bool) {
		if v, ok := env.LookupEnv(name); ok && v != "" {
			return v, true
		}
		if v, ok := dotenv.Values[name]; ok && v != "" {
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
				// The value is not shown: it may be a secret put in the
				// wrong variable.
				return Config{}, &ConfigError{fmt.Sprintf("%s has an invalid value: fix it.", ef.env)}
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

// LowerCaseSymbols returns the symbols that have lower-case letters.
// Finnhub's symbols are upper case (AAPL, BINANCE:BTCUSDT, OANDA:EUR_USD);
// a lower-case one is subscribed as given and most likely never gets a
// trade.
func LowerCaseSymbols(symbols []string) []string {
	var out []string
	for _, s := range symbols {
		if s != strings.ToUpper(s) {
			out = append(out, s)
		}
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
		// The value is not shown: it may be a secret put in the wrong
		// variable.
		return &ConfigError{"FINNHUB_URL (or -finnhub-url) is not a ws:// or wss:// URL: set it to wss://ws.finnhub.io or to a simulator's address."}
	}
	if c.APIKey == "" && u.Hostname() == RealFinnhubHost {
		return &ConfigError{"FINNHUB_API_KEY is not set: put your Finnhub API key in the environment or in a .env file (FINNHUB_API_KEY=...), or point FINNHUB_URL at a simulator."}
	}
	if c.Stream == "" {
		return &ConfigError{"The Kinesis stream name is empty: set KINESIS_STREAM_NAME or -stream."}
	}
	return nil
}

// redactedURL drops the query of a URL given on the command line or in the
// environment, in case it carries a token, and redacts its user information
// (finnhub.RedactURL).
func redactedURL(s string) string {
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		return finnhub.RedactURL(s[:i]) + "?REDACTED"
	}
	return finnhub.RedactURL(s)
}

const description = `tradeproducer reads trades from the Finnhub websocket and writes them to an
Amazon Kinesis data stream through the aggregating producer, one JSON record per
trade: the trade object exactly as Finnhub sent it, plus "ingestion_timestamp"
(Unix ms), partition key = symbol.

Usage: tradeproducer [flags]

Configuration, highest precedence first: flags, environment variables, the .env
file, built-in defaults. The .env file is the one -env-file names, else .env in
the working directory, else .env beside the executable. Its syntax is
python-dotenv's; a line that does not parse is skipped with a warning that
names only its number.

Environment:
  FINNHUB_API_KEY      Finnhub API key (required for wss://ws.finnhub.io; it is
                       read only from the environment or the .env file and never logged)
  KINESIS_STREAM_NAME  stream name (default ` + DefaultStream + `)
  AWS_REGION           region (default: the AWS configuration's, such as the
                       AWS_PROFILE's region, else ` + DefaultRegion + `)
  STOCK_SYMBOLS        comma-separated symbols (default ` + DefaultSymbols + `)
  FINNHUB_URL          websocket URL (default ` + DefaultFinnhubURL + `)
  AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_KINESIS, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
  AWS_PROFILE, ...     standard AWS SDK settings (config.LoadDefaultConfig); point
                       AWS_ENDPOINT_URL at LocalStack (http://localhost:4566) or kinesis-mock.
                       Variables of the .env file reach the SDK too, unless already
                       set in the environment.

On SIGINT or SIGTERM it stops reading, waits up to -shutdown-timeout for every
accepted trade to be delivered (what is not delivered by then is reported failed),
logs a final summary line (received, accepted, refused, delivered, failed) and exits
0; 1 if the feed failed for good. Misconfiguration exits 2 with one sentence on
stderr: among others a refused Finnhub token, a host that does not resolve, or no
connection to the feed within -startup-timeout. Once the feed has worked, outages
are retried without end.

With -spool-dir, accepted trades are kept on disk until Kinesis acknowledges
them: they survive a kill of the process and outages longer than -record-ttl;
trades still in the spool at exit are sent by the next start with the same
directory, and the summary counts them as spooled instead of failed.`
