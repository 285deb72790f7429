package limitserver

import (
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Record is an accepted record, kept when Options.KeepData is set.
type Record struct {
	ShardID         string
	SequenceNumber  string
	PartitionKey    string
	ExplicitHashKey string // as sent; "" when none
	Data            []byte
	ArrivalTime     time.Time // from Options.Clock
}

// ShardStats counts what one shard accepted and throttled.
type ShardStats struct {
	ShardID         string
	StartingHashKey string // decimal, inclusive
	EndingHashKey   string // decimal, inclusive
	// ParentShardID and AdjacentParentShardID name the shards this one was
	// split or merged from ("" for a shard of CreateStream).
	ParentShardID         string
	AdjacentParentShardID string
	// Closed is true once the shard was split or merged: it takes no more
	// records and is still read.
	Closed bool
	// Records and Bytes are the accepted Kinesis records and their data plus
	// partition key bytes (what the shard limits count); DataBytes is the
	// data alone (the payload).
	Records   uint64
	Bytes     uint64
	DataBytes uint64
	// Throttled counts records refused with
	// ProvisionedThroughputExceededException (PutRecords entries and
	// PutRecord calls); ThrottledBytes their data plus partition key bytes.
	Throttled      uint64
	ThrottledBytes uint64
}

// StreamStats is a snapshot of a stream's counters. Records, Bytes,
// DataBytes, Throttled and ThrottledBytes are the sums over Shards.
type StreamStats struct {
	Name string
	// Shards holds every shard, open and closed, in the order they were
	// created (CreateStream's in hash key order, then the children of each
	// SplitShard and MergeShards).
	Shards []ShardStats
	// MaxRecordSize is the stream's record size limit in bytes (data plus
	// partition key), as CreateStream or UpdateMaxRecordSize set it.
	MaxRecordSize int

	Records        uint64
	Bytes          uint64
	DataBytes      uint64
	Throttled      uint64
	ThrottledBytes uint64

	// PutRecordCalls and PutRecordsCalls count calls that named this stream,
	// whatever their outcome.
	PutRecordCalls  uint64
	PutRecordsCalls uint64
	// PutRecordsEntries counts entries of PutRecords calls that passed
	// validation (accepted plus throttled).
	PutRecordsEntries uint64
	// ThrottledCalls counts PutRecord calls answered with
	// ProvisionedThroughputExceededException plus PutRecords calls with at
	// least one throttled entry.
	ThrottledCalls uint64
	// RejectedCalls counts PutRecord and PutRecords calls rejected whole by
	// validation (ValidationException, InvalidArgumentException).
	RejectedCalls uint64
}

// stream is one stream: its shard layout, limits and counters.
type stream struct {
	name    string
	arn     string
	created time.Time

	// mu guards the layout and limits below. Writes hold it for reading
	// from routing to admission, so that a reshard never races a put into
	// the shard it closes.
	mu            sync.RWMutex
	shards        []*shard // every shard, by index (creation order)
	open          []*shard // the open shards, in hash key order
	maxRecordSize int      // data plus partition key, bytes
	maxCallBytes  int      // data plus partition keys of one PutRecords call

	putRecordCalls    atomic.Uint64
	putRecordsCalls   atomic.Uint64
	putRecordsEntries atomic.Uint64
	throttledCalls    atomic.Uint64
	rejectedCalls     atomic.Uint64
}

// shard is one shard: its hash key range, buckets and counters.
type shard struct {
	id       string
	index    int
	start    hashKey
	end      hashKey
	startSeq string
	parent   string // "" for a shard of CreateStream
	adjacent string // the second parent of a merged shard

	mu             sync.Mutex // guards everything below
	closed         bool       // split or merged: takes no more records
	bytes          bucket
	recs           bucket
	seq            uint64 // last sequence counter handed out
	records        uint64
	byteCount      uint64
	dataBytes      uint64
	throttled      uint64
	throttledBytes uint64
	kept           []Record // when Options.KeepData
}

// newStream builds a stream with n shards and full buckets, whose records
// may be up to maxRecordSize bytes.
func (s *Server) newStream(name string, n, maxRecordSize int) *stream {
	now := s.opts.Clock.Now()
	starts, ends := shardRanges(n)
	st := &stream{name: name, arn: s.arn(name), created: now}
	st.setMaxRecordSize(s, maxRecordSize)
	for i := range n {
		st.addShard(s, starts[i], ends[i], "", "", now)
	}
	return st
}

// addShard appends a new open shard with full buckets and inserts it into
// st.open at its place in hash key order. The caller holds st.mu when the
// stream is shared.
func (st *stream) addShard(s *Server, start, end hashKey, parent, adjacent string, now time.Time) *shard {
	i := len(st.shards)
	sh := &shard{
		id:       shardID(i),
		index:    i,
		start:    start,
		end:      end,
		startSeq: sequenceNumber(i, 0),
		parent:   parent,
		adjacent: adjacent,
		bytes:    newBucket(rate(s.opts.BytesPerSecond), s.opts.Burst, now),
		recs:     newBucket(rate(s.opts.RecordsPerSecond), s.opts.Burst, now),
	}
	sh.bytes.setCapacity(st.byteCapacity(s), true)
	st.shards = append(st.shards, sh)
	i, _ = slices.BinarySearchFunc(st.open, start, func(o *shard, k hashKey) int {
		if o.start.less(k) {
			return -1
		}
		return 1
	})
	st.open = slices.Insert(st.open, i, sh)
	return sh
}

// setMaxRecordSize sets the stream's record limit and the limits that
// follow from it: a stream taking records above 1 MiB takes PutRecords
// calls of up to 10 MiB and gives its shards' byte buckets the large-record
// burst. The caller holds st.mu or owns st.
func (st *stream) setMaxRecordSize(s *Server, n int) {
	st.maxRecordSize = n
	st.maxCallBytes = s.opts.MaxBytesPerCall
	if !s.callBytesSet && n > DefaultMaxRecordSize {
		st.maxCallBytes = DefaultMaxBytesPerLargeCall
	}
	c := st.byteCapacity(s)
	for _, sh := range st.open {
		sh.mu.Lock()
		sh.bytes.setCapacity(c, false)
		sh.mu.Unlock()
	}
}

// byteCapacity is the byte bucket capacity of the stream's shards: the
// options' burst, raised to Options.LargeRecordBurst when the stream takes
// records above 1 MiB.
func (st *stream) byteCapacity(s *Server) uint64 {
	c := scale(rate(s.opts.BytesPerSecond), s.opts.Burst)
	if st.maxRecordSize > DefaultMaxRecordSize && uint64(s.opts.LargeRecordBurst) > c {
		c = uint64(s.opts.LargeRecordBurst)
	}
	return c
}

// shardID formats the service's shard id, shardId-000000000000.
func shardID(i int) string {
	s := strconv.Itoa(i)
	return "shardId-" + "000000000000"[len(s):] + s
}

// sequenceNumber formats a shard's n-th sequence number: decimal, fixed
// width (27 digits), so numeric and string order agree and numbers grow per
// shard.
func sequenceNumber(shardIndex int, n uint64) string {
	var b [27]byte
	b[0], b[1] = '4', '9'
	putPadded(b[2:7], uint64(shardIndex))
	putPadded(b[7:], n)
	return string(b[:])
}

// putPadded writes v in decimal into dst, zero-padded on the left.
func putPadded(dst []byte, v uint64) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = byte('0' + v%10)
		v /= 10
	}
}

// route returns the open shard owning hash key k. The caller holds st.mu
// for reading.
func (st *stream) route(k hashKey) *shard {
	lo, hi := 0, len(st.open) // find the last shard whose start <= k
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if k.less(st.open[mid].start) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return st.open[lo]
}

// put admits one record of size bytes (data plus key) into sh at time now
// if both buckets allow it, counting the outcome. It returns the sequence
// counter and true, or false when throttled. keep, when not nil, is stored
// (with its sequence number) on success.
func (sh *shard) put(now time.Time, size, dataLen int, keep *Record) (uint64, bool) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.bytes.refill(now)
	sh.recs.refill(now)
	n := uint64(size)
	if !sh.bytes.has(n) || !sh.recs.has(1) {
		sh.throttled++
		sh.throttledBytes += n
		return 0, false
	}
	sh.bytes.take(n)
	sh.recs.take(1)
	sh.seq++
	sh.records++
	sh.byteCount += n
	sh.dataBytes += uint64(dataLen)
	if keep != nil {
		r := *keep
		r.ShardID = sh.id
		r.SequenceNumber = sequenceNumber(sh.index, sh.seq)
		r.ArrivalTime = now
		sh.kept = append(sh.kept, r)
	}
	return sh.seq, true
}

// stats snapshots the stream's counters.
func (st *stream) stats() StreamStats {
	st.mu.RLock()
	shards := st.shards
	maxRecordSize := st.maxRecordSize
	st.mu.RUnlock()
	out := StreamStats{
		Name:              st.name,
		Shards:            make([]ShardStats, len(shards)),
		MaxRecordSize:     maxRecordSize,
		PutRecordCalls:    st.putRecordCalls.Load(),
		PutRecordsCalls:   st.putRecordsCalls.Load(),
		PutRecordsEntries: st.putRecordsEntries.Load(),
		ThrottledCalls:    st.throttledCalls.Load(),
		RejectedCalls:     st.rejectedCalls.Load(),
	}
	for i, sh := range shards {
		sh.mu.Lock()
		ss := ShardStats{
			ShardID:               sh.id,
			ParentShardID:         sh.parent,
			AdjacentParentShardID: sh.adjacent,
			Closed:                sh.closed,
			Records:               sh.records,
			Bytes:                 sh.byteCount,
			DataBytes:             sh.dataBytes,
			Throttled:             sh.throttled,
			ThrottledBytes:        sh.throttledBytes,
		}
		sh.mu.Unlock()
		ss.StartingHashKey = sh.start.String()
		ss.EndingHashKey = sh.end.String()
		out.Shards[i] = ss
		out.Records += ss.Records
		out.Bytes += ss.Bytes
		out.DataBytes += ss.DataBytes
		out.Throttled += ss.Throttled
		out.ThrottledBytes += ss.ThrottledBytes
	}
	return out
}
