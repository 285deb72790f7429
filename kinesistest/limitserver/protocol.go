package limitserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/kplgo/kpl/internal/ctxtime"
)

// targetPrefix starts every X-Amz-Target header of the Kinesis API.
const targetPrefix = "Kinesis_20131202."

// contentType is the JSON 1.1 protocol's media type.
const contentType = "application/x-amz-json-1.1"

// Error codes this server answers with.
const (
	codeResourceNotFound     = "ResourceNotFoundException"
	codeResourceInUse        = "ResourceInUseException"
	codeInvalidArgument      = "InvalidArgumentException"
	codeValidation           = "ValidationException"
	codeThroughputExceeded   = "ProvisionedThroughputExceededException"
	codeSerialization        = "SerializationException"
	codeUnknownOperation     = "UnknownOperationException"
	codeRequestEntityTooBig  = "RequestEntityTooLargeException"
	codeInternalFailure      = "InternalFailure"
	validationErrorPrefix    = "1 validation error detected: "
	streamIdentifierRequired = "Either StreamName or StreamARN must be provided."
)

// apiError is a whole-request error as the service sends it.
type apiError struct {
	status  int
	code    string
	message string
}

// Error implements error.
func (e *apiError) Error() string { return e.code + ": " + e.message }

// badRequest returns an HTTP 400 error.
func badRequest(code, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: code, message: fmt.Sprintf(format, args...)}
}

// validation returns a ValidationException worded like the service's.
func validation(format string, args ...any) *apiError {
	return badRequest(codeValidation, validationErrorPrefix+format, args...)
}

// serveHTTP dispatches one API call.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	// Headers are assigned with canonical keys, skipping Header.Set's
	// canonicalization on this hot path.
	w.Header()["X-Amzn-Requestid"] = []string{s.requestID()}
	if r.Method != http.MethodPost {
		s.writeError(w, &apiError{status: http.StatusMethodNotAllowed, code: codeUnknownOperation,
			message: "only POST is supported"})
		return
	}
	target := r.Header.Get("X-Amz-Target")
	op, ok := strings.CutPrefix(target, targetPrefix)
	if !ok {
		s.writeError(w, badRequest(codeUnknownOperation, "unknown operation %q", target))
		return
	}
	if d := s.opts.Latency; d > 0 && ctxtime.Sleep(r.Context(), d) != nil {
		return // the client is gone
	}

	in := s.bodies.Get().(*bytes.Buffer)
	in.Reset()
	defer s.bodies.Put(in)
	if _, err := in.ReadFrom(http.MaxBytesReader(w, r.Body, maxRequestBody)); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.writeError(w, &apiError{status: http.StatusRequestEntityTooLarge, code: codeRequestEntityTooBig,
				message: fmt.Sprintf("request body larger than %d bytes", maxRequestBody)})
			return
		}
		s.writeError(w, badRequest(codeSerialization, "read request body: %v", err))
		return
	}
	body := in.Bytes()

	rp := s.responses.Get().(*[]byte)
	out := (*rp)[:0]
	var resp []byte
	var err *apiError
	switch op {
	case "PutRecords":
		resp, err = s.putRecords(body, out)
	case "PutRecord":
		resp, err = s.putRecord(body, out)
	case "ListShards":
		resp, err = s.listShards(body, out)
	case "DescribeStreamSummary":
		resp, err = s.describeStreamSummary(body, out)
	case "CreateStream":
		resp, err = s.createStream(body)
	case "DeleteStream":
		resp, err = s.deleteStream(body)
	case "UpdateMaxRecordSize":
		resp, err = s.updateMaxRecordSize(body)
	case "SplitShard":
		resp, err = s.splitShard(body)
	case "MergeShards":
		resp, err = s.mergeShards(body)
	case "GetShardIterator":
		resp, err = s.getShardIterator(body, out)
	case "GetRecords":
		resp, err = s.getRecords(body, out)
	default:
		err = badRequest(codeUnknownOperation, "operation %s is not supported by this endpoint", op)
	}
	if cap(resp) <= 1<<20 { // keep a grown buffer for later responses
		*rp = resp[:0]
	}
	defer s.responses.Put(rp)
	if err != nil {
		s.writeError(w, err)
		return
	}
	h := w.Header()
	h["Content-Type"] = []string{contentType}
	h["Content-Length"] = []string{strconv.Itoa(len(resp))}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(resp)
}

// requestID returns the next request id.
func (s *Server) requestID() string {
	return "ls-" + strconv.FormatUint(s.ids.Add(1), 10)
}

// writeError sends an error the way the service does: the code in the
// X-Amzn-ErrorType header and as "__type" in the body, with "message".
func (s *Server) writeError(w http.ResponseWriter, e *apiError) {
	b := make([]byte, 0, 64+len(e.message))
	b = append(b, `{"__type":`...)
	b = appendString(b, e.code)
	b = append(b, `,"message":`...)
	b = appendString(b, e.message)
	b = append(b, '}')
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("X-Amzn-ErrorType", e.code)
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(e.status)
	_, _ = w.Write(b)
}

// decode unmarshals a request body; an empty body is an empty object.
func decode(body []byte, v any) *apiError {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return badRequest(codeSerialization, "cannot decode request: %v", err)
	}
	return nil
}

// blob is a base64 JSON string whose decoded length is computed without
// decoding it: load tests need sizes, not bytes. The SDK sends standard,
// padded base64; the characters are not checked (KeepData decodes them).
type blob struct {
	n   int  // decoded length
	set bool // present and not null
}

// UnmarshalJSON implements json.Unmarshaler.
func (b *blob) UnmarshalJSON(raw []byte) error {
	if string(raw) == "null" {
		*b = blob{}
		return nil
	}
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return errors.New("blob is not a base64 string")
	}
	s := raw[1 : len(raw)-1]
	if bytes.IndexByte(s, '\\') >= 0 { // escaped characters: unquote first
		var str string
		if err := json.Unmarshal(raw, &str); err != nil {
			return err
		}
		s = []byte(str)
	}
	n, ok := base64Len(s)
	if !ok {
		return fmt.Errorf("blob has %d base64 characters, not a multiple of 4", len(s))
	}
	*b = blob{n: n, set: true}
	return nil
}

// base64Len returns the decoded length of padded standard base64 text, or
// false when its length is not a multiple of 4.
func base64Len(s []byte) (int, bool) {
	if len(s)%4 != 0 {
		return 0, false
	}
	n := len(s) / 4 * 3
	if len(s) > 0 && s[len(s)-1] == '=' {
		n--
		if s[len(s)-2] == '=' {
			n--
		}
	}
	return n, true
}

// streamRef is the stream identifier of a request.
type streamRef struct {
	StreamName *string
	StreamARN  *string
}

// name returns the stream name the request identifies.
func (r streamRef) name() (string, *apiError) {
	if r.StreamName != nil {
		return *r.StreamName, nil
	}
	if r.StreamARN != nil {
		if _, name, ok := strings.Cut(*r.StreamARN, ":stream/"); ok && name != "" {
			return name, nil
		}
		return "", badRequest(codeInvalidArgument, "invalid StreamARN %q", *r.StreamARN)
	}
	return "", badRequest(codeInvalidArgument, streamIdentifierRequired)
}

// lookup resolves the stream, ResourceNotFoundException when missing.
func (s *Server) lookup(ref streamRef) (*stream, *apiError) {
	name, err := ref.name()
	if err != nil {
		return nil, err
	}
	st := s.stream(name)
	if st == nil {
		return nil, s.notFound(name)
	}
	return st, nil
}

// notFound is the service's error for a missing stream.
func (s *Server) notFound(name string) *apiError {
	return badRequest(codeResourceNotFound, "Stream %s under account %s not found.", name, s.opts.AccountID)
}

// throttledMessage is the service's per-record and PutRecord throttling text.
func (s *Server) throttledMessage(st *stream, sh *shard) string {
	return "Rate exceeded for shard " + sh.id + " in stream " + st.name + " under account " + s.opts.AccountID + "."
}

// memberPath is the member path prefix of error messages: "" for
// PutRecord (index < 0), "records.N.member." for PutRecords entry index.
func memberPath(index int) string {
	if index < 0 {
		return ""
	}
	return "records." + strconv.Itoa(index+1) + ".member."
}

// entryCheck validates one record (data, partition key, explicit hash key)
// and returns its hash key and size (data plus partition key). index is the
// entry's position in PutRecords, -1 for PutRecord. It allocates only for
// errors.
// maxSize is the stream's record size limit.
func (s *Server) entryCheck(data blob, pk, ehk *string, index, maxSize int) (hashKey, int, *apiError) {
	if !data.set {
		return hashKey{}, 0, validation("Value null at '%sdata' failed to satisfy constraint: Member must not be null", memberPath(index))
	}
	if data.n > maxSize {
		return hashKey{}, 0, validation("Value at '%sdata' failed to satisfy constraint: Member must have length less than or equal to %d", memberPath(index), maxSize)
	}
	if pk == nil {
		return hashKey{}, 0, validation("Value null at '%spartitionKey' failed to satisfy constraint: Member must not be null", memberPath(index))
	}
	if *pk == "" {
		return hashKey{}, 0, validation("Value '' at '%spartitionKey' failed to satisfy constraint: Member must have length greater than or equal to 1", memberPath(index))
	}
	// Bytes >= characters: count characters only for long keys.
	if len(*pk) > MaxPartitionKeyLength && utf8.RuneCountInString(*pk) > MaxPartitionKeyLength {
		return hashKey{}, 0, validation("Value at '%spartitionKey' failed to satisfy constraint: Member must have length less than or equal to %d", memberPath(index), MaxPartitionKeyLength)
	}
	var k hashKey
	if ehk != nil {
		var err error
		k, err = parseExplicitHashKey(*ehk)
		switch {
		case errors.Is(err, errHashKeyForm):
			return hashKey{}, 0, validation("Value '%s' at '%sexplicitHashKey' failed to satisfy constraint: Member must satisfy regular expression pattern: 0|([1-9]\\d{0,38})", *ehk, memberPath(index))
		case err != nil:
			return hashKey{}, 0, badRequest(codeInvalidArgument, "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was %s", *ehk)
		}
	} else {
		k = partitionKeyHash(*pk)
	}
	size := data.n + len(*pk)
	if size > maxSize {
		return hashKey{}, 0, badRequest(codeInvalidArgument,
			"Record size (data %d bytes + partition key %d bytes) exceeds the limit of %d bytes", data.n, len(*pk), maxSize)
	}
	return k, size, nil
}

// putRecordsInput is the PutRecords request.
type putRecordsInput struct {
	streamRef
	Records []putRecordsEntry
}

// putRecordsEntry is one PutRecords entry.
type putRecordsEntry struct {
	Data            blob
	PartitionKey    *string
	ExplicitHashKey *string
}

// keptInput decodes the data of a request's records when KeepData is on.
type keptInput struct {
	Records []keptEntry
	keptEntry
}

// keptEntry is a record with its data decoded.
type keptEntry struct {
	Data            []byte
	PartitionKey    string
	ExplicitHashKey string
}

// routed is a validated entry: its shard and sizes.
type routed struct {
	shard   *shard
	size    int
	dataLen int
}

// putRecords implements PutRecords: whole-request validation, then each
// entry admitted or throttled by its shard's buckets.
func (s *Server) putRecords(body, out []byte) ([]byte, *apiError) {
	var in putRecordsInput
	if err := decodePutRecords(body, &in); err != nil {
		return nil, err
	}
	st, lerr := s.lookup(in.streamRef)
	if st != nil {
		st.putRecordsCalls.Add(1)
	}
	reject := func(e *apiError) ([]byte, *apiError) {
		if st != nil {
			st.rejectedCalls.Add(1)
		}
		return nil, e
	}
	n := len(in.Records)
	if n == 0 {
		return reject(validation("Value '[]' at 'records' failed to satisfy constraint: Member must have length greater than or equal to 1"))
	}
	if n > s.opts.MaxRecordsPerCall {
		return reject(validation("Value at 'records' failed to satisfy constraint: Member must have length less than or equal to %d", s.opts.MaxRecordsPerCall))
	}
	if lerr != nil {
		return nil, lerr
	}
	st.mu.RLock() // no reshard between routing and admission
	defer st.mu.RUnlock()
	rp := s.routes.Get().(*[]routed)
	defer s.routes.Put(rp)
	routes := (*rp)[:0]
	total := 0
	for i := range in.Records {
		e := &in.Records[i]
		k, size, err := s.entryCheck(e.Data, e.PartitionKey, e.ExplicitHashKey, i, st.maxRecordSize)
		if err != nil {
			return reject(err)
		}
		total += size
		routes = append(routes, routed{shard: st.route(k), size: size, dataLen: e.Data.n})
	}
	*rp = routes[:0]
	if total > st.maxCallBytes {
		return reject(badRequest(codeInvalidArgument, "Records size exceeds %d MB limit", st.maxCallBytes>>20))
	}
	var kept []keptEntry
	if s.opts.KeepData {
		var k keptInput
		if err := decode(body, &k); err != nil {
			return reject(err)
		}
		kept = k.Records
	}

	st.putRecordsEntries.Add(uint64(n))
	now := s.opts.Clock.Now()
	failed := 0
	b := append(out, `{"Records":[`...)
	for i, rt := range routes {
		if i > 0 {
			b = append(b, ',')
		}
		var keep *Record
		if kept != nil {
			keep = &Record{PartitionKey: kept[i].PartitionKey, ExplicitHashKey: kept[i].ExplicitHashKey, Data: kept[i].Data}
		}
		seq, ok := rt.shard.put(now, rt.size, rt.dataLen, keep)
		if !ok {
			failed++
			b = append(b, `{"ErrorCode":"`+codeThroughputExceeded+`","ErrorMessage":`...)
			b = appendString(b, s.throttledMessage(st, rt.shard))
			b = append(b, '}')
			continue
		}
		b = append(b, `{"SequenceNumber":"`...)
		b = appendSequence(b, rt.shard.index, seq)
		b = append(b, `","ShardId":"`...)
		b = append(b, rt.shard.id...)
		b = append(b, `"}`...)
	}
	if failed > 0 {
		st.throttledCalls.Add(1)
	}
	b = append(b, `],"FailedRecordCount":`...)
	b = strconv.AppendInt(b, int64(failed), 10)
	b = append(b, `,"EncryptionType":"NONE"}`...)
	return b, nil
}

// putRecordInput is the PutRecord request.
type putRecordInput struct {
	streamRef
	Data            blob
	PartitionKey    *string
	ExplicitHashKey *string
}

// putRecord implements PutRecord; a throttled record fails the call with
// ProvisionedThroughputExceededException.
func (s *Server) putRecord(body, out []byte) ([]byte, *apiError) {
	var in putRecordInput
	if err := decodePutRecord(body, &in); err != nil {
		return nil, err
	}
	st, lerr := s.lookup(in.streamRef)
	maxSize := s.opts.MaxRecordSize
	if st != nil {
		st.putRecordCalls.Add(1)
		st.mu.RLock() // no reshard between routing and admission
		defer st.mu.RUnlock()
		maxSize = st.maxRecordSize
	}
	k, size, err := s.entryCheck(in.Data, in.PartitionKey, in.ExplicitHashKey, -1, maxSize)
	if err != nil {
		if st != nil {
			st.rejectedCalls.Add(1)
		}
		return nil, err
	}
	if lerr != nil {
		return nil, lerr
	}
	var keep *Record
	if s.opts.KeepData {
		var k keptInput
		if err := decode(body, &k); err != nil {
			st.rejectedCalls.Add(1)
			return nil, err
		}
		keep = &Record{PartitionKey: k.PartitionKey, ExplicitHashKey: k.ExplicitHashKey, Data: k.Data}
	}
	sh := st.route(k)
	seq, ok := sh.put(s.opts.Clock.Now(), size, in.Data.n, keep)
	if !ok {
		st.throttledCalls.Add(1)
		return nil, badRequest(codeThroughputExceeded, "%s", s.throttledMessage(st, sh))
	}
	b := append(out, `{"SequenceNumber":"`...)
	b = appendSequence(b, sh.index, seq)
	b = append(b, `","ShardId":"`...)
	b = append(b, sh.id...)
	b = append(b, `","EncryptionType":"NONE"}`...)
	return b, nil
}

// appendSequence appends sequenceNumber(shardIndex, n) without allocating.
func appendSequence(b []byte, shardIndex int, n uint64) []byte {
	start := len(b)
	b = append(b, "000000000000000000000000000"...)
	b[start], b[start+1] = '4', '9'
	putPadded(b[start+2:start+7], uint64(shardIndex))
	putPadded(b[start+7:], n)
	return b
}

// listShardsInput is the ListShards request. Every matching shard is
// returned in one page; MaxResults is ignored.
type listShardsInput struct {
	streamRef
	NextToken             *string
	ExclusiveStartShardId *string
	ShardFilter           *struct {
		Type    string
		ShardId *string
	}
}

// listShards implements ListShards: every shard in creation order, closed
// ones with their EndingSequenceNumber, children with their parents. The
// filter AT_LATEST keeps the open shards, AFTER_SHARD_ID (like
// ExclusiveStartShardId) the shards created after the one named; the other
// filter types keep every shard, since nothing expires here.
func (s *Server) listShards(body, out []byte) ([]byte, *apiError) {
	var in listShardsInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if in.NextToken != nil && (in.StreamName != nil || in.StreamARN != nil) {
		return nil, badRequest(codeInvalidArgument, "NextToken and StreamName or StreamARN cannot be provided together.")
	}
	if in.NextToken != nil {
		return nil, badRequest("ExpiredNextTokenException", "this endpoint returns every shard in one page and issues no NextToken")
	}
	st, err := s.lookup(in.streamRef)
	if err != nil {
		return nil, err
	}
	after := ""
	if in.ExclusiveStartShardId != nil {
		after = *in.ExclusiveStartShardId
	}
	openOnly := false
	if f := in.ShardFilter; f != nil {
		switch f.Type {
		case "AT_LATEST":
			openOnly = true
		case "AFTER_SHARD_ID":
			if f.ShardId == nil {
				return nil, badRequest(codeInvalidArgument, "ShardFilter AFTER_SHARD_ID needs a ShardId")
			}
			after = *f.ShardId
		case "AT_TRIM_HORIZON", "FROM_TRIM_HORIZON", "AT_TIMESTAMP", "FROM_TIMESTAMP":
		default:
			return nil, validation("Value '%s' at 'shardFilter.type' failed to satisfy constraint: Member must satisfy enum value set", f.Type)
		}
	}
	st.mu.RLock()
	shards := st.shards
	st.mu.RUnlock()
	b := append(out, `{"Shards":[`...)
	first := true
	for _, sh := range shards {
		sh.mu.Lock()
		closed, last := sh.closed, sh.seq
		sh.mu.Unlock()
		if (openOnly && closed) || (after != "" && sh.id <= after) {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, `{"ShardId":"`...)
		b = append(b, sh.id...)
		if sh.parent != "" {
			b = append(b, `","ParentShardId":"`...)
			b = append(b, sh.parent...)
		}
		if sh.adjacent != "" {
			b = append(b, `","AdjacentParentShardId":"`...)
			b = append(b, sh.adjacent...)
		}
		b = append(b, `","HashKeyRange":{"StartingHashKey":"`...)
		b = append(b, sh.start.String()...)
		b = append(b, `","EndingHashKey":"`...)
		b = append(b, sh.end.String()...)
		b = append(b, `"},"SequenceNumberRange":{"StartingSequenceNumber":"`...)
		b = append(b, sh.startSeq...)
		if closed {
			b = append(b, `","EndingSequenceNumber":"`...)
			b = appendSequence(b, sh.index, last)
		}
		b = append(b, `"}}`...)
	}
	b = append(b, `]}`...)
	return b, nil
}

// describeStreamSummary implements DescribeStreamSummary.
func (s *Server) describeStreamSummary(body, out []byte) ([]byte, *apiError) {
	var in streamRef
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	st, err := s.lookup(in)
	if err != nil {
		return nil, err
	}
	b := append(out, `{"StreamDescriptionSummary":{"StreamName":`...)
	b = appendString(b, st.name)
	b = append(b, `,"StreamARN":`...)
	b = appendString(b, st.arn)
	b = append(b, `,"StreamStatus":"ACTIVE","StreamModeDetails":{"StreamMode":"PROVISIONED"},"RetentionPeriodHours":24,"StreamCreationTimestamp":`...)
	b = strconv.AppendFloat(b, float64(st.created.UnixMilli())/1000, 'f', 3, 64)
	st.mu.RLock()
	open, maxSize := len(st.open), st.maxRecordSize
	st.mu.RUnlock()
	b = append(b, `,"EnhancedMonitoring":[{"ShardLevelMetrics":[]}],"EncryptionType":"NONE","OpenShardCount":`...)
	b = strconv.AppendInt(b, int64(open), 10)
	b = append(b, `,"MaxRecordSizeInKiB":`...)
	b = strconv.AppendInt(b, int64(maxSize>>10), 10)
	b = append(b, `,"ConsumerCount":0}}`...)
	return b, nil
}

// createStreamInput is the CreateStream request.
type createStreamInput struct {
	StreamName         *string
	ShardCount         *int
	StreamModeDetails  *struct{ StreamMode string }
	MaxRecordSizeInKiB *int
}

// createStream implements CreateStream; the stream is ACTIVE at once.
func (s *Server) createStream(body []byte) ([]byte, *apiError) {
	var in createStreamInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if in.StreamName == nil {
		return nil, validation("Value null at 'streamName' failed to satisfy constraint: Member must not be null")
	}
	shards := DefaultOnDemandShards
	if in.ShardCount != nil {
		shards = *in.ShardCount
	} else if in.StreamModeDetails == nil || in.StreamModeDetails.StreamMode != "ON_DEMAND" {
		return nil, badRequest(codeInvalidArgument, "ShardCount is required for a PROVISIONED stream")
	}
	maxSize := s.opts.MaxRecordSize
	if k := in.MaxRecordSizeInKiB; k != nil {
		if *k < MinMaxRecordSizeKiB || *k > MaxMaxRecordSizeKiB {
			return nil, validation("Value '%d' at 'maxRecordSizeInKiB' failed to satisfy constraint: Member must have value between %d and %d", *k, MinMaxRecordSizeKiB, MaxMaxRecordSizeKiB)
		}
		maxSize = *k << 10
	}
	if err := s.createStreamSized(*in.StreamName, shards, maxSize); err != nil {
		if errors.Is(err, ErrStreamExists) {
			return nil, badRequest(codeResourceInUse, "Stream %s under account %s already exists.", *in.StreamName, s.opts.AccountID)
		}
		return nil, badRequest(codeInvalidArgument, "%v", err)
	}
	return []byte("{}"), nil
}

// deleteStream implements DeleteStream; the stream is gone at once.
func (s *Server) deleteStream(body []byte) ([]byte, *apiError) {
	var in streamRef
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	name, err := in.name()
	if err != nil {
		return nil, err
	}
	if s.DeleteStream(name) != nil {
		return nil, s.notFound(name)
	}
	return []byte("{}"), nil
}

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
