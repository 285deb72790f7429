package producer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/aws/smithy-go"
)

// errClass is what the producer makes of an error.
type errClass struct {
	code, message string
	retryable     bool // try again after a backoff
	refresh       bool // the shard map may be stale
	throttle      bool // the shard's rate is too high
	// maybeStored: the error does not say that the record was not
	// stored (a timeout, a network error, a 5xx, an invalid response).
	maybeStored bool
	cause       error // the call's error, if the whole call failed
}

// Error codes the producer retries. Everything else with an HTTP status
// below 500 (validation, access, KMS configuration) fails at once.
var retryableCodes = map[string]bool{
	"ProvisionedThroughputExceededException": true,
	"InternalFailure":                        true,
	"InternalFailureException":               true,
	"InternalServerError":                    true,
	"ServiceUnavailable":                     true,
	"ServiceUnavailableException":            true,
	"KMSThrottlingException":                 true,
	"ThrottlingException":                    true,
	"Throttling":                             true,
	"LimitExceededException":                 true,
	"RequestTimeout":                         true,
	"RequestTimeoutException":                true,
	"ResourceInUseException":                 true,
	"ResourceNotFoundException":              true, // with a refresh: the stream may be re-created
	"SlowDown":                               true,
}

// classifyCode classifies a per-entry error code of a PutRecords response.
func classifyCode(code, message string) errClass {
	return errClass{
		code:      code,
		message:   message,
		retryable: retryableCodes[code],
		throttle:  code == "ProvisionedThroughputExceededException",
	}
}

// invalidResponseError is a response the producer cannot match to its
// request; retried.
type invalidResponseError struct{ msg string }

func (e *invalidResponseError) Error() string { return "producer: " + e.msg }

// classify classifies the error of a whole call.
func classify(err error) errClass {
	c := errClass{cause: err, message: err.Error()}
	var status interface{ HTTPStatusCode() int }
	hasStatus := errors.As(err, &status)
	var api smithy.APIError
	var inv *invalidResponseError
	var de *smithy.DeserializationError
	switch {
	case errors.As(err, &inv):
		c.code, c.retryable, c.maybeStored = "InvalidResponse", true, true
	case errors.As(err, &de) || hasStatus && status.HTTPStatusCode() >= 200 && status.HTTPStatusCode() < 300:
		// A response that could not be read (a body cut short, not the
		// service's JSON): the service may have processed the call.
		c.code, c.retryable, c.maybeStored = "InvalidResponse", true, true
	case isRequestError(err):
		c.code = "InvalidRequest" // refused by the SDK before sending: sending again cannot help
	case errors.As(err, &api):
		c = classifyCode(api.ErrorCode(), api.ErrorMessage())
		c.cause = err
		if !c.retryable && hasStatus && (status.HTTPStatusCode() >= 500 || status.HTTPStatusCode() == 429) {
			c.retryable = true
		}
		c.maybeStored = !hasStatus || status.HTTPStatusCode() >= 500
		c.refresh = c.code == "ResourceNotFoundException"
	case hasStatus && status.HTTPStatusCode() != 0:
		code := status.HTTPStatusCode()
		c.code = fmt.Sprintf("HTTP%d", code)
		c.retryable = code >= 500 || code == 429
		c.maybeStored = code >= 500
	case errors.Is(err, context.DeadlineExceeded):
		c.code, c.retryable, c.maybeStored = "RequestTimeout", true, true
	case errors.Is(err, context.Canceled):
		c.code, c.retryable, c.maybeStored = "Canceled", true, true
	default:
		// Connection refused or reset, EOF, DNS: the request may or may
		// not have reached the service; retrying is the only way to deliver.
		var ne net.Error
		c.code, c.retryable, c.maybeStored = "NetworkError", true, !neverSent(err)
		if errors.As(err, &ne) && ne.Timeout() {
			c.code = "RequestTimeout"
		}
	}
	return c
}

// neverSent reports a network error that shows the request never left:
// the connection was refused or could not be dialled, or the name did not
// resolve.
func neverSent(err error) bool {
	var op *net.OpError
	var dns *net.DNSError
	return errors.Is(err, syscall.ECONNREFUSED) || errors.As(err, &dns) || (errors.As(err, &op) && op.Op == "dial")
}

// isRequestError reports an error the SDK raises before sending: invalid
// parameters or a request it cannot serialize.
func isRequestError(err error) bool {
	var inv smithy.InvalidParamsError
	var ser *smithy.SerializationError
	return errors.As(err, &inv) || errors.As(err, &ser)
}
