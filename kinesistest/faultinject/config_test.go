package faultinject_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/kplgo/kpl/kinesistest/faultinject"
	"github.com/kplgo/kpl/kinesistest/limitserver"
)

func TestInvalidFaultsAreRefused(t *testing.T) {
	tr := faultinject.New(nil)
	entryCases := []struct {
		name  string
		fault faultinject.EntryFault
	}{
		{name: "a probability above one is refused", fault: faultinject.EntryFault{Probability: 1.5}},
		{name: "a negative probability is refused", fault: faultinject.EntryFault{Probability: -0.1}},
		{name: "a hash range that is not decimal is refused", fault: faultinject.EntryFault{HashRanges: []faultinject.HashRange{{Start: "0x10", End: "20"}}}},
	}
	for _, tc := range entryCases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tr.SetEntryFaults(tc.fault); err == nil {
				t.Error("SetEntryFaults accepted it")
			}
		})
	}
	requestCases := []struct {
		name  string
		fault faultinject.RequestFault
	}{
		{name: "a fault without a kind is refused", fault: faultinject.RequestFault{Count: 1}},
		{name: "a fault with neither count nor probability is refused", fault: faultinject.RequestFault{Kind: faultinject.HTTP500}},
		{name: "a negative count is refused", fault: faultinject.RequestFault{Kind: faultinject.HTTP500, Count: -1}},
		{name: "a probability above one is refused", fault: faultinject.RequestFault{Kind: faultinject.HTTP503, Probability: 2}},
	}
	for _, tc := range requestCases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tr.AddRequestFault(tc.fault); err == nil {
				t.Error("AddRequestFault accepted it")
			}
		})
	}
}

func TestHashRangeHolds(t *testing.T) {
	tests := []struct {
		name     string
		r        faultinject.HashRange
		pk, ehk  string
		expected bool
	}{
		{name: "an explicit hash key inside the range is held", r: faultinject.HashRange{Start: "0", End: "10"}, pk: "x", ehk: "5", expected: true},
		{name: "an explicit hash key below the range is not held", r: faultinject.HashRange{Start: "6", End: "10"}, pk: "x", ehk: "5"},
		{name: "the range's ends are held", r: faultinject.HashRange{Start: "5", End: "5"}, pk: "x", ehk: "5", expected: true},
		// MD5("a") = 0cc175b9c0f1b6a831c399e269772661 = 16955237001963240173058271559858726497.
		{name: "a partition key is hashed with MD5", r: faultinject.HashRange{Start: "16955237001963240173058271559858726497", End: "16955237001963240173058271559858726497"}, pk: "a", expected: true},
		{name: "a partition key hashing outside the range is not held", r: faultinject.HashRange{Start: "16955237001963240173058271559858726498", End: "340282366920938463463374607431768211455"}, pk: "a"},
		{name: "a malformed range holds nothing", r: faultinject.HashRange{Start: "", End: "10"}, pk: "x", ehk: "5"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.r.Holds(tc.pk, tc.ehk); got != tc.expected {
				t.Errorf("Holds(%q, %q) = %v", tc.pk, tc.ehk, got)
			}
		})
	}
}

func TestRemoveRequestFaultsRemovesOnlyThatName(t *testing.T) {
	srv := limitserver.New(limitserver.Options{})
	if err := srv.CreateStream("rm", 1); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	tr := faultinject.New(nil)
	client := kinesis.NewFromConfig(aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
	}, func(o *kinesis.Options) {
		o.BaseEndpoint = aws.String(ts.URL)
		o.HTTPClient = &http.Client{Transport: tr}
		o.RetryMaxAttempts = 1
	})
	list := func() error {
		_, err := client.ListShards(ctxT(t), &kinesis.ListShardsInput{StreamName: aws.String("rm")})
		return err
	}
	for _, f := range []faultinject.RequestFault{
		{Kind: faultinject.HTTP503, Probability: 1, Name: "a"},
		{Kind: faultinject.HTTP500, Probability: 1, Operations: []string{"ListShards"}, Name: "b"},
	} {
		if err := tr.AddRequestFault(f); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		remove string
		status int // 0: the call succeeds
	}{
		{status: 503},
		{remove: "a", status: 500},
		{remove: "b"},
	}
	for _, s := range steps {
		if s.remove != "" {
			tr.RemoveRequestFaults(s.remove)
		}
		err := list()
		var re *smithyhttp.ResponseError
		switch {
		case s.status == 0 && err != nil:
			t.Errorf("after removing %q: %v, want success", s.remove, err)
		case s.status != 0 && (!errors.As(err, &re) || re.HTTPStatusCode() != s.status):
			t.Errorf("after removing %q: %v, want HTTP %d", s.remove, err, s.status)
		}
	}
}

func TestEntryFailuresAreNotCountedWhenTheEngineRefusesTheCall(t *testing.T) {
	srv := limitserver.New(limitserver.Options{})
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	tr := faultinject.New(nil)
	if err := tr.SetEntryFaults(faultinject.EntryFault{PartitionKeys: []string{"k-0"}}); err != nil {
		t.Fatal(err)
	}
	client := kinesis.NewFromConfig(aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
	}, func(o *kinesis.Options) {
		o.BaseEndpoint = aws.String(ts.URL)
		o.HTTPClient = &http.Client{Transport: tr}
		o.RetryMaxAttempts = 1
	})
	// The stream does not exist: the engine refuses the call whole, so the
	// client never sees the injected entry failure.
	_, err := client.PutRecords(ctxT(t), &kinesis.PutRecordsInput{StreamName: aws.String("missing"), Records: entries("k", 2)})
	var nf *types.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Fatalf("PutRecords: %v, want ResourceNotFoundException", err)
	}
	if c := tr.Counters(); c.EntryFailures() != 0 || c.EntriesSeen != 2 {
		t.Errorf("counted %d injected entry failures and %d entries seen, want 0 and 2", c.EntryFailures(), c.EntriesSeen)
	}
}
