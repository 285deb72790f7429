package faultinject_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/kplgo/kpl/internal/ctxtime"
	"github.com/kplgo/kpl/internal/kinesisread"
	"github.com/kplgo/kpl/kinesistest/faultinject"
	"github.com/kplgo/kpl/kinesistest/kinesismock"
)

var server *kinesismock.TestServer

func TestMain(m *testing.M) {
	server = kinesismock.StartForTests()
	code := m.Run()
	server.Close()
	os.Exit(code)
}

// faultyClient is a client whose requests go through tr; attempts is the
// SDK's own retry budget (1: no retries).
func faultyClient(tr *faultinject.Transport, attempts int) *kinesis.Client {
	return server.Client(func(o *kinesis.Options) {
		o.HTTPClient = &http.Client{Transport: tr}
		o.RetryMaxAttempts = attempts
	})
}

func entries(prefix string, n int) []types.PutRecordsRequestEntry {
	out := make([]types.PutRecordsRequestEntry, n)
	for i := range out {
		out[i] = types.PutRecordsRequestEntry{
			PartitionKey: aws.String(fmt.Sprintf("%s-%d", prefix, i)),
			Data:         []byte(fmt.Sprintf("%s-data-%d", prefix, i)),
		}
	}
	return out
}

// stored reads the stream back and returns every record's data, sorted.
func stored(t *testing.T, client *kinesis.Client, stream string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	shards, err := kinesisread.ReadAll(ctx, client, stream)
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	var out []string
	for _, sh := range shards {
		for _, r := range sh.Records {
			out = append(out, string(r.Data))
		}
	}
	sort.Strings(out)
	return out
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestEntryFaults(t *testing.T) {
	tests := []struct {
		name   string
		fault  func(shards []types.Shard) faultinject.EntryFault
		failed func(i int, shardOf map[string]string, e types.PutRecordsRequestEntry) bool
	}{
		{
			name: "entries with a throttled partition key fail at their index and are not stored",
			fault: func([]types.Shard) faultinject.EntryFault {
				return faultinject.EntryFault{PartitionKeys: []string{"k-3", "k-7"}}
			},
			failed: func(i int, _ map[string]string, _ types.PutRecordsRequestEntry) bool { return i == 3 || i == 7 },
		},
		{
			name: "entries routed to a throttled shard fail and the other shard's are stored",
			fault: func(shards []types.Shard) faultinject.EntryFault {
				return faultinject.EntryFault{HashRanges: []faultinject.HashRange{faultinject.RangeOf(shards[1])}}
			},
			failed: func(i int, shardOf map[string]string, e types.PutRecordsRequestEntry) bool {
				return shardOf[aws.ToString(e.PartitionKey)] == "shardId-000000000001"
			},
		},
		{
			name: "an internal failure code is spliced in as given",
			fault: func([]types.Shard) faultinject.EntryFault {
				return faultinject.EntryFault{Code: faultinject.CodeInternalFailure, PartitionKeys: []string{"k-0"}}
			},
			failed: func(i int, _ map[string]string, _ types.PutRecordsRequestEntry) bool { return i == 0 },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plain, stream := server.NewStream(t, 2)
			ctx := ctxT(t)
			shards, err := kinesisread.ListAllShards(ctx, plain, stream)
			if err != nil {
				t.Fatal(err)
			}
			in := entries("k", 10)
			shardOf := map[string]string{}
			for _, e := range in {
				shardOf[aws.ToString(e.PartitionKey)] = shardFor(t, shards, aws.ToString(e.PartitionKey))
			}
			f := tc.fault(shards)
			code := f.Code
			if code == "" {
				code = faultinject.CodeThrottled
			}

			tr := faultinject.New(nil)
			if err := tr.SetEntryFaults(f); err != nil {
				t.Fatal(err)
			}
			out, err := faultyClient(tr, 1).PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: in})
			if err != nil {
				t.Fatalf("PutRecords: %v", err)
			}
			if len(out.Records) != len(in) {
				t.Fatalf("got %d results for %d entries", len(out.Records), len(in))
			}
			var want []string
			wantFailed := 0
			for i, e := range in {
				r := out.Records[i]
				if tc.failed(i, shardOf, e) {
					wantFailed++
					if aws.ToString(r.ErrorCode) != code || aws.ToString(r.ErrorMessage) == "" || r.SequenceNumber != nil {
						t.Errorf("entry %d: got code %q message %q seq %v, want the injected failure", i, aws.ToString(r.ErrorCode), aws.ToString(r.ErrorMessage), r.SequenceNumber)
					}
					continue
				}
				if r.ErrorCode != nil || r.SequenceNumber == nil {
					t.Errorf("entry %d: got code %q seq %v, want stored", i, aws.ToString(r.ErrorCode), r.SequenceNumber)
				}
				if got := aws.ToString(r.ShardId); got != shardOf[aws.ToString(e.PartitionKey)] {
					t.Errorf("entry %d stored on %s, its key hashes to %s", i, got, shardOf[aws.ToString(e.PartitionKey)])
				}
				want = append(want, string(e.Data))
			}
			if wantFailed == 0 || wantFailed == len(in) {
				t.Fatalf("the case fails %d of %d entries; it must fail some but not all", wantFailed, len(in))
			}
			if got := int(aws.ToInt32(out.FailedRecordCount)); got != wantFailed {
				t.Errorf("FailedRecordCount = %d, want %d", got, wantFailed)
			}
			sort.Strings(want)
			if got := stored(t, plain, stream); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("stored %q, want %q", got, want)
			}
			c := tr.Counters()
			if c.EntriesFailed[code] != uint64(wantFailed) || c.EntriesSeen != uint64(len(in)) {
				t.Errorf("counters: %+v", c)
			}
		})
	}
}

// shardFor names the shard whose hash range holds the key.
func shardFor(t *testing.T, shards []types.Shard, key string) string {
	t.Helper()
	for _, s := range shards {
		if faultinject.RangeOf(s).Holds(key, "") {
			return aws.ToString(s.ShardId)
		}
	}
	t.Fatalf("no shard holds key %q", key)
	return ""
}

func TestEveryEntryFailedIsAnsweredWithoutTheEngine(t *testing.T) {
	plain, stream := server.NewStream(t, 1)
	ctx := ctxT(t)
	tr := faultinject.New(nil)
	if err := tr.SetEntryFaults(faultinject.EntryFault{}); err != nil {
		t.Fatal(err)
	}
	out, err := faultyClient(tr, 1).PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries("all", 4)})
	if err != nil {
		t.Fatalf("PutRecords: %v", err)
	}
	if aws.ToInt32(out.FailedRecordCount) != 4 || len(out.Records) != 4 {
		t.Fatalf("FailedRecordCount %d, %d results; want 4 and 4", aws.ToInt32(out.FailedRecordCount), len(out.Records))
	}
	for i, r := range out.Records {
		if aws.ToString(r.ErrorCode) != faultinject.CodeThrottled {
			t.Errorf("entry %d: code %q", i, aws.ToString(r.ErrorCode))
		}
	}
	if c := tr.Counters(); c.Forwarded != 0 {
		t.Errorf("forwarded %d requests, want 0", c.Forwarded)
	}
	if got := stored(t, plain, stream); len(got) != 0 {
		t.Errorf("stored %q, want nothing", got)
	}
}

func TestRandomEntryFailuresHitAboutTheGivenShare(t *testing.T) {
	plain, stream := server.NewStream(t, 1)
	ctx := ctxT(t)
	tr := faultinject.New(nil)
	tr.Seed(7)
	if err := tr.SetEntryFaults(faultinject.EntryFault{Probability: 0.3}); err != nil {
		t.Fatal(err)
	}
	in := entries("r", 200)
	out, err := faultyClient(tr, 1).PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: in})
	if err != nil {
		t.Fatalf("PutRecords: %v", err)
	}
	failed := int(aws.ToInt32(out.FailedRecordCount))
	// 200 draws at 30%: 60 expected; [30, 90] is beyond 4 standard deviations.
	if failed < 30 || failed > 90 {
		t.Errorf("%d of 200 entries failed at probability 0.3", failed)
	}
	var want []string
	for i, r := range out.Records {
		if r.ErrorCode == nil {
			want = append(want, string(in[i].Data))
		}
	}
	sort.Strings(want)
	if got := stored(t, plain, stream); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stored %d records, want the %d that succeeded", len(got), len(want))
	}
}

func TestRequestFaults(t *testing.T) {
	tests := []struct {
		name       string
		kind       faultinject.RequestFaultKind
		wantStored bool
		check      func(t *testing.T, err error)
	}{
		{
			name: "a 500 stores nothing and reads as InternalFailure",
			kind: faultinject.HTTP500,
			check: func(t *testing.T, err error) {
				assertAPIError(t, err, 500, "InternalFailure")
			},
		},
		{
			name: "a 503 stores nothing and reads as ServiceUnavailable",
			kind: faultinject.HTTP503,
			check: func(t *testing.T, err error) {
				assertAPIError(t, err, 503, "ServiceUnavailable")
			},
		},
		{
			name: "a reset before forwarding stores nothing and reads as a connection reset",
			kind: faultinject.ResetBeforeForward,
			check: func(t *testing.T, err error) {
				if !errors.Is(err, syscall.ECONNRESET) || !errors.Is(err, faultinject.ErrInjected) {
					t.Errorf("error %v is not an injected ECONNRESET", err)
				}
			},
		},
		{
			name:       "a reset after forwarding stores the records yet the client sees a connection reset",
			kind:       faultinject.ResetAfterForward,
			wantStored: true,
			check: func(t *testing.T, err error) {
				if !errors.Is(err, syscall.ECONNRESET) {
					t.Errorf("error %v is not ECONNRESET", err)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plain, stream := server.NewStream(t, 2)
			ctx := ctxT(t)
			tr := faultinject.New(nil)
			if err := tr.AddRequestFault(faultinject.RequestFault{Kind: tc.kind, Count: 1, Operations: []string{"PutRecords"}}); err != nil {
				t.Fatal(err)
			}
			client := faultyClient(tr, 1)
			// ListShards is not a PutRecords: the fault lets it through.
			if _, err := client.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)}); err != nil {
				t.Fatalf("ListShards: %v", err)
			}
			in := entries("q", 6)
			_, err := client.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: in})
			if err == nil {
				t.Fatal("PutRecords succeeded through the fault")
			}
			tc.check(t, err)

			got := stored(t, plain, stream)
			var want []string
			if tc.wantStored {
				for _, e := range in {
					want = append(want, string(e.Data))
				}
				sort.Strings(want)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("stored %q, want %q", got, want)
			}
			amb := tr.Ambiguous()
			if tc.wantStored && len(amb) != len(in) {
				t.Errorf("%d ambiguous entries recorded, want %d", len(amb), len(in))
			}
			if !tc.wantStored && len(amb) != 0 {
				t.Errorf("%d ambiguous entries recorded, want none", len(amb))
			}

			// The fault was for one request only: the next one goes through.
			if _, err := client.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries("after", 1)}); err != nil {
				t.Errorf("PutRecords after the fault: %v", err)
			}
		})
	}
}

func TestAmbiguousEntriesNameTheStoredRecords(t *testing.T) {
	plain, stream := server.NewStream(t, 2)
	ctx := ctxT(t)
	tr := faultinject.New(nil)
	if err := tr.AddRequestFault(faultinject.RequestFault{Kind: faultinject.ResetAfterForward, Count: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := faultyClient(tr, 1).PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries("a", 5)}); err == nil {
		t.Fatal("PutRecords succeeded through a reset")
	}
	shards, err := kinesisread.ReadAll(ctx, plain, stream)
	if err != nil {
		t.Fatal(err)
	}
	var have []faultinject.AmbiguousEntry
	for _, sh := range shards {
		for _, r := range sh.Records {
			have = append(have, faultinject.AmbiguousEntry{ShardID: aws.ToString(sh.Shard.ShardId), SequenceNumber: aws.ToString(r.SequenceNumber)})
		}
	}
	amb := tr.Ambiguous()
	less := func(s []faultinject.AmbiguousEntry) func(i, j int) bool {
		return func(i, j int) bool { return s[i].SequenceNumber < s[j].SequenceNumber }
	}
	sort.Slice(have, less(have))
	sort.Slice(amb, less(amb))
	if fmt.Sprint(have) != fmt.Sprint(amb) {
		t.Errorf("ambiguous entries %v, stored %v", amb, have)
	}
}

func TestSDKRetriesThroughAFewServerErrors(t *testing.T) {
	plain, stream := server.NewStream(t, 1)
	ctx := ctxT(t)
	tr := faultinject.New(nil)
	if err := tr.AddRequestFault(faultinject.RequestFault{Kind: faultinject.HTTP500, Count: 2}); err != nil {
		t.Fatal(err)
	}
	out, err := faultyClient(tr, 3).PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries("s", 3)})
	if err != nil {
		t.Fatalf("PutRecords with three attempts through two 500s: %v", err)
	}
	if aws.ToInt32(out.FailedRecordCount) != 0 {
		t.Errorf("FailedRecordCount = %d", aws.ToInt32(out.FailedRecordCount))
	}
	if got := stored(t, plain, stream); len(got) != 3 {
		t.Errorf("stored %d records, want exactly 3", len(got))
	}
	if c := tr.Counters(); c.HTTPErrors[500] != 2 || c.Forwarded != 1 {
		t.Errorf("counters %+v, want two 500s and one forwarded request", c)
	}
}

func TestOutage(t *testing.T) {
	plain, stream := server.NewStream(t, 1)
	ctx := ctxT(t)
	tr := faultinject.New(nil)
	client := faultyClient(tr, 1)
	put := func(prefix string) error {
		_, err := client.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries(prefix, 2)})
		return err
	}

	end := time.Now().Add(time.Second)
	tr.OutageUntil(end)
	for _, op := range []func() error{
		func() error { return put("during") },
		func() error {
			_, err := client.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
			return err
		},
	} {
		if err := op(); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("during the outage: error %v, want ECONNREFUSED", err)
		}
	}
	if err := ctxtime.Sleep(ctx, time.Until(end)); err != nil {
		t.Fatal(err)
	}
	if err := put("after"); err != nil {
		t.Errorf("after the outage window: %v", err)
	}

	tr.StartOutage(time.Hour)
	if err := put("during2"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("during the second outage: error %v, want ECONNREFUSED", err)
	}
	tr.EndOutage()
	if err := put("after2"); err != nil {
		t.Errorf("after EndOutage: %v", err)
	}

	want := []string{"after-data-0", "after-data-1", "after2-data-0", "after2-data-1"}
	if got := stored(t, plain, stream); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stored %q, want %q", got, want)
	}
	if c := tr.Counters(); c.OutageRejected != 3 {
		t.Errorf("OutageRejected = %d, want 3", c.OutageRejected)
	}
}

func TestLatencyDelaysButDelivers(t *testing.T) {
	plain, stream := server.NewStream(t, 1)
	ctx := ctxT(t)
	tr := faultinject.New(nil)
	tr.SetLatency(150 * time.Millisecond)
	start := time.Now()
	if _, err := faultyClient(tr, 1).PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries("l", 1)}); err != nil {
		t.Fatalf("PutRecords: %v", err)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("answered after %v, sooner than the added latency", d)
	}
	if c := tr.Counters(); c.Delayed != 1 {
		t.Errorf("Delayed = %d", c.Delayed)
	}
	if got := stored(t, plain, stream); len(got) != 1 {
		t.Errorf("stored %d records, want 1", len(got))
	}

	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	tr.SetLatency(time.Hour)
	if _, err := faultyClient(tr, 1).PutRecords(short, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries("late", 1)}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a request delayed past its deadline: error %v", err)
	}
}

func TestResponseLatencyPastTheDeadlineIsAnAmbiguousFailure(t *testing.T) {
	plain, stream := server.NewStream(t, 1)
	ctx := ctxT(t)
	tr := faultinject.New(nil)
	tr.SetResponseLatency(time.Hour)
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err := faultyClient(tr, 1).PutRecords(short, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries("slow", 3)})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a put whose answer comes after its deadline: error %v", err)
	}
	tr.Wait()
	want := []string{"slow-data-0", "slow-data-1", "slow-data-2"}
	if got := stored(t, plain, stream); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stored %q, want %q", got, want)
	}
	c := tr.Counters()
	// (ResponsesDelayed is 0 if kinesis-mock itself took longer than the
	// deadline: the call is abandoned all the same.)
	if len(tr.Ambiguous()) != 3 || c.AbandonedAfterForward != 1 || c.ResponsesDelayed > 1 {
		t.Errorf("%d ambiguous entries, counters %+v; want 3 entries of one abandoned request", len(tr.Ambiguous()), c)
	}
}

func TestProxy(t *testing.T) {
	plain, stream := server.NewStream(t, 1)
	ctx := ctxT(t)
	target, err := url.Parse(server.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	tr := faultinject.New(nil)
	proxy := httptest.NewServer(faultinject.NewProxy(target, tr))
	defer proxy.Close()
	client := kinesis.NewFromConfig(server.Config(), func(o *kinesis.Options) {
		o.BaseEndpoint = aws.String(proxy.URL)
		o.RetryMaxAttempts = 1
	})
	put := func(in []types.PutRecordsRequestEntry) (*kinesis.PutRecordsOutput, error) {
		return client.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: in})
	}

	if err := tr.SetEntryFaults(faultinject.EntryFault{PartitionKeys: []string{"p-1"}}); err != nil {
		t.Fatal(err)
	}
	out, err := put(entries("p", 3))
	if err != nil {
		t.Fatalf("PutRecords through the proxy: %v", err)
	}
	if aws.ToInt32(out.FailedRecordCount) != 1 || aws.ToString(out.Records[1].ErrorCode) != faultinject.CodeThrottled {
		t.Errorf("FailedRecordCount %d, entry 1 code %q", aws.ToInt32(out.FailedRecordCount), aws.ToString(out.Records[1].ErrorCode))
	}
	if err := tr.SetEntryFaults(); err != nil {
		t.Fatal(err)
	}

	if err := tr.AddRequestFault(faultinject.RequestFault{Kind: faultinject.ResetAfterForward, Count: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := put(entries("amb", 1)); err == nil {
		t.Error("PutRecords through a reset after forwarding succeeded")
	}
	if err := tr.AddRequestFault(faultinject.RequestFault{Kind: faultinject.HTTP503, Count: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := put(entries("x", 1)); err == nil {
		t.Error("PutRecords through a 503 succeeded")
	} else {
		assertAPIError(t, err, 503, "ServiceUnavailable")
	}

	want := []string{"amb-data-0", "p-data-0", "p-data-2"}
	if got := stored(t, plain, stream); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stored %q, want %q", got, want)
	}
}

func TestSettersAreSafeWhileRequestsAreInFlight(t *testing.T) {
	_, stream := server.NewStream(t, 1)
	ctx := ctxT(t)
	tr := faultinject.New(nil)
	client := faultyClient(tr, 1)
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			for i := range 5 {
				_, _ = client.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries(fmt.Sprintf("w%d-%d", w, i), 3)})
			}
		})
	}
	for i := range 20 {
		_ = tr.SetEntryFaults(faultinject.EntryFault{Probability: 0.5})
		_ = tr.AddRequestFault(faultinject.RequestFault{Kind: faultinject.RequestFaultKind(1 + i%4), Probability: 0.2})
		tr.SetLatency(time.Millisecond)
		_ = tr.Counters()
		_ = tr.Ambiguous()
		tr.Clear()
	}
	wg.Wait()
	if c := tr.Counters(); c.Requests != 15 {
		t.Errorf("Requests = %d, want 15", c.Requests)
	}
}

func assertAPIError(t *testing.T, err error, status int, code string) {
	t.Helper()
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != code {
		t.Errorf("error %v, want API error %s", err, code)
	}
	var respErr *smithyhttp.ResponseError
	if !errors.As(err, &respErr) || respErr.HTTPStatusCode() != status {
		t.Errorf("error %v, want HTTP status %d", err, status)
	}
}
