package spool

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/kplgo/kpl/aggregation"
)

// Entry is one record handed out by Next. Resolve it exactly once with Ack,
// DeadLetter or Return; later calls are ignored.
type Entry struct {
	// Record is the record as appended, with its id.
	Record aggregation.Record
	// Deliveries counts how often this process has handed the record out,
	// this time included.
	Deliveries int

	seg      *segment
	index    uint32
	resolved atomic.Bool
}

// DeadLetterRecord is one line of the dead-letter file: a record that failed
// for a reason retrying cannot fix, and why.
type DeadLetterRecord struct {
	// Time is when the record was dead-lettered.
	Time time.Time `json:"time"`
	// PartitionKey is the record's partition key.
	PartitionKey string `json:"partition_key"`
	// ExplicitHashKey is its explicit hash key, if any.
	ExplicitHashKey string `json:"explicit_hash_key,omitempty"`
	// Data is its data (base64 in the file).
	Data []byte `json:"data"`
	// PID and Seq are its id, if any.
	PID string `json:"pid,omitempty"`
	Seq uint64 `json:"seq,omitempty"`
	// Attempts is the number of sending attempts of the last delivery.
	Attempts int `json:"attempts"`
	// Deliveries is how often the record was handed out.
	Deliveries int `json:"deliveries"`
	// Code is the error code, e.g. "InvalidArgumentException".
	Code string `json:"code"`
	// Message is the error message.
	Message string `json:"message,omitempty"`
}

// Next returns the next record to deliver: a returned one first, else the
// next durable record on disk in append order (records a previous process
// left come first). It blocks until there is one or ctx ends, and returns
// ErrClosed after Close, and the spool's error once a write failed (the
// results of what it handed out could not be recorded). Records wait on
// disk, not in memory: only the entries handed out and not yet resolved
// are held.
func (s *Spool) Next(ctx context.Context) (*Entry, error) {
	for {
		if err := s.stopErr(); err != nil {
			return nil, err
		}
		ch := s.wakeChan()
		s.rmu.Lock()
		if len(s.redo) > 0 {
			e := s.redo[0]
			s.redo[0] = nil
			s.redo = s.redo[1:]
			s.rmu.Unlock()
			e.Deliveries++
			e.resolved.Store(false)
			return e, nil
		}
		e, err := s.readLocked()
		s.rmu.Unlock()
		if e != nil || err != nil {
			return e, err
		}
		select {
		case <-ch:
		case <-s.failedCh:
		case <-s.closedCh:
			return nil, ErrClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// stopErr returns ErrClosed after Close, else the spool's error once a
// write failed, else nil.
func (s *Spool) stopErr() error {
	select {
	case <-s.closedCh:
		return ErrClosed
	default:
	}
	select {
	case <-s.failedCh:
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.failed
	default:
		return nil
	}
}

const readChunk = 256 << 10

// readLocked decodes the next unresolved durable record, or returns nil when
// there is none yet.
func (s *Spool) readLocked() (*Entry, error) {
	for {
		select {
		case <-s.closedCh:
			return nil, ErrClosed
		default:
		}
		g := s.rseg
		if g == nil {
			s.mu.Lock()
			for _, x := range s.segs {
				if !s.rdone || x.base > s.rlast {
					g = x
					break
				}
			}
			s.mu.Unlock()
			if g == nil || g.size.Load() == 0 {
				return nil, nil // none, or its file is not created yet
			}
			f, err := os.Open(g.path)
			if err != nil {
				return nil, fmt.Errorf("spool: read: %w", err)
			}
			s.rseg, s.rf, s.roff, s.rbuf = g, f, int64(len(segmentMagic)), nil
			continue
		}
		fr, n, err := decodeFrame(s.rbuf)
		if err != nil {
			return nil, s.readFailed(fmt.Errorf("%w in %s at offset %d", err, g.path, s.roff-int64(len(s.rbuf))))
		}
		if n > 0 {
			s.rbuf = s.rbuf[n:]
			if g.recovered && g.ackedBefore(fr.index) {
				continue
			}
			if g.recovered {
				s.st.replayed.Add(1)
			}
			return s.entry(g, &fr), nil
		}
		sealed := g.sealed.Load() // before size: once sealed, size is final
		size := g.size.Load()
		if s.roff < size {
			if err := s.fill(size); err != nil {
				return nil, s.readFailed(err)
			}
			continue
		}
		if sealed {
			if len(s.rbuf) > 0 {
				return nil, s.readFailed(fmt.Errorf("%w: %d bytes at the end of %s", errFrame, len(s.rbuf), g.path))
			}
			_ = s.rf.Close()
			s.rf, s.rseg, s.rlast, s.rdone = nil, nil, g.base, true
			continue
		}
		return nil, nil
	}
}

// fill reads more of the current segment, up to size.
func (s *Spool) fill(size int64) error {
	need := readChunk
	if len(s.rbuf) >= frameHeader {
		if l := int(uint32(s.rbuf[0]) | uint32(s.rbuf[1])<<8 | uint32(s.rbuf[2])<<16 | uint32(s.rbuf[3])<<24); frameHeader+l > need {
			need = frameHeader + l
		}
	}
	if cap(s.rmem) < need+len(s.rbuf) {
		s.rmem = make([]byte, need+len(s.rbuf))
	}
	m := copy(s.rmem[:cap(s.rmem)], s.rbuf)
	want := int64(cap(s.rmem) - m)
	if left := size - s.roff; left < want {
		want = left
	}
	k, err := s.rf.ReadAt(s.rmem[m:m+int(want)], s.roff)
	if err != nil && (err != io.EOF || k < int(want)) {
		return fmt.Errorf("spool: read %s: %w", s.rseg.path, err)
	}
	s.roff += int64(k)
	s.rbuf = s.rmem[:m+k]
	return nil
}

// readFailed stops the spool on damage found while running: the files
// changed under it. Reopening recovers the good records.
func (s *Spool) readFailed(err error) error {
	s.mu.Lock()
	if s.failed == nil {
		s.failLocked(fmt.Errorf("spool: %w", err))
		s.log.Warnf("spool: %v; reopen the spool to recover", err)
	}
	err = s.failed
	s.mu.Unlock()
	return err
}

// Entries and small records' data are carved out of slabs, which saves
// two allocations per record; a slab lives while any entry or data in it
// does, a few tens of KiB per straggler at most.
const (
	entrySlab = 128
	dataSlab  = 32 << 10
	dataSmall = 2 << 10 // larger data gets its own allocation
)

// entry builds the entry of a decoded frame, copying its bytes.
func (s *Spool) entry(g *segment, f *frame) *Entry {
	if len(s.eslab) == 0 {
		s.eslab = make([]Entry, entrySlab)
	}
	e := &s.eslab[0]
	s.eslab = s.eslab[1:]
	e.seg, e.index, e.Deliveries = g, f.index, 1
	e.Record.PartitionKey = s.intern(f.pk)
	if len(f.ehk) > 0 {
		e.Record.ExplicitHashKey = string(f.ehk)
	}
	if n := len(f.data); n > dataSmall {
		e.Record.Data = append([]byte(nil), f.data...)
	} else {
		if cap(s.dslab)-len(s.dslab) < n {
			s.dslab = make([]byte, 0, dataSlab)
		}
		at := len(s.dslab)
		s.dslab = append(s.dslab, f.data...)
		e.Record.Data = s.dslab[at:len(s.dslab):len(s.dslab)]
	}
	if f.flags&flagID != 0 {
		e.Record.ID.Seq = f.seq
		if f.flags&flagPID != 0 {
			e.Record.ID.PID = string(f.pid)
		} else {
			e.Record.ID.PID = s.pid
		}
	}
	return e
}

// intern returns a shared string for a partition key: most streams have few.
func (s *Spool) intern(b []byte) string {
	if k, ok := s.keys[string(b)]; ok {
		return k
	}
	k := string(b)
	if len(s.keys) >= 4096 {
		clear(s.keys)
	}
	s.keys[k] = k
	return k
}

// Ack resolves e as delivered: it is removed from the spool (its segment is
// deleted once every record in it is resolved). After Close it does nothing
// (the next Open hands e out again) and is not counted. It does not block.
func (s *Spool) Ack(e *Entry) {
	if !e.resolved.CompareAndSwap(false, true) {
		return
	}
	s.mu.Lock()
	resolved := s.resolveLocked(e)
	s.mu.Unlock()
	if resolved {
		s.st.acked.Add(1)
	}
}

// DeadLetter resolves e as failed for good: a DeadLetterRecord line is
// written to the dead-letter file (fsynced before the record leaves the
// spool) and the record is removed. The line is written with the next
// commit, within Options.SyncInterval. attempts is the number of sending
// attempts of this delivery. After Close it returns ErrClosed and e stays
// in the spool, for the next Open. It does not block.
func (s *Spool) DeadLetter(e *Entry, code, message string, attempts int) error {
	if !e.resolved.CompareAndSwap(false, true) {
		return nil
	}
	line, err := json.Marshal(DeadLetterRecord{
		Time:            time.Now().UTC(),
		PartitionKey:    e.Record.PartitionKey,
		ExplicitHashKey: e.Record.ExplicitHashKey,
		Data:            e.Record.Data,
		PID:             e.Record.ID.PID,
		Seq:             e.Record.ID.Seq,
		Attempts:        attempts,
		Deliveries:      e.Deliveries,
		Code:            code,
		Message:         message,
	})
	if err != nil {
		e.resolved.Store(false)
		return err
	}
	s.mu.Lock()
	if s.closed { // no line can be written now: the next Open hands e out again
		s.mu.Unlock()
		e.resolved.Store(false)
		return ErrClosed
	}
	s.dead = append(append(s.dead, line...), '\n')
	s.resolveLocked(e)
	s.mu.Unlock()
	s.st.deadLettered.Add(1)
	return nil
}

// Return gives e back unresolved: Next hands it out again, before records
// not handed out yet. Use it for a failure that retrying can fix (the
// record expired in the producer, the producer closed). It does not block.
func (s *Spool) Return(e *Entry) {
	if !e.resolved.CompareAndSwap(false, true) {
		return
	}
	s.rmu.Lock()
	s.redo = append(s.redo, e)
	s.rmu.Unlock()
	s.st.returned.Add(1)
	s.wake()
}

// resolveLocked removes e from the spool; after Close it does nothing and
// returns false: the next Open hands e out again.
func (s *Spool) resolveLocked(e *Entry) bool {
	if s.closed {
		return false
	}
	g := e.seg
	g.acked++
	s.pending--
	if len(s.acks) == 0 {
		s.signal(s.kick)
	}
	s.acks = append(s.acks, ackRef{g, e.index})
	if g == s.active && g.acked == g.total && s.usedLocked()+s.opts.SegmentSize > s.opts.MaxBytes {
		s.rollLocked() // near the limit: let the resolved segment go
	}
	s.maybeDeleteLocked(g)
	return true
}
