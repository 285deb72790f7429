package spool

import "sync/atomic"

// Stats is a snapshot of a spool's counters, taken by Spool.Stats. Counters
// only grow during one Open; DiskBytes, Segments and Pending are current
// values.
type Stats struct {
	// Appended counts records accepted by Append and AppendBatch.
	Appended uint64
	// Durable counts appended records whose batch was committed.
	Durable uint64
	// Acknowledged counts records resolved by Ack.
	Acknowledged uint64
	// DeadLettered counts records resolved by DeadLetter.
	DeadLettered uint64
	// Returned counts entries given back with Return (handed out again).
	Returned uint64
	// Recovered counts the unresolved records Open found on disk.
	Recovered uint64
	// Replayed counts recovered records handed out by Next.
	Replayed uint64
	// Refused counts records refused with ErrFull.
	Refused uint64
	// Blocked counts Append and AppendBatch calls that waited at MaxBytes.
	Blocked uint64
	// CorruptBytes counts damaged bytes found by Open (moved aside into
	// .corrupt files) and torn acknowledgement bytes.
	CorruptBytes uint64
	// Fsyncs counts fsync calls on segment and dead-letter files.
	Fsyncs uint64
	// DiskBytes is the size of the segment and acknowledgement files,
	// records waiting for their commit included.
	DiskBytes int64
	// UsedBytes is what counts against Options.MaxBytes: DiskBytes and
	// the 12 bytes kept for each acknowledgement entry the records on disk
	// may still need. The spool is full when a record does not fit in
	// MaxBytes - UsedBytes.
	UsedBytes int64
	// Segments is the number of segment files.
	Segments int
	// Pending is the number of records on disk not yet resolved (records
	// whose commit failed are not counted).
	Pending int64
}

type counters struct {
	appended, durable, acked, deadLettered, returned atomic.Uint64
	recovered, replayed, refused, blocked            atomic.Uint64
	corrupt, fsyncs                                  atomic.Uint64
	dirSyncs                                         atomic.Uint64 // by the committer and Close; not in Stats
}

// Stats returns a snapshot of the counters. It is safe to call concurrently
// with everything else.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	disk, used, segs, pending := s.disk, s.usedLocked(), len(s.segs)+len(s.toDelete), s.pending
	s.mu.Unlock()
	c := &s.st
	return Stats{
		Appended:     c.appended.Load(),
		Durable:      c.durable.Load(),
		Acknowledged: c.acked.Load(),
		DeadLettered: c.deadLettered.Load(),
		Returned:     c.returned.Load(),
		Recovered:    c.recovered.Load(),
		Replayed:     c.replayed.Load(),
		Refused:      c.refused.Load(),
		Blocked:      c.blocked.Load(),
		CorruptBytes: c.corrupt.Load(),
		Fsyncs:       c.fsyncs.Load(),
		DiskBytes:    disk,
		UsedBytes:    used,
		Segments:     segs,
		Pending:      pending,
	}
}
