package spool

import (
	"fmt"
	"time"
)

// FullPolicy is what Append does when the spool holds Options.MaxBytes.
type FullPolicy int

const (
	// Block makes Append wait until acknowledged segments are deleted and
	// the record fits, or its context ends. The feed slows down to what the
	// stream takes; nothing is dropped by the spool.
	Block FullPolicy = iota
	// Refuse makes Append return ErrFull at once and count the record in
	// Stats.Refused; the caller decides what to do with it.
	Refuse
)

// String returns "block" or "refuse".
func (p FullPolicy) String() string {
	switch p {
	case Block:
		return "block"
	case Refuse:
		return "refuse"
	}
	return fmt.Sprintf("FullPolicy(%d)", int(p))
}

// Options configure a Spool. Open starts from the defaults documented on each
// field and applies the caller's option functions to them.
type Options struct {
	// SyncInterval is the longest a record waits for its batch to be written
	// and fsynced: a batch is committed when its first record is
	// SyncInterval old or it holds SyncRecords records, whichever comes
	// first, and commits never overlap, so under load one fsync covers
	// everything that arrived during the previous one. The default is 2ms.
	SyncInterval time.Duration
	// SyncRecords commits a batch early once it holds this many records.
	// The default is 8192.
	SyncRecords int
	// NoSync writes batches without fsync: Append returns once the record
	// is in the operating system's cache. Records then survive a crash of
	// the process but not of the machine. The default is false.
	NoSync bool
	// MaxBytes bounds the spool's files (segments and acknowledgements)
	// on disk; each record on disk keeps 12 bytes of it for the
	// acknowledgement entry it may need. The default is 1 GiB.
	MaxBytes int64
	// WhenFull is what Append does at MaxBytes. The default is Block.
	WhenFull FullPolicy
	// SegmentSize is the size at which a new segment file is started. A
	// segment is deleted once every record in it is resolved, so disk
	// space comes back in steps of SegmentSize. The default is 16 MiB, and
	// at most MaxBytes/4.
	SegmentSize int64
	// AssignIDs gives every appended record without an ID one from the
	// spool: its producer id (kept in the directory) and the next sequence
	// number, which continues across restarts. Records that carry an ID
	// keep it. The default is true.
	AssignIDs bool
	// DeadLetterPath is the file that records failed for good are appended
	// to, as JSON lines; its directory must exist. The default is
	// dead-letter.jsonl in the spool directory.
	DeadLetterPath string
	// Logger receives log lines (damage found, files moved aside); nil, the
	// default, is silent.
	Logger Logger
}

// Logger is the logging the spool does. A *logrus.Logger satisfies it.
type Logger interface {
	Infof(format string, args ...any)
	Warnf(format string, args ...any)
}

type nopLogger struct{}

func (nopLogger) Infof(string, ...any) {}
func (nopLogger) Warnf(string, ...any) {}

// seqBlock is how many sequence numbers one write of the meta file reserves.
const seqBlock = 1 << 20

// maxPending bounds the bytes waiting for a commit; appenders wait beyond it.
const maxPending = 16 << 20

func defaultOptions() Options {
	return Options{
		SyncInterval: 2 * time.Millisecond,
		SyncRecords:  8192,
		MaxBytes:     1 << 30,
		WhenFull:     Block,
		SegmentSize:  16 << 20,
		AssignIDs:    true,
	}
}

func (o *Options) validate() error {
	switch {
	case o.SyncInterval <= 0:
		return fmt.Errorf("spool: SyncInterval %v must be positive", o.SyncInterval)
	case o.SyncRecords <= 0:
		return fmt.Errorf("spool: SyncRecords %d must be positive", o.SyncRecords)
	case o.MaxBytes < 64<<10:
		return fmt.Errorf("spool: MaxBytes %d below 64 KiB", o.MaxBytes)
	case o.WhenFull != Block && o.WhenFull != Refuse:
		return fmt.Errorf("spool: unknown WhenFull %v", o.WhenFull)
	case o.SegmentSize < 4<<10:
		return fmt.Errorf("spool: SegmentSize %d below 4 KiB", o.SegmentSize)
	}
	if o.SegmentSize > o.MaxBytes/4 {
		o.SegmentSize = o.MaxBytes / 4
	}
	return nil
}
