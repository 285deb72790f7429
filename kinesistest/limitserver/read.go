package limitserver

import (
	"encoding/base64"
	"strconv"
	"strings"
	"time"
)

// Read limits of GetRecords.
const (
	// maxGetRecords is the most records one GetRecords call returns.
	maxGetRecords = 10000
	// maxGetRecordsBytes is the most data one GetRecords call returns
	// (at least one record is returned however large).
	maxGetRecordsBytes = 10 << 20
)

// iteratorPrefix starts every shard iterator this server issues.
const iteratorPrefix = "lsit1|"

// makeIterator encodes a position in a shard: the index of the next record
// in the shard's kept records.
func makeIterator(stream string, shardIndex, pos int) string {
	raw := iteratorPrefix + stream + "|" + strconv.Itoa(shardIndex) + "|" + strconv.Itoa(pos)
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// parseIterator decodes makeIterator's result.
func parseIterator(it string) (stream string, shardIndex, pos int, ok bool) {
	raw, err := base64.RawURLEncoding.DecodeString(it)
	if err != nil {
		return "", 0, 0, false
	}
	rest, found := strings.CutPrefix(string(raw), iteratorPrefix)
	if !found {
		return "", 0, 0, false
	}
	parts := strings.Split(rest, "|")
	if len(parts) != 3 {
		return "", 0, 0, false
	}
	si, err1 := strconv.Atoi(parts[1])
	p, err2 := strconv.Atoi(parts[2])
	if err1 != nil || err2 != nil || si < 0 || p < 0 {
		return "", 0, 0, false
	}
	return parts[0], si, p, true
}

// parseSequence returns the shard index and counter of a sequence number
// this server issued.
func parseSequence(seq string) (shardIndex int, n uint64, ok bool) {
	if len(seq) != 27 || seq[:2] != "49" {
		return 0, 0, false
	}
	si, err1 := strconv.Atoi(seq[2:7])
	v, err2 := strconv.ParseUint(seq[7:], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return si, v, true
}

// errNoData is the answer to reads when records are not kept.
func errNoData() *apiError {
	return badRequest(codeInvalidArgument, "this endpoint keeps no record data: set Options.KeepData to read records back")
}

// getShardIteratorInput is the GetShardIterator request.
type getShardIteratorInput struct {
	streamRef
	ShardId                *string
	ShardIteratorType      string
	StartingSequenceNumber *string
	Timestamp              *float64
}

// getShardIterator implements GetShardIterator for every iterator type.
// Iterators do not expire.
func (s *Server) getShardIterator(body, out []byte) ([]byte, *apiError) {
	var in getShardIteratorInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	st, err := s.lookup(in.streamRef)
	if err != nil {
		return nil, err
	}
	if !s.opts.KeepData {
		return nil, errNoData()
	}
	if in.ShardId == nil {
		return nil, validation("Value null at 'shardId' failed to satisfy constraint: Member must not be null")
	}
	sh := st.shardByID(*in.ShardId)
	if sh == nil {
		return nil, badRequest(codeResourceNotFound, "Shard %s in stream %s under account %s does not exist", *in.ShardId, st.name, s.opts.AccountID)
	}
	sh.mu.Lock()
	n := len(sh.kept)
	var pos int
	var aerr *apiError
	switch in.ShardIteratorType {
	case "TRIM_HORIZON":
		pos = 0
	case "LATEST":
		pos = n
	case "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER":
		seq := ""
		if in.StartingSequenceNumber != nil {
			seq = *in.StartingSequenceNumber
		}
		si, v, ok := parseSequence(seq)
		if !ok || si != sh.index {
			aerr = badRequest(codeInvalidArgument, "StartingSequenceNumber %s used in GetShardIterator on shard %s in stream %s under account %s is invalid.", seq, sh.id, st.name, s.opts.AccountID)
			break
		}
		pos = int(min(v, uint64(n))) // records carry counters 1..n
		if in.ShardIteratorType == "AT_SEQUENCE_NUMBER" && pos > 0 && v <= uint64(n) {
			pos--
		}
	case "AT_TIMESTAMP":
		if in.Timestamp == nil {
			aerr = badRequest(codeInvalidArgument, "Must specify timestampInMillis parameter for iterator of type AT_TIMESTAMP.")
			break
		}
		ts := time.UnixMilli(int64(*in.Timestamp * 1000))
		pos = n
		for i, r := range sh.kept {
			if !r.ArrivalTime.Before(ts) {
				pos = i
				break
			}
		}
	default:
		aerr = validation("Value '%s' at 'shardIteratorType' failed to satisfy constraint: Member must satisfy enum value set: [AFTER_SEQUENCE_NUMBER, AT_SEQUENCE_NUMBER, AT_TIMESTAMP, TRIM_HORIZON, LATEST]", in.ShardIteratorType)
	}
	sh.mu.Unlock()
	if aerr != nil {
		return nil, aerr
	}
	b := append(out, `{"ShardIterator":`...)
	b = appendString(b, makeIterator(st.name, sh.index, pos))
	return append(b, '}'), nil
}

// getRecordsInput is the GetRecords request.
type getRecordsInput struct {
	ShardIterator *string
	Limit         *int
}

// getRecords implements GetRecords: up to Limit records (10,000 at most)
// and 10 MiB from the iterator's position. At the end of a closed shard it
// returns no NextShardIterator and the shard's children. Read throughput
// is not limited.
func (s *Server) getRecords(body, out []byte) ([]byte, *apiError) {
	var in getRecordsInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if in.ShardIterator == nil {
		return nil, validation("Value null at 'shardIterator' failed to satisfy constraint: Member must not be null")
	}
	limit := maxGetRecords
	if in.Limit != nil {
		if *in.Limit < 1 || *in.Limit > maxGetRecords {
			return nil, validation("Value '%d' at 'limit' failed to satisfy constraint: Member must have value between 1 and %d", *in.Limit, maxGetRecords)
		}
		limit = *in.Limit
	}
	name, si, pos, ok := parseIterator(*in.ShardIterator)
	if !ok {
		return nil, badRequest(codeInvalidArgument, "Invalid ShardIterator.")
	}
	st := s.stream(name)
	if st == nil {
		return nil, s.notFound(name)
	}
	if !s.opts.KeepData {
		return nil, errNoData()
	}
	st.mu.RLock()
	if si >= len(st.shards) {
		st.mu.RUnlock()
		return nil, badRequest(codeInvalidArgument, "Invalid ShardIterator.")
	}
	sh := st.shards[si]
	var children []*shard
	for _, c := range st.shards[si+1:] {
		if c.parent == sh.id || c.adjacent == sh.id {
			children = append(children, c)
		}
	}
	st.mu.RUnlock()

	now := s.opts.Clock.Now()
	sh.mu.Lock()
	kept := sh.kept
	closed := sh.closed
	sh.mu.Unlock()
	pos = min(pos, len(kept))
	end, size := pos, 0
	for end < len(kept) && end-pos < limit {
		n := len(kept[end].Data)
		if end > pos && size+n > maxGetRecordsBytes {
			break
		}
		size += n
		end++
	}

	b := append(out, `{"Records":[`...)
	for i, r := range kept[pos:end] {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"SequenceNumber":"`...)
		b = append(b, r.SequenceNumber...)
		b = append(b, `","ApproximateArrivalTimestamp":`...)
		b = strconv.AppendFloat(b, float64(r.ArrivalTime.UnixMilli())/1000, 'f', 3, 64)
		b = append(b, `,"Data":"`...)
		b = base64.StdEncoding.AppendEncode(b, r.Data)
		b = append(b, `","PartitionKey":`...)
		b = appendString(b, r.PartitionKey)
		b = append(b, `,"EncryptionType":"NONE"}`...)
	}
	b = append(b, `],"MillisBehindLatest":`...)
	var behind int64
	if end < len(kept) {
		behind = max(1, now.Sub(kept[end].ArrivalTime).Milliseconds())
	}
	b = strconv.AppendInt(b, behind, 10)
	if closed && end == len(kept) {
		b = append(b, `,"ChildShards":[`...)
		for i, c := range children {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"ShardId":"`...)
			b = append(b, c.id...)
			b = append(b, `","ParentShards":["`...)
			b = append(b, c.parent...)
			if c.adjacent != "" {
				b = append(b, `","`...)
				b = append(b, c.adjacent...)
			}
			b = append(b, `"],"HashKeyRange":{"StartingHashKey":"`...)
			b = append(b, c.start.String()...)
			b = append(b, `","EndingHashKey":"`...)
			b = append(b, c.end.String()...)
			b = append(b, `"}}`...)
		}
		b = append(b, `]}`...)
		return b, nil
	}
	b = append(b, `,"NextShardIterator":`...)
	b = appendString(b, makeIterator(st.name, sh.index, end))
	return append(b, '}'), nil
}
