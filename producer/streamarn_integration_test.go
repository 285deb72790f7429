package producer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

// bodyRecorder is an http.RoundTripper that keeps, per Kinesis operation
// (the X-Amz-Target header's suffix), the top-level JSON fields of every
// request body it forwards.
type bodyRecorder struct {
	next http.RoundTripper

	mu    sync.Mutex // guards calls
	calls map[string][]map[string]json.RawMessage
}

func (r *bodyRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		body, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(body, &fields); err != nil {
			return nil, fmt.Errorf("request body is not a JSON object: %w", err)
		}
		_, op, _ := strings.Cut(req.Header.Get("X-Amz-Target"), ".")
		r.mu.Lock()
		r.calls[op] = append(r.calls[op], fields)
		r.mu.Unlock()
	}
	return r.next.RoundTrip(req)
}

// snapshot returns a copy of the recorded calls.
func (r *bodyRecorder) snapshot() map[string][]map[string]json.RawMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string][]map[string]json.RawMessage, len(r.calls))
	for op, calls := range r.calls {
		out[op] = append([]map[string]json.RawMessage(nil), calls...)
	}
	return out
}

func TestKinesisMockStreamARN(t *testing.T) {
	admin, stream := server.NewStream(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sum, err := admin.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(sum.StreamDescriptionSummary.StreamARN)
	if want := "arn:aws:kinesis:us-east-1:000000000000:stream/" + stream; arn != want {
		t.Fatalf("kinesis-mock reports ARN %q, want %q", arn, want)
	}

	transport := http.DefaultTransport.(*http.Transport).Clone()
	defer transport.CloseIdleConnections()
	rec := &bodyRecorder{next: transport, calls: map[string][]map[string]json.RawMessage{}}
	client := server.Client(func(o *kinesis.Options) { o.HTTPClient = &http.Client{Transport: rec} })

	p, err := New(ctx, client, arn, func(o *Options) {
		o.Linger = 20 * time.Millisecond
		o.RetryBaseDelay = 10 * time.Millisecond
	})
	if err != nil {
		t.Fatalf("New with the stream's ARN: %v", err)
	}
	recs := putMixed(t, p, 0, 300, 12)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}

	calls := rec.snapshot()
	// DescribeStreamSummary reads the record size limit, ListShards the shard
	// map, PutRecords writes: each must address the stream by ARN only.
	for _, op := range []string{"DescribeStreamSummary", "ListShards", "PutRecords"} {
		if len(calls[op]) == 0 {
			t.Errorf("no %s call seen", op)
		}
	}
	for op, bodies := range calls {
		for i, fields := range bodies {
			var got string
			if err := json.Unmarshal(fields["StreamARN"], &got); err != nil || got != arn {
				t.Errorf("%s call %d: StreamARN %s, want %q", op, i+1, fields["StreamARN"], arn)
			}
			if name, ok := fields["StreamName"]; ok {
				t.Errorf("%s call %d also passes StreamName %s", op, i+1, name)
			}
		}
	}

	got, dropped := readBack(t, admin, stream)
	if dropped != 0 {
		t.Errorf("%d aggregates hold records outside their shard", dropped)
	}
	checkReadBack(t, got, recs, false)
}
