package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	"github.com/sirupsen/logrus"

	"github.com/kplgo/kpl/finnhub"
	"github.com/kplgo/kpl/internal/cli"
	"github.com/kplgo/kpl/producer"
)

// NewLogger returns the commands' logger (cli.NewLogger) writing to out in
// the given format ("text" or "json") at the given level. Every line passes
// through a hook that redacts Finnhub tokens in URLs and the literal secret,
// if not empty.
func NewLogger(format, level string, out io.Writer, secret string) (*logrus.Logger, error) {
	l, err := cli.NewLogger(cli.LogFlags{Format: format, Level: level}, out)
	if err != nil {
		return nil, &ConfigError{fmt.Sprintf("%s.", strings.ToUpper(err.Error()[:1])+err.Error()[1:])}
	}
	l.AddHook(redactHook{secret: secret})
	return l, nil
}

// redactHook rewrites every message and string field of a log entry with
// finnhub.RedactURL and replaces the literal secret: a last line of
// defence, the code already keeps the key out of its log lines.
type redactHook struct{ secret string }

func (redactHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h redactHook) Fire(e *logrus.Entry) error {
	e.Message = h.redact(e.Message)
	for k, v := range e.Data {
		switch v := v.(type) {
		case string:
			e.Data[k] = h.redact(v)
		case error:
			e.Data[k] = h.redact(v.Error())
		}
	}
	return nil
}

func (h redactHook) redact(s string) string {
	s = finnhub.RedactURL(s)
	if h.secret != "" {
		s = strings.ReplaceAll(s, h.secret, finnhub.Redacted)
	}
	return s
}

// Apply sets the producer options given on the command line, or, for a
// ProducerConfig built in code, the non-zero ones; the others keep the
// producer's defaults. Aggregation, Ordered, FailWhenFull and RecordIDs are
// always set.
func (c ProducerConfig) Apply(o *producer.Options) {
	o.AggregationEnabled = c.Aggregation
	o.Ordered = c.Ordered
	o.FailWhenFull = c.FailWhenFull
	o.RecordIDs = c.RecordIDs
	given := func(name string, nonZero bool) bool {
		if c.set != nil {
			return c.set[name]
		}
		return nonZero
	}
	setInt := func(dst *int, name string, v int) {
		if given(name, v > 0) {
			*dst = v
		}
	}
	setDur := func(dst *time.Duration, name string, v time.Duration) {
		if given(name, v > 0) {
			*dst = v
		}
	}
	setInt(&o.AggregationMaxSize, "aggregation-max-size", c.AggregationMaxSize)
	setInt(&o.AggregationMaxCount, "aggregation-max-count", c.AggregationMaxCount)
	setInt(&o.CollectionMaxCount, "collection-max-count", c.CollectionMaxCount)
	setInt(&o.CollectionMaxSize, "collection-max-size", c.CollectionMaxSize)
	setDur(&o.Linger, "linger", c.Linger)
	setDur(&o.RecordTTL, "record-ttl", c.RecordTTL)
	setInt(&o.MaxConnections, "max-connections", c.MaxConnections)
	setDur(&o.RequestTimeout, "request-timeout", c.RequestTimeout)
	setInt(&o.RateLimit, "rate-limit", c.RateLimit)
	setInt(&o.MaxBufferedRecords, "max-buffered-records", c.MaxBufferedRecords)
	setInt(&o.MaxBufferedBytes, "max-buffered-bytes", c.MaxBufferedBytes)
}

// LoadAWSConfig loads the AWS configuration from the SDK's default chain
// (environment, shared config and credentials files with AWS_PROFILE, IMDS).
// A non-empty region overrides the chain's; when neither names one,
// DefaultRegion applies.
func LoadAWSConfig(ctx context.Context, region string, optFns ...func(*config.LoadOptions) error) (aws.Config, error) {
	if region != "" {
		optFns = append(optFns, config.WithRegion(region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, optFns...)
	if err != nil {
		return aws.Config{}, &ConfigError{fmt.Sprintf("The AWS configuration could not be loaded (%s): check AWS_PROFILE, AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE.", finnhub.RedactURL(err.Error()))}
	}
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	return cfg, nil
}

// CheckCredentials retrieves the AWS credentials once, so that missing
// credentials stop the program at start with a clear sentence rather than at
// the first PutRecords.
func CheckCredentials(ctx context.Context, cfg aws.Config) error {
	if cfg.Credentials == nil {
		return &ConfigError{noCredentials}
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		return &ConfigError{noCredentials}
	}
	return nil
}

const noCredentials = "No AWS credentials were found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (any values for LocalStack or kinesis-mock) or AWS_PROFILE, in the environment or the .env file."

// StartupError turns an error of producer.New into a ConfigError whose one
// sentence says what to do.
func StartupError(err error, stream, region, endpoint string) error {
	var nf *types.ResourceNotFoundException
	if errors.As(err, &nf) {
		where := region
		if endpoint != "" {
			where += " at " + endpoint
		}
		return &ConfigError{fmt.Sprintf("The Kinesis stream %q was not found in %s: create it, or set KINESIS_STREAM_NAME (and AWS_REGION or AWS_ENDPOINT_URL) to an existing stream.", stream, where)}
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException", "AccessDeniedException", "InvalidClientTokenId", "SignatureDoesNotMatch":
			return &ConfigError{fmt.Sprintf("AWS refused the credentials (%s): check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or AWS_PROFILE and the permissions on stream %q.", api.ErrorCode(), stream)}
		}
	}
	var op *net.OpError
	if errors.As(err, &op) || errors.Is(err, context.DeadlineExceeded) {
		ep := endpoint
		if ep == "" {
			ep = "the Kinesis endpoint of " + region
		}
		return &ConfigError{fmt.Sprintf("Cannot reach %s: check AWS_ENDPOINT_URL and that the service is running.", ep)}
	}
	return &ConfigError{fmt.Sprintf("Cannot start the producer for stream %q: %s.", stream, finnhub.RedactURL(err.Error()))}
}

// FeedStartupError turns an error of the feed that ends the trade producer
// at start (see finnhub.ErrTokenRefused, ErrHostNotFound, ErrNoConnection)
// into a ConfigError whose one sentence says what to do; other errors are
// returned as they are.
func FeedStartupError(err error, startupTimeout time.Duration) error {
	switch {
	case errors.Is(err, finnhub.ErrTokenRefused):
		return &ConfigError{"Finnhub refused the API token: check FINNHUB_API_KEY in the environment or the .env file."}
	case errors.Is(err, finnhub.ErrHostNotFound):
		return &ConfigError{"The Finnhub host name does not resolve: check FINNHUB_URL and this machine's DNS."}
	case errors.Is(err, finnhub.ErrNoConnection):
		return &ConfigError{fmt.Sprintf("No connection to the Finnhub feed within %v of start: check FINNHUB_URL and the network, or raise -startup-timeout.", startupTimeout)}
	}
	return err
}
