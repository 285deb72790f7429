// Package faultinject injects the faults of the real Kinesis service into the
// traffic between a client and a Kinesis engine (kinesis-mock, LocalStack,
// or the in-process endpoint of kinesistest/limitserver). It never answers
// in the engine's place: every request that is not failed outright is
// forwarded, and what the client sees is the engine's answer, edited. The
// command cmd/faultproxy runs it as a standalone proxy with a schedule.
//
// A Transport is an http.RoundTripper. Give it to the SDK as
//
//	kinesis.NewFromConfig(cfg, func(o *kinesis.Options) {
//		o.HTTPClient = &http.Client{Transport: tr}
//	})
//
// or put it behind NewProxy so that another process can be pointed at it.
//
// The faults, each settable at any time (also while requests are in flight):
//
//   - per-entry failures in PutRecords (SetEntryFaults): the failed entries are
//     removed from the forwarded request, so they are really not stored, and
//     a failure (ErrorCode, ErrorMessage) is spliced into the response at their
//     index, with FailedRecordCount adjusted, as the real service does;
//   - whole-request HTTP errors (500 InternalFailure, 503 ServiceUnavailable),
//     answered before forwarding so that nothing is stored;
//   - connection resets before forwarding (nothing stored) or after it (stored,
//     but the client sees a network error: an ambiguous failure);
//   - added latency, before forwarding (a client that times out stored
//     nothing) or after it (a client that times out has had its records
//     stored: an ambiguous failure);
//   - a full outage until a given time: every request fails as if the
//     connection were refused.
//
// The wire format is the one aws-sdk-go-v2's kinesis client speaks: AWS JSON
// 1.1 (Content-Type application/x-amz-json-1.1, X-Amz-Target
// Kinesis_20131202.<Operation>), record data as base64 strings. Editing the
// body invalidates the SigV4 payload hash of the request; the local engines
// check that a request is signed but not the signature, so the edited request
// is forwarded with its original headers (the transport sets the new length).
// A real AWS endpoint would refuse it: this is a tool for local engines.
package faultinject

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kplgo/kpl/aggregation"
	"github.com/kplgo/kpl/internal/ctxtime"
)

// Error codes the real service puts into a failed PutRecords entry.
const (
	// CodeThrottled is the per-entry code for a shard over its write limit.
	CodeThrottled = "ProvisionedThroughputExceededException"
	// CodeInternalFailure is the per-entry code for a server-side failure.
	CodeInternalFailure = "InternalFailure"
)

// targetPrefix is the X-Amz-Target prefix of every Kinesis operation.
const targetPrefix = "Kinesis_20131202."

// ErrInjected is wrapped by every error the transport makes up (resets and
// refused connections), so that a test or the proxy can tell an injected
// network error from a real one.
var ErrInjected = errors.New("faultinject: injected fault")

// HashRange is an inclusive range of 128-bit hash keys, in decimal, as in
// types.HashKeyRange.
type HashRange struct {
	Start, End string
}

// RangeOf returns the hash key range of a shard.
func RangeOf(s types.Shard) HashRange {
	if s.HashKeyRange == nil {
		return HashRange{}
	}
	return HashRange{Start: deref(s.HashKeyRange.StartingHashKey), End: deref(s.HashKeyRange.EndingHashKey)}
}

// Holds reports whether the hash key of a record with this partition key and
// explicit hash key ("" for none) falls in the range. A malformed range holds
// nothing.
func (r HashRange) Holds(partitionKey, explicitHashKey string) bool {
	lo, hi, err := r.parse()
	if err != nil {
		return false
	}
	e := putRecordsEntry{PartitionKey: partitionKey}
	if explicitHashKey != "" {
		e.ExplicitHashKey = &explicitHashKey
	}
	return holds(lo, hi, hashKey(e))
}

// parse parses the range's ends.
func (r HashRange) parse() (lo, hi aggregation.HashKey, err error) {
	if lo, err = aggregation.ParseHashKey(r.Start); err != nil {
		return lo, hi, err
	}
	hi, err = aggregation.ParseHashKey(r.End)
	return lo, hi, err
}

// holds reports whether k is in [lo, hi].
func holds(lo, hi, k aggregation.HashKey) bool { return k.Cmp(lo) >= 0 && k.Cmp(hi) <= 0 }

// EntryFault fails PutRecords entries. An entry matches when it passes every
// filter that is set (PartitionKeys, HashRanges); a matching entry fails with
// the given Probability.
type EntryFault struct {
	// Code is the ErrorCode spliced into the response. The default is
	// CodeThrottled.
	Code string
	// Message is the ErrorMessage. The default resembles the service's
	// message for Code.
	Message string
	// Probability that a matching entry fails, in [0, 1]. Zero means 1: every
	// matching entry fails.
	Probability float64
	// PartitionKeys, if not empty, limits the fault to entries with one of
	// these partition keys.
	PartitionKeys []string
	// HashRanges, if not empty, limits the fault to entries whose hash key
	// (the explicit hash key, else the MD5 of the partition key) falls in one
	// of these ranges. RangeOf gives a shard's range.
	HashRanges []HashRange
}

// RequestFaultKind is what a RequestFault does to a request.
type RequestFaultKind int

const (
	// HTTP500 answers 500 with an InternalFailure JSON body, without
	// forwarding.
	HTTP500 RequestFaultKind = iota + 1
	// HTTP503 answers 503 with a ServiceUnavailable JSON body, without
	// forwarding.
	HTTP503
	// ResetBeforeForward fails the request with a connection reset before
	// forwarding it: nothing is stored.
	ResetBeforeForward
	// ResetAfterForward forwards the request, reads the engine's whole answer
	// and then fails the request with a connection reset: whatever the engine
	// stored stays stored, but the client sees an error.
	ResetAfterForward
)

// String names the kind.
func (k RequestFaultKind) String() string {
	switch k {
	case HTTP500:
		return "http-500"
	case HTTP503:
		return "http-503"
	case ResetBeforeForward:
		return "reset-before-forward"
	case ResetAfterForward:
		return "reset-after-forward"
	}
	return "kind-" + strconv.Itoa(int(k))
}

// RequestFault fails whole requests.
type RequestFault struct {
	// Kind is what happens to a request the fault hits.
	Kind RequestFaultKind
	// Count, if positive, makes the fault hit the next Count matching
	// requests, after which it is spent and removed.
	Count int
	// Probability is the chance that a matching request is hit, when Count
	// is zero.
	Probability float64
	// Operations, if not empty, limits the fault to these operations (e.g.
	// "PutRecords"); empty means every operation.
	Operations []string
	// Name, if set, lets RemoveRequestFaults remove the fault again.
	Name string
}

// AmbiguousEntry is a record the engine stored in a request that the client
// then saw fail: a reset after forwarding, or a client that gave up (a
// timeout) after the request was forwarded.
type AmbiguousEntry struct {
	ShardID        string // the shard that stored the record
	SequenceNumber string // its sequence number there
}

// Counters are cumulative counts of what the transport did.
type Counters struct {
	Requests    uint64 // requests received
	Forwarded   uint64 // requests passed on to the engine
	EntriesSeen uint64 // PutRecords entries received
	// EntriesFailed counts injected per-entry failures by error code, as
	// the client saw them: not those of calls the engine refused whole.
	EntriesFailed map[string]uint64
	// HTTPErrors counts injected whole-request errors by status code.
	HTTPErrors   map[int]uint64
	ResetsBefore uint64 // requests failed with a reset before forwarding
	ResetsAfter  uint64 // requests failed with a reset after forwarding
	// AbandonedAfterForward counts storing requests whose client gave up
	// (its context ended) after they were forwarded: ambiguous failures.
	AbandonedAfterForward uint64
	// AmbiguousEntries counts records stored by the engine in requests the
	// client saw fail: resets after forwarding and abandoned requests.
	AmbiguousEntries uint64
	OutageRejected   uint64 // requests refused during an outage
	Delayed          uint64 // requests given added latency before forwarding
	ResponsesDelayed uint64 // answers given added latency after forwarding
}

// EntryFailures is the total of EntriesFailed.
func (c Counters) EntryFailures() uint64 {
	var n uint64
	for _, v := range c.EntriesFailed {
		n += v
	}
	return n
}

// Transport is an http.RoundTripper that injects faults into the traffic to
// a Kinesis engine. The zero value is not usable; call New. It is safe for
// concurrent use, and every setter may be called while requests are in flight;
// a request sees the configuration in force at each step it goes through
// (latency before forwarding, then outage and request faults, then entry
// faults, then latency after forwarding).
type Transport struct {
	base http.RoundTripper
	bg   sync.WaitGroup // forwards that outlive their client's request

	mu              sync.Mutex // guards every field below
	rng             *rand.Rand
	entryFaults     []entryFault
	reqFaults       []RequestFault
	latency         time.Duration
	responseLatency time.Duration
	outageUntil     time.Time
	counters        Counters
	ambiguous       []AmbiguousEntry
}

var _ http.RoundTripper = (*Transport)(nil)

type entryFault struct {
	EntryFault
	keys   map[string]bool
	ranges [][2]aggregation.HashKey
}

// New returns a Transport that forwards to base (http.DefaultTransport when
// nil), with no faults set.
func New(base http.RoundTripper) *Transport {
	if base == nil {
		base = http.DefaultTransport
	}
	return &Transport{
		base: base,
		rng:  rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x9e3779b97f4a7c15)),
		counters: Counters{
			EntriesFailed: map[string]uint64{},
			HTTPErrors:    map[int]uint64{},
		},
	}
}

// Seed makes the transport's random choices repeatable.
func (t *Transport) Seed(seed uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rng = rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
}

// SetEntryFaults replaces the per-entry faults; no argument clears them. An
// entry that matches several faults fails with the first one that hits.
func (t *Transport) SetEntryFaults(faults ...EntryFault) error {
	compiled := make([]entryFault, 0, len(faults))
	for _, f := range faults {
		c := entryFault{EntryFault: f}
		if c.Code == "" {
			c.Code = CodeThrottled
		}
		if c.Probability < 0 || c.Probability > 1 {
			return fmt.Errorf("faultinject: probability %v out of [0, 1]", c.Probability)
		}
		if c.Probability == 0 {
			c.Probability = 1
		}
		if len(f.PartitionKeys) > 0 {
			c.keys = make(map[string]bool, len(f.PartitionKeys))
			for _, k := range f.PartitionKeys {
				c.keys[k] = true
			}
		}
		for _, r := range f.HashRanges {
			lo, hi, err := r.parse()
			if err != nil {
				return fmt.Errorf("faultinject: bad hash range [%q, %q]: %w", r.Start, r.End, err)
			}
			c.ranges = append(c.ranges, [2]aggregation.HashKey{lo, hi})
		}
		compiled = append(compiled, c)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.entryFaults = compiled
	return nil
}

// AddRequestFault adds a whole-request fault. Faults are tried in the order
// they were added; the first that hits decides.
func (t *Transport) AddRequestFault(f RequestFault) error {
	if f.Kind < HTTP500 || f.Kind > ResetAfterForward {
		return fmt.Errorf("faultinject: unknown fault kind %d", f.Kind)
	}
	if f.Count < 0 || f.Probability < 0 || f.Probability > 1 || (f.Count == 0 && f.Probability == 0) {
		return fmt.Errorf("faultinject: a request fault needs Count > 0 or Probability in (0, 1]")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.reqFaults = append(t.reqFaults, f)
	return nil
}

// RemoveRequestFaults removes the whole-request faults with that Name that
// are not spent yet.
func (t *Transport) RemoveRequestFaults(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	kept := t.reqFaults[:0:0]
	for _, f := range t.reqFaults {
		if f.Name != name {
			kept = append(kept, f)
		}
	}
	t.reqFaults = kept
}

// ClearRequestFaults removes every whole-request fault.
func (t *Transport) ClearRequestFaults() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.reqFaults = nil
}

// SetLatency delays every request by d before anything else happens to it
// (before forwarding: a client that gives up meanwhile stored nothing); zero
// removes the delay.
func (t *Transport) SetLatency(d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.latency = d
}

// SetResponseLatency delays every answer by d after the engine gave it (a
// client that gives up meanwhile has had its records stored: an ambiguous
// failure, recorded as such); zero removes the delay.
func (t *Transport) SetResponseLatency(d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.responseLatency = d
}

// OutageUntil refuses every request until the given time, as a service that
// cannot be reached. The zero time ends an outage.
func (t *Transport) OutageUntil(until time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.outageUntil = until
}

// StartOutage refuses every request for d from now.
func (t *Transport) StartOutage(d time.Duration) { t.OutageUntil(time.Now().Add(d)) }

// EndOutage ends an outage now.
func (t *Transport) EndOutage() { t.OutageUntil(time.Time{}) }

// Clear removes every fault (entry faults, request faults, latency, outage).
// Counters and the ambiguous entries are kept.
func (t *Transport) Clear() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.entryFaults, t.reqFaults, t.latency, t.responseLatency, t.outageUntil = nil, nil, 0, 0, time.Time{}
}

// Counters returns a snapshot of the counters.
func (t *Transport) Counters() Counters {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.counters
	c.EntriesFailed = make(map[string]uint64, len(t.counters.EntriesFailed))
	for k, v := range t.counters.EntriesFailed {
		c.EntriesFailed[k] = v
	}
	c.HTTPErrors = make(map[int]uint64, len(t.counters.HTTPErrors))
	for k, v := range t.counters.HTTPErrors {
		c.HTTPErrors[k] = v
	}
	return c
}

// Ambiguous returns the records stored by requests the client saw fail (a
// reset after forwarding, a client that gave up after forwarding), in the
// order they were recorded. Call Wait first for a complete list.
func (t *Transport) Ambiguous() []AmbiguousEntry {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]AmbiguousEntry(nil), t.ambiguous...)
}

// RoundTrip applies the faults in force to req and forwards what is left of it.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	op := strings.TrimPrefix(req.Header.Get("X-Amz-Target"), targetPrefix)

	t.mu.Lock()
	t.counters.Requests++
	latency := t.latency
	if latency > 0 {
		t.counters.Delayed++
	}
	t.mu.Unlock()

	if latency > 0 {
		if err := ctxtime.Sleep(req.Context(), latency); err != nil {
			closeBody(req)
			return nil, err
		}
	}

	t.mu.Lock()
	if time.Now().Before(t.outageUntil) {
		t.counters.OutageRejected++
		t.mu.Unlock()
		closeBody(req)
		return nil, refusedError(req)
	}
	kind := t.pickRequestFaultLocked(op)
	switch kind {
	case HTTP500:
		t.counters.HTTPErrors[500]++
	case HTTP503:
		t.counters.HTTPErrors[503]++
	case ResetBeforeForward:
		t.counters.ResetsBefore++
	}
	t.mu.Unlock()

	switch kind {
	case HTTP500:
		closeBody(req)
		return errorResponse(req, http.StatusInternalServerError, "InternalFailure", "Internal service failure."), nil
	case HTTP503:
		closeBody(req)
		return errorResponse(req, http.StatusServiceUnavailable, "ServiceUnavailable", "Service is unavailable."), nil
	case ResetBeforeForward:
		closeBody(req)
		return nil, resetError(req)
	}

	if op == "PutRecords" || op == "PutRecord" {
		return t.forwardStoring(req, op, kind)
	}
	t.count(func(c *Counters) { c.Forwarded++ })
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if kind == ResetAfterForward {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		t.count(func(c *Counters) { c.ResetsAfter++ })
		return nil, resetError(req)
	}
	if d := t.responseLatencyNow(); d > 0 {
		if err := ctxtime.Sleep(req.Context(), d); err != nil {
			resp.Body.Close()
			return nil, err
		}
	}
	return resp, nil
}

// forwarded is the engine's whole answer to a storing request.
type forwarded struct {
	resp *http.Response
	body []byte
	err  error
}

// forwardStoring forwards a request that stores records. The engine's work
// is not cut short when the client gives up: the request goes on under a
// context of its own, and what it stores after the client's context ended
// is recorded as ambiguous, like what a reset after forwarding stores.
func (t *Transport) forwardStoring(req *http.Request, op string, kind RequestFaultKind) (*http.Response, error) {
	ctx := req.Context()
	detached := req.WithContext(context.WithoutCancel(ctx))
	done := make(chan forwarded, 1)
	t.bg.Add(1)
	go func() {
		defer t.bg.Done()
		var f forwarded
		if op == "PutRecords" {
			f.resp, f.err = t.putRecords(detached)
		} else {
			t.count(func(c *Counters) { c.Forwarded++ })
			f.resp, f.err = t.base.RoundTrip(detached)
		}
		if f.err == nil {
			f.body, f.err = io.ReadAll(f.resp.Body)
			f.resp.Body.Close()
		}
		done <- f
	}()

	var f forwarded
	select {
	case f = <-done:
	case <-ctx.Done():
		t.bg.Add(1)
		go func() {
			defer t.bg.Done()
			t.recordAmbiguous(op, <-done, func(c *Counters) { c.AbandonedAfterForward++ })
		}()
		return nil, ctx.Err()
	}
	if f.err != nil {
		return nil, f.err
	}
	if kind == ResetAfterForward {
		t.recordAmbiguous(op, f, func(c *Counters) { c.ResetsAfter++ })
		return nil, resetError(req)
	}
	if d := t.responseLatencyNow(); d > 0 {
		if err := ctxtime.Sleep(ctx, d); err != nil {
			t.recordAmbiguous(op, f, func(c *Counters) { c.AbandonedAfterForward++ })
			return nil, err
		}
	}
	f.resp.Body = io.NopCloser(bytes.NewReader(f.body))
	return f.resp, nil
}

// recordAmbiguous records the records an answer the client never saw says
// were stored, and counts the request with count.
func (t *Transport) recordAmbiguous(op string, f forwarded, count func(*Counters)) {
	var stored []AmbiguousEntry
	if f.err == nil && f.resp.StatusCode == http.StatusOK {
		stored = storedEntries(op, f.body)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	count(&t.counters)
	t.counters.AmbiguousEntries += uint64(len(stored))
	t.ambiguous = append(t.ambiguous, stored...)
}

func (t *Transport) responseLatencyNow() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.responseLatency > 0 {
		t.counters.ResponsesDelayed++
	}
	return t.responseLatency
}

// Wait blocks until the engine has answered every storing request whose
// client gave up, so that Ambiguous and Counters are complete. Call it when
// no request is in flight any more. An engine that never answers (stopped
// with SIGSTOP, hung) blocks it for good: see WaitContext.
func (t *Transport) Wait() { t.bg.Wait() }

// WaitContext is Wait bounded by ctx: it returns ctx.Err() when ctx ends
// first, and Ambiguous and Counters may then miss what the engine stores
// later.
func (t *Transport) WaitContext(ctx context.Context) error {
	done := make(chan struct{})
	go func() { t.bg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pickRequestFaultLocked returns the kind of the first request fault that
// hits a request for op, or 0.
func (t *Transport) pickRequestFaultLocked(op string) RequestFaultKind {
	for i := range t.reqFaults {
		f := &t.reqFaults[i]
		if len(f.Operations) > 0 && !contains(f.Operations, op) {
			continue
		}
		if f.Count > 0 {
			kind := f.Kind
			f.Count--
			if f.Count == 0 {
				t.reqFaults = append(t.reqFaults[:i:i], t.reqFaults[i+1:]...)
			}
			return kind
		}
		if t.rng.Float64() < f.Probability {
			return f.Kind
		}
	}
	return 0
}

// putRecordsRequest holds the fields of a PutRecords request that the
// transport looks at; the rest of the body is kept as it is.
type putRecordsEntry struct {
	PartitionKey    string  `json:"PartitionKey"`
	ExplicitHashKey *string `json:"ExplicitHashKey"`
}

// putRecords forwards a PutRecords request without the entries the entry
// faults fail, and splices their failures into the answer.
func (t *Transport) putRecords(req *http.Request) (*http.Response, error) {
	t.mu.Lock()
	faults := t.entryFaults
	t.mu.Unlock()

	body, err := readBody(req)
	if err != nil {
		return nil, err
	}
	var doc map[string]json.RawMessage
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &doc); err != nil || json.Unmarshal(doc["Records"], &raws) != nil {
		// Not something to edit: let the engine judge it.
		t.count(func(c *Counters) { c.Forwarded++ })
		return t.base.RoundTrip(withBody(req, body))
	}

	// Decode the entries before taking the lock, then judge them all under
	// it; an entry that does not decode is left for the engine to judge.
	var entries []putRecordsEntry
	var decoded []bool
	if len(faults) > 0 {
		entries = make([]putRecordsEntry, len(raws))
		decoded = make([]bool, len(raws))
		for i, raw := range raws {
			decoded[i] = json.Unmarshal(raw, &entries[i]) == nil
		}
	}
	failed := make(map[int]*entryFault) // index -> fault
	t.mu.Lock()
	for i := range entries {
		if !decoded[i] {
			continue
		}
		if f := t.pickEntryFaultLocked(faults, entries[i]); f != nil {
			failed[i] = f
		}
	}
	t.counters.EntriesSeen += uint64(len(raws))
	t.mu.Unlock()

	var stream string
	_ = json.Unmarshal(doc["StreamName"], &stream)

	if len(failed) == 0 {
		t.count(func(c *Counters) { c.Forwarded++ })
		return t.base.RoundTrip(withBody(req, body))
	}

	kept := make([]json.RawMessage, 0, len(raws)-len(failed))
	for i, raw := range raws {
		if failed[i] == nil {
			kept = append(kept, raw)
		}
	}

	var forwarded []json.RawMessage // the engine's result entries, for the kept entries
	var respDoc map[string]json.RawMessage
	var resp *http.Response
	if len(kept) > 0 {
		doc["Records"], _ = json.Marshal(kept)
		newBody, err := json.Marshal(doc)
		if err != nil {
			return nil, fmt.Errorf("faultinject: re-encode PutRecords: %w", err)
		}
		t.count(func(c *Counters) { c.Forwarded++ })
		resp, err = t.base.RoundTrip(withBody(req, newBody))
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return resp, nil // a whole-request error: nothing to splice into
		}
		respBody, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		if json.Unmarshal(respBody, &respDoc) != nil || json.Unmarshal(respDoc["Records"], &forwarded) != nil || len(forwarded) != len(kept) {
			return nil, fmt.Errorf("faultinject: unexpected PutRecords answer from the engine: %.200s", respBody)
		}
	} else {
		// Every entry failed: the engine is not asked (an empty PutRecords
		// is invalid), the answer is made here.
		resp = &http.Response{
			Status:     "200 OK",
			StatusCode: http.StatusOK,
			Proto:      "HTTP/1.1",
			ProtoMajor: 1,
			ProtoMinor: 1,
			Header: http.Header{
				"Content-Type":     {"application/x-amz-json-1.1"},
				"X-Amzn-Requestid": {requestID()},
			},
			Request: req,
		}
		respDoc = map[string]json.RawMessage{"EncryptionType": json.RawMessage(`"NONE"`)}
	}

	// The failures reach the client: count them (not before, since the
	// engine may have refused the whole call).
	t.count(func(c *Counters) {
		for _, f := range failed {
			c.EntriesFailed[f.Code]++
		}
	})
	var failedCount int
	_ = json.Unmarshal(respDoc["FailedRecordCount"], &failedCount)
	merged := make([]json.RawMessage, len(raws))
	next := 0
	for i := range raws {
		if f := failed[i]; f != nil {
			msg := f.Message
			if msg == "" {
				msg = defaultMessage(f.Code, stream)
			}
			merged[i], _ = json.Marshal(map[string]string{"ErrorCode": f.Code, "ErrorMessage": msg})
			failedCount++
			continue
		}
		merged[i] = forwarded[next]
		next++
	}
	respDoc["Records"], _ = json.Marshal(merged)
	respDoc["FailedRecordCount"], _ = json.Marshal(failedCount)
	out, err := json.Marshal(respDoc)
	if err != nil {
		return nil, fmt.Errorf("faultinject: re-encode PutRecords answer: %w", err)
	}
	resp.Header.Del("X-Amz-Crc32") // the checksum of the engine's body no longer holds
	resp.Header.Set("Content-Length", strconv.Itoa(len(out)))
	resp.ContentLength = int64(len(out))
	resp.Body = io.NopCloser(bytes.NewReader(out))
	resp.Uncompressed = true
	return resp, nil
}

// pickEntryFaultLocked returns the fault that fails the entry, or nil. The
// caller holds t.mu (for t.rng).
func (t *Transport) pickEntryFaultLocked(faults []entryFault, e putRecordsEntry) *entryFault {
	var hk aggregation.HashKey
	hashed := false
	for i := range faults {
		f := &faults[i]
		if f.keys != nil && !f.keys[e.PartitionKey] {
			continue
		}
		if len(f.ranges) > 0 {
			if !hashed {
				hk, hashed = hashKey(e), true
			}
			in := false
			for _, r := range f.ranges {
				if holds(r[0], r[1], hk) {
					in = true
					break
				}
			}
			if !in {
				continue
			}
		}
		if f.Probability >= 1 || t.rng.Float64() < f.Probability {
			return f
		}
	}
	return nil
}

func (t *Transport) count(fn func(*Counters)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fn(&t.counters)
}

// hashKey is the entry's explicit hash key, else (also when that is
// malformed) the MD5 of its partition key read as a big-endian 128-bit
// integer: the service's routing rule.
func hashKey(e putRecordsEntry) aggregation.HashKey {
	if e.ExplicitHashKey != nil {
		if k, err := aggregation.ParseHashKey(*e.ExplicitHashKey); err == nil {
			return k
		}
	}
	return aggregation.PartitionKeyHash(e.PartitionKey)
}

// storedEntries lists the records an engine answer says were stored.
func storedEntries(op string, body []byte) []AmbiguousEntry {
	type result struct {
		ShardID        string `json:"ShardId"`
		SequenceNumber string `json:"SequenceNumber"`
		ErrorCode      string `json:"ErrorCode"`
	}
	switch op {
	case "PutRecords":
		var out struct{ Records []result }
		if json.Unmarshal(body, &out) != nil {
			return nil
		}
		var stored []AmbiguousEntry
		for _, r := range out.Records {
			if r.ErrorCode == "" && r.SequenceNumber != "" {
				stored = append(stored, AmbiguousEntry{ShardID: r.ShardID, SequenceNumber: r.SequenceNumber})
			}
		}
		return stored
	case "PutRecord":
		var r result
		if json.Unmarshal(body, &r) != nil || r.SequenceNumber == "" {
			return nil
		}
		return []AmbiguousEntry{{ShardID: r.ShardID, SequenceNumber: r.SequenceNumber}}
	}
	return nil
}

func defaultMessage(code, stream string) string {
	switch code {
	case CodeThrottled:
		return fmt.Sprintf("Rate exceeded for shard in stream %s under account 000000000000.", stream)
	case CodeInternalFailure:
		return "Internal service failure."
	}
	return "Injected failure."
}

// errorResponse is a whole-request error as the service sends it.
func errorResponse(req *http.Request, status int, code, message string) *http.Response {
	body, _ := json.Marshal(map[string]string{"__type": code, "message": message})
	return &http.Response{
		Status:     strconv.Itoa(status) + " " + http.StatusText(status),
		StatusCode: status,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header: http.Header{
			"Content-Type":     {"application/x-amz-json-1.1"},
			"Content-Length":   {strconv.Itoa(len(body))},
			"X-Amzn-Errortype": {code},
			"X-Amzn-Requestid": {requestID()},
		},
		ContentLength: int64(len(body)),
		Body:          io.NopCloser(bytes.NewReader(body)),
		Request:       req,
	}
}

// resetError looks like a connection reset by the peer while reading the
// answer, which the SDK classifies as a retryable network error.
func resetError(req *http.Request) error {
	return &injectedError{&net.OpError{
		Op:   "read",
		Net:  "tcp",
		Addr: fakeAddr(req),
		Err:  &os.SyscallError{Syscall: "read", Err: syscall.ECONNRESET},
	}}
}

// refusedError looks like a refused TCP connection.
func refusedError(req *http.Request) error {
	return &injectedError{&net.OpError{
		Op:   "dial",
		Net:  "tcp",
		Addr: fakeAddr(req),
		Err:  &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED},
	}}
}

// injectedError is a network error the transport made up. It unwraps both to
// the network error and to ErrInjected.
type injectedError struct{ op *net.OpError }

func (e *injectedError) Error() string   { return e.op.Error() }
func (e *injectedError) Unwrap() []error { return []error{e.op, ErrInjected} }

type addr string

func (a addr) Network() string { return "tcp" }
func (a addr) String() string  { return string(a) }

func fakeAddr(req *http.Request) net.Addr {
	if req.URL == nil {
		return addr("")
	}
	return addr(req.URL.Host)
}

func readBody(req *http.Request) ([]byte, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	defer req.Body.Close()
	b, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, fmt.Errorf("faultinject: read request body: %w", err)
	}
	return b, nil
}

// withBody is a shallow copy of req with body as its body.
func withBody(req *http.Request, body []byte) *http.Request {
	out := req.Clone(req.Context())
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	out.ContentLength = int64(len(body))
	out.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return out
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

func requestID() string {
	return fmt.Sprintf("faultinject-%016x", rand.Uint64())
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
