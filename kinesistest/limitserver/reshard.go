package limitserver

import (
	"errors"
	"fmt"
	"slices"
)

// SplitShard splits an open shard of the stream in two at newStartingHashKey
// (decimal), as the service's SplitShard does but at once: the shard closes
// and two children, with the next shard ids, take its hash range, the
// first [start, newStartingHashKey-1] and the second [newStartingHashKey,
// end], each with full buckets. Errors wrap ErrStreamNotFound,
// ErrShardNotFound or ErrInvalidReshard.
func (s *Server) SplitShard(stream, shardID, newStartingHashKey string) error {
	st := s.stream(stream)
	if st == nil {
		return fmt.Errorf("%w: %s", ErrStreamNotFound, stream)
	}
	k, err := parseExplicitHashKey(newStartingHashKey)
	if err != nil {
		return fmt.Errorf("%w: new starting hash key %q: %v", ErrInvalidReshard, newStartingHashKey, err)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	parent, err := st.openShard(shardID)
	if err != nil {
		return err
	}
	if !parent.start.less(k) || parent.end.less(k) {
		return fmt.Errorf("%w: new starting hash key %s is not in (%s, %s] of shard %s",
			ErrInvalidReshard, newStartingHashKey, parent.start, parent.end, shardID)
	}
	st.close(parent)
	now := s.opts.Clock.Now()
	st.addShard(s, parent.start, k.minusOne(), parent.id, "", now)
	st.addShard(s, k, parent.end, parent.id, "", now)
	return nil
}

// MergeShards merges two open, adjacent shards of the stream, as the
// service's MergeShards does but at once: both close and one child, with
// the next shard id, takes their joint hash range, with full buckets. Its
// ParentShardId is shardID and its AdjacentParentShardId adjacentShardID.
// Errors wrap ErrStreamNotFound, ErrShardNotFound or ErrInvalidReshard.
func (s *Server) MergeShards(stream, shardID, adjacentShardID string) error {
	st := s.stream(stream)
	if st == nil {
		return fmt.Errorf("%w: %s", ErrStreamNotFound, stream)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	a, err := st.openShard(shardID)
	if err != nil {
		return err
	}
	b, err := st.openShard(adjacentShardID)
	if err != nil {
		return err
	}
	lo, hi := a, b
	if b.start.less(a.start) {
		lo, hi = b, a
	}
	if lo == hi || hi.start != lo.end.plusOne() {
		return fmt.Errorf("%w: shards %s and %s are not adjacent", ErrInvalidReshard, shardID, adjacentShardID)
	}
	st.close(a)
	st.close(b)
	st.addShard(s, lo.start, hi.end, a.id, b.id, s.opts.Clock.Now())
	return nil
}

// openShard returns the open shard with that id. The caller holds st.mu.
func (st *stream) openShard(id string) (*shard, error) {
	for _, sh := range st.shards {
		if sh.id != id {
			continue
		}
		if !slices.Contains(st.open, sh) {
			return nil, fmt.Errorf("%w: shard %s of stream %s is closed", ErrInvalidReshard, id, st.name)
		}
		return sh, nil
	}
	return nil, fmt.Errorf("%w: %s in stream %s", ErrShardNotFound, id, st.name)
}

// shardByID returns the shard with that id, open or closed, or nil.
func (st *stream) shardByID(id string) *shard {
	st.mu.RLock()
	defer st.mu.RUnlock()
	for _, sh := range st.shards {
		if sh.id == id {
			return sh
		}
	}
	return nil
}

// close closes an open shard. The caller holds st.mu.
func (st *stream) close(sh *shard) {
	sh.mu.Lock()
	sh.closed = true
	sh.mu.Unlock()
	st.open = slices.DeleteFunc(st.open, func(o *shard) bool { return o == sh })
}

// reshardError maps the direct API's errors for stream name to the
// service's.
func (s *Server) reshardError(name string, err error) *apiError {
	switch {
	case errors.Is(err, ErrStreamNotFound):
		return s.notFound(name)
	case errors.Is(err, ErrShardNotFound):
		return badRequest(codeResourceNotFound, "%v", err)
	default:
		return badRequest(codeInvalidArgument, "%v", err)
	}
}

// splitShardInput is the SplitShard request.
type splitShardInput struct {
	streamRef
	ShardToSplit       *string
	NewStartingHashKey *string
}

// splitShard implements SplitShard.
func (s *Server) splitShard(body []byte) ([]byte, *apiError) {
	var in splitShardInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	name, aerr := in.name()
	if aerr != nil {
		return nil, aerr
	}
	if in.ShardToSplit == nil || in.NewStartingHashKey == nil {
		return nil, validation("ShardToSplit and NewStartingHashKey must not be null")
	}
	if err := s.SplitShard(name, *in.ShardToSplit, *in.NewStartingHashKey); err != nil {
		return nil, s.reshardError(name, err)
	}
	return []byte("{}"), nil
}

// mergeShardsInput is the MergeShards request.
type mergeShardsInput struct {
	streamRef
	ShardToMerge         *string
	AdjacentShardToMerge *string
}

// mergeShards implements MergeShards.
func (s *Server) mergeShards(body []byte) ([]byte, *apiError) {
	var in mergeShardsInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	name, aerr := in.name()
	if aerr != nil {
		return nil, aerr
	}
	if in.ShardToMerge == nil || in.AdjacentShardToMerge == nil {
		return nil, validation("ShardToMerge and AdjacentShardToMerge must not be null")
	}
	if err := s.MergeShards(name, *in.ShardToMerge, *in.AdjacentShardToMerge); err != nil {
		return nil, s.reshardError(name, err)
	}
	return []byte("{}"), nil
}

// updateMaxRecordSizeInput is the UpdateMaxRecordSize request.
type updateMaxRecordSizeInput struct {
	streamRef
	MaxRecordSizeInKiB *int
}

// updateMaxRecordSize implements UpdateMaxRecordSize.
func (s *Server) updateMaxRecordSize(body []byte) ([]byte, *apiError) {
	var in updateMaxRecordSizeInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	name, aerr := in.name()
	if aerr != nil {
		return nil, aerr
	}
	if in.MaxRecordSizeInKiB == nil {
		return nil, validation("Value null at 'maxRecordSizeInKiB' failed to satisfy constraint: Member must not be null")
	}
	k := *in.MaxRecordSizeInKiB
	if k < MinMaxRecordSizeKiB || k > MaxMaxRecordSizeKiB {
		return nil, validation("Value '%d' at 'maxRecordSizeInKiB' failed to satisfy constraint: Member must have value between %d and %d", k, MinMaxRecordSizeKiB, MaxMaxRecordSizeKiB)
	}
	if err := s.UpdateMaxRecordSize(name, k); err != nil {
		return nil, s.notFound(name)
	}
	return []byte("{}"), nil
}
