package spool

import "errors"

// ErrFull is returned by Append and AppendBatch when Options.WhenFull is
// Refuse and the record does not fit under Options.MaxBytes. The refusal is
// counted in Stats.Refused.
var ErrFull = errors.New("spool: full")

// ErrClosed is returned by Append, AppendBatch and Next after Close has
// begun.
var ErrClosed = errors.New("spool: closed")

// ErrLocked is returned by Open when another process holds the directory.
var ErrLocked = errors.New("spool: directory in use")

// ErrTooLarge is returned by Append and AppendBatch for a record whose frame
// cannot be stored (more than about 1 MiB of data and keys), or that alone
// exceeds Options.MaxBytes.
var ErrTooLarge = errors.New("spool: record too large")

// ErrInvalidID is returned by Append and AppendBatch for a record whose ID
// is not zero and whose PID is not lower-case hex of 32 to 128 digits.
var ErrInvalidID = errors.New("spool: invalid record id")
