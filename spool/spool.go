package spool

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kplgo/kpl/aggregation"
)

// Spool is a durable queue of user records in a directory. Appenders add
// records (Append, AppendBatch), which return once the records are on disk;
// a consumer takes them in order (Next) and resolves each one (Ack,
// DeadLetter, or Return to have it handed out again). A Spool is safe for
// concurrent use. Create it with Open and stop it with Close.
type Spool struct {
	dir      string
	opts     Options
	log      Logger
	pid      string
	lock     *os.File
	deadPath string

	mu       sync.Mutex
	closed   bool
	failed   error      // a write error: the spool takes no more records; set by failLocked
	segs     []*segment // live segments by base; the last may be active
	active   *segment   // the segment taking appends; nil until the next append
	nextBase uint64     // ordinal of the next record appended
	pend     *batch     // the batch being filled
	noBatch  *batch     // a committed empty batch, for calls that appended nothing
	disk     int64      // bytes of segment and ack files, buffered ones included
	nextSeq  uint64
	seqLimit uint64
	bufPool  [][]byte // buffers of committed batches, for reuse
	acks     []ackRef // acknowledgements waiting for the committer
	dead     []byte   // dead-letter lines waiting for the committer
	toDelete []*segment
	spaceCh  chan struct{} // closed and replaced when space is freed
	pending  int64         // records on disk not yet resolved
	// ackOwed counts the records on disk whose acknowledgement is not
	// written yet (resolved or not): each may still add an entry of
	// ackEntrySize bytes to its segment's ack file, and admission keeps
	// room for them under MaxBytes.
	ackOwed int64
	marks   []mark // a committed batch's marks, for reuse

	deadSynced bool // owned by the committer: the dead-letter file's directory is fsynced

	kick     chan struct{} // capacity 1: the committer has work
	full     chan struct{} // capacity 1: the batch holds SyncRecords records
	stop     chan struct{} // closed by Close: the committer commits and exits
	stopped  chan struct{} // closed when the committer has exited
	closedCh chan struct{} // closed when Close begins
	failedCh chan struct{} // closed when failed is set
	once     sync.Once
	abandon  atomic.Bool // tests: the committer exits without a last commit, as if killed

	// The reader, guarded by rmu.
	rmu   sync.Mutex
	rseg  *segment // the segment being read
	rf    *os.File
	roff  int64  // file offset of the end of rbuf
	rbuf  []byte // bytes read and not yet decoded
	rmem  []byte // backing of rbuf
	rlast uint64 // base of the last segment read to its end; rdone tells whether set
	rdone bool
	redo  []*Entry // returned entries, handed out again before new ones
	keys  map[string]string
	eslab []Entry // see entry
	dslab []byte

	wakeMu sync.Mutex
	wakeCh chan struct{} // closed and replaced when records become readable

	st        counters
	commitLat latencyHistogram // recorded by the committer
}

// segment is one segment file and its bookkeeping.
type segment struct {
	base      uint64 // ordinal of its first record; also its file name
	path      string
	ackPath   string
	recovered bool     // found by Open
	ackedBits []uint64 // recovered: records resolved before Open, by index

	// Owned by the committer.
	f    *os.File
	ackf *os.File

	// Guarded by Spool.mu.
	total    int    // records appended, buffered ones included
	next     uint32 // index of the next record appended
	bytes    int64  // bytes of the file, buffered ones included
	ackBytes int64
	acked    int  // records resolved
	rolled   bool // takes no more appends
	deleting bool

	// Published by the committer after fsync; read by the reader.
	size   atomic.Int64 // durable bytes
	sealed atomic.Bool  // size is final
}

// closeFiles closes the files the committer has open for g.
func (g *segment) closeFiles() error {
	var err error
	if g.f != nil {
		err = g.f.Close()
		g.f = nil
	}
	if g.ackf != nil {
		err = errors.Join(err, g.ackf.Close())
		g.ackf = nil
	}
	return err
}

func (g *segment) ackedBefore(i uint32) bool {
	w := int(i / 64)
	return w < len(g.ackedBits) && g.ackedBits[w]&(1<<(i%64)) != 0
}

// batch is the records of one commit.
type batch struct {
	chunks []chunk
	seal   []*segment // segments rolled: close them once this batch is durable
	recs   int
	bytes  int
	first  time.Time
	marks  []mark // the append calls of its records, for CommitLatency
	done   chan struct{}
	err    error
}

// chunk is bytes for one segment file, in buffers of the spool's pool.
type chunk struct {
	seg    *segment
	bufs   [][]byte
	create bool
	end    int64 // the segment's size after this chunk
}

// bufSize is the size of the buffers that batches are encoded into.
const bufSize = 256 << 10

// spaceLocked returns a buffer of c with room for n more bytes.
func (s *Spool) spaceLocked(c *chunk, n int) *[]byte {
	if k := len(c.bufs); k > 0 && cap(c.bufs[k-1])-len(c.bufs[k-1]) >= n {
		return &c.bufs[k-1]
	}
	var b []byte
	if k := len(s.bufPool); k > 0 && n <= bufSize {
		b = s.bufPool[k-1][:0]
		s.bufPool = s.bufPool[:k-1]
	} else {
		b = make([]byte, 0, max(n, bufSize))
	}
	c.bufs = append(c.bufs, b)
	return &c.bufs[len(c.bufs)-1]
}

type ackRef struct {
	seg   *segment
	index uint32
}

func newBatch() *batch { return &batch{done: make(chan struct{})} }

// Open opens the spool in dir, creating the directory if needed, and
// recovers what a previous process left: the records not resolved are
// handed out by Next, in order, before any new record. Damaged bytes are
// moved aside into files named <segment>.corrupt and counted in
// Stats.CorruptBytes. Only one process may open a directory at a time
// (ErrLocked). Recovery reads every segment; ctx bounds it.
func Open(ctx context.Context, dir string, optFns ...func(*Options)) (*Spool, error) {
	opts := defaultOptions()
	for _, fn := range optFns {
		fn(&opts)
	}
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if _, err := mkdirDurable(dir); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if p := opts.DeadLetterPath; p != "" {
		// Found now rather than by the first dead letter, whose failed
		// write would stop the spool.
		fi, err := os.Stat(filepath.Dir(p))
		if err == nil && !fi.IsDir() {
			err = errors.New("not a directory")
		}
		if err != nil {
			return nil, fmt.Errorf("spool: DeadLetterPath %s: %w", p, err)
		}
	}
	lock, err := lockDir(filepath.Join(dir, lockName))
	if err != nil {
		return nil, err
	}
	s := &Spool{
		dir:      dir,
		opts:     opts,
		log:      opts.Logger,
		lock:     lock,
		deadPath: opts.DeadLetterPath,
		pend:     newBatch(),
		noBatch:  newBatch(),
		spaceCh:  make(chan struct{}),
		kick:     make(chan struct{}, 1),
		full:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		stopped:  make(chan struct{}),
		closedCh: make(chan struct{}),
		failedCh: make(chan struct{}),
		wakeCh:   make(chan struct{}),
		keys:     make(map[string]string),
	}
	close(s.noBatch.done)
	if s.log == nil {
		s.log = nopLogger{}
	}
	if s.deadPath == "" {
		s.deadPath = filepath.Join(dir, deadName)
	}
	m, err := loadMeta(dir)
	if err == nil {
		s.pid = m.PID
		s.nextSeq = m.SeqLimit
		s.seqLimit = m.SeqLimit + seqBlock
		m.SeqLimit = s.seqLimit
		err = writeMeta(dir, m)
	}
	if err == nil {
		err = s.recover(ctx)
	}
	if err != nil {
		_ = lock.Close()
		return nil, err
	}
	go s.run()
	return s, nil
}

// ProducerID returns the spool's producer id, which AssignIDs puts on
// records; it is kept in the directory and stays the same across restarts.
func (s *Spool) ProducerID() string { return s.pid }

// DeadLetterPath returns the file that DeadLetter appends to.
func (s *Spool) DeadLetterPath() string { return s.deadPath }

// Append adds one record and returns once it is durable (see
// Options.SyncInterval and Options.NoSync), with the id it carries: its own,
// or one the spool assigned (Options.AssignIDs). At Options.MaxBytes it
// blocks or returns ErrFull, as Options.WhenFull says. It returns ErrClosed
// after Close, ErrTooLarge for a record that cannot be stored, ErrInvalidID
// for an id whose PID is not lower-case hex of 32 to 128 digits, and ctx's
// error when ctx ends first; the record may then still become durable and
// be delivered. The spool keeps no reference to r.Data.
func (s *Spool) Append(ctx context.Context, r aggregation.Record) (aggregation.RecordID, error) {
	recs := [1]aggregation.Record{r}
	_, err := s.AppendBatch(ctx, recs[:])
	return recs[0].ID, err
}

// AppendBatch adds records in order, and returns once they are durable,
// sharing one commit. It stores the id of each record into recs[i].ID. n is
// the number of records accepted; when err is not nil, the records from n
// on were not (ErrFull, ErrClosed, ErrTooLarge, ErrInvalidID, ctx's error while blocked at
// the limit), and the first n are durable unless err is ctx's error, in
// which case they may still become durable. It blocks like Append.
func (s *Spool) AppendBatch(ctx context.Context, recs []aggregation.Record) (n int, err error) {
	n, c, err := s.AppendAsync(ctx, recs)
	if werr := c.Wait(ctx); err == nil {
		err = werr
	}
	return n, err
}

// AppendAsync is AppendBatch without waiting for durability: it returns
// once the records are in the batch of a commit to come, with that Commit
// to wait for. It blocks only at Options.MaxBytes (see Options.WhenFull) or
// while more than 16 MiB wait for their commit. A caller that does not wait
// must not tell anyone that the records are safe.
func (s *Spool) AppendAsync(ctx context.Context, recs []aggregation.Record) (n int, c *Commit, err error) {
	var last *batch
	// This call's start and its records in pend so far, moved into
	// pend.marks (flushMarkLocked) before mu is released: held by the
	// call, since another call may append while this one waits.
	m := mark{start: time.Now()}
	s.mu.Lock()
	blocked := false
	for n < len(recs) && err == nil {
		r := &recs[n]
		if !r.ID.IsZero() && !validPID(r.ID.PID) {
			err = fmt.Errorf("%w: pid %q", ErrInvalidID, r.ID.PID)
			break
		}
		assigned := s.opts.AssignIDs && r.ID.IsZero()
		var sz int64
		for {
			if assigned {
				r.ID = aggregation.RecordID{PID: s.pid, Seq: s.nextSeq}
			}
			sz = int64(frameSize(r, s.pid))
			if err = s.admitLocked(ctx, sz, &m, &blocked); err != nil || !assigned || r.ID.Seq == s.nextSeq {
				break
			}
			// Another call took that sequence number while this one waited
			// (admitLocked released mu): take the next free one, and admit
			// its frame, which may be a byte longer.
		}
		if err != nil {
			if assigned {
				r.ID = aggregation.RecordID{}
			}
			break
		}
		if assigned {
			if s.nextSeq == s.seqLimit {
				if err = s.reserveSeqLocked(); err != nil {
					r.ID = aggregation.RecordID{}
					break
				}
			}
			s.nextSeq++
		}
		last = s.appendLocked(r, sz)
		m.n++
		n++
	}
	s.flushMarkLocked(&m)
	s.mu.Unlock()
	if last == nil {
		last = s.noBatch
	}
	return n, &Commit{last}, err
}

// flushMarkLocked notes the records of the append call in progress that
// are in the pending batch, before mu is released and the batch may be
// committed.
func (s *Spool) flushMarkLocked(m *mark) {
	if m.n > 0 {
		s.pend.marks = append(s.pend.marks, *m)
		m.n = 0
	}
}

// Commit is the durability of records appended by one AppendAsync call. It
// is safe for concurrent use.
type Commit struct{ b *batch }

// Done returns a channel closed once the records are durable or their
// commit failed (see Err). It does not block.
func (c *Commit) Done() <-chan struct{} { return c.b.done }

// Err returns the commit's error once Done is closed: nil when the records
// are durable.
func (c *Commit) Err() error {
	select {
	case <-c.b.done:
		return c.b.err
	default:
		return nil
	}
}

// Wait blocks until the records are durable, their commit failed, or ctx
// ends, and returns the error.
func (c *Commit) Wait(ctx context.Context) error {
	select {
	case <-c.Done():
		return c.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// usedLocked returns what counts against MaxBytes: the files, and the
// acknowledgement entries the records on disk may still add to them.
func (s *Spool) usedLocked() int64 { return s.disk + ackEntrySize*s.ackOwed }

// admitLocked waits until a frame of sz bytes (and its acknowledgement
// entry) may be appended.
func (s *Spool) admitLocked(ctx context.Context, sz int64, m *mark, blocked *bool) error {
	for {
		switch {
		case s.closed:
			return ErrClosed
		case s.failed != nil:
			return s.failed
		case sz > maxPayload+frameHeader || sz+int64(len(segmentMagic)) > s.opts.MaxBytes/2:
			return fmt.Errorf("%w: frame of %d bytes", ErrTooLarge, sz)
		}
		if s.pend.bytes >= maxPending {
			// The committer is behind: wait for the batch to be written.
			ch := s.pend.done
			s.signal(s.full)
			s.flushMarkLocked(m)
			s.mu.Unlock()
			err := wait(ctx, ch, nil, nil)
			s.mu.Lock()
			if err != nil {
				return err
			}
			continue
		}
		if s.usedLocked()+ackEntrySize+sz+int64(len(segmentMagic)) <= s.opts.MaxBytes {
			return nil
		}
		if a := s.active; a != nil && a.total > 0 && a.acked == a.total {
			s.rollLocked() // fully resolved: let it be deleted
		}
		if s.opts.WhenFull == Refuse {
			s.st.refused.Add(1)
			return ErrFull
		}
		if !*blocked {
			*blocked = true
			s.st.blocked.Add(1)
		}
		ch := s.spaceCh
		s.flushMarkLocked(m)
		s.mu.Unlock()
		err := wait(ctx, ch, s.closedCh, s.failedCh) // a failed spool frees no space
		s.mu.Lock()
		if err != nil {
			return err
		}
	}
}

// wait waits for ch, ctx or (when not nil) closed or failed.
func wait(ctx context.Context, ch, closed, failed <-chan struct{}) error {
	select {
	case <-ch:
		return nil
	case <-closed:
		return nil
	case <-failed:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// reserveSeqLocked writes the next block of sequence numbers to the meta
// file before any of them is used.
func (s *Spool) reserveSeqLocked() error {
	m := meta{Version: metaVersion, PID: s.pid, SeqLimit: s.seqLimit + seqBlock}
	if err := writeMeta(s.dir, m); err != nil {
		return fmt.Errorf("spool: reserve sequence numbers: %w", err)
	}
	s.seqLimit = m.SeqLimit
	return nil
}

// appendLocked encodes r into the pending batch and returns the batch.
func (s *Spool) appendLocked(r *aggregation.Record, sz int64) *batch {
	b := s.pend
	a := s.active
	if a != nil && a.total > 0 && a.bytes+sz > s.opts.SegmentSize {
		s.rollLocked()
		a = nil
	}
	var c *chunk
	if a == nil {
		a = &segment{base: s.nextBase}
		a.path = filepath.Join(s.dir, segName(a.base))
		a.ackPath = a.path[:len(a.path)-len(segExt)] + ackExt
		a.bytes = int64(len(segmentMagic))
		s.disk += a.bytes
		s.segs = append(s.segs, a)
		s.active = a
		b.chunks = append(b.chunks, chunk{seg: a, create: true})
		hb := s.spaceLocked(&b.chunks[len(b.chunks)-1], len(segmentMagic))
		*hb = append(*hb, segmentMagic...)
		b.bytes += len(segmentMagic)
	}
	if n := len(b.chunks); n > 0 && b.chunks[n-1].seg == a {
		c = &b.chunks[n-1]
	} else {
		b.chunks = append(b.chunks, chunk{seg: a})
		c = &b.chunks[len(b.chunks)-1]
	}
	buf := s.spaceLocked(c, int(sz))
	*buf = appendFrame(*buf, a.next, r, s.pid)
	a.next++
	a.total++
	a.bytes += sz
	c.end = a.bytes
	s.disk += sz
	s.nextBase++
	s.pending++
	s.ackOwed++
	b.bytes += int(sz)
	b.recs++
	s.st.appended.Add(1)
	if b.recs == 1 {
		b.first = time.Now()
		s.signal(s.kick)
	}
	if b.recs == s.opts.SyncRecords {
		s.signal(s.full)
	}
	return b
}

// rollLocked stops appends to the active segment; the committer closes it
// once its bytes are durable.
func (s *Spool) rollLocked() {
	a := s.active
	a.rolled = true
	s.active = nil
	s.pend.seal = append(s.pend.seal, a)
	s.signal(s.kick)
}

func segName(base uint64) string { return fmt.Sprintf("%020d%s", base, segExt) }

func (s *Spool) signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// run is the committer: it writes and fsyncs batches, acknowledgements and
// dead letters, and deletes resolved segments.
func (s *Spool) run() {
	defer close(s.stopped)
	var timer *time.Timer
	for {
		select {
		case <-s.kick:
		case <-s.stop:
			if !s.abandon.Load() {
				s.commit()
			}
			return
		}
		s.mu.Lock()
		first, recs := s.pend.first, s.pend.recs
		s.mu.Unlock()
		if recs < s.opts.SyncRecords {
			d := s.opts.SyncInterval
			if recs > 0 {
				d -= time.Since(first)
			}
			if d > 0 {
				if timer == nil {
					timer = time.NewTimer(d)
				} else {
					timer.Reset(d)
				}
				select {
				case <-timer.C:
				case <-s.full:
					if !timer.Stop() {
						<-timer.C
					}
				case <-s.stop:
					if !s.abandon.Load() {
						s.commit()
					}
					return
				}
			}
		}
		s.commit()
	}
}

// commit writes everything pending.
func (s *Spool) commit() {
	s.mu.Lock()
	b := s.pend
	s.pend = newBatch()
	s.pend.marks, s.marks = s.marks, nil
	acks, dead, dels := s.acks, s.dead, s.toDelete
	s.acks, s.dead, s.toDelete = nil, nil, nil
	owedDone := int64(len(acks)) // written below, or needing no writing
	err := s.failed
	// Acknowledgements of segments about to be deleted need no writing.
	kept := acks[:0]
	for _, a := range acks {
		if !a.seg.deleting {
			kept = append(kept, a)
		}
	}
	acks = kept
	s.mu.Unlock()
	select {
	case <-s.full: // this commit takes the full batch
	default:
	}

	// Dead-letter lines first: deleting a segment removes the records
	// dead-lettered in it.
	if err == nil && len(dead) > 0 {
		err = s.writeDead(dead)
	}
	var freed int64
	if err == nil {
		freed = s.deleteSegments(dels)
	} else {
		for _, g := range dels { // kept on disk for the next Open
			_ = g.closeFiles()
		}
	}
	if err == nil && b.recs+len(b.chunks) > 0 {
		err = s.writeBatch(b)
	}
	durable := time.Now() // the batch's records are durable now, unless err
	var ackBytes map[*segment]int64
	if err == nil && len(acks) > 0 {
		ackBytes, err = s.writeAcks(acks)
	}
	if err == nil {
		for _, g := range b.seal {
			if g.f != nil {
				err = errors.Join(err, g.f.Close())
				g.f = nil
			}
			g.sealed.Store(true)
		}
	}

	s.mu.Lock()
	if err != nil && s.failed == nil {
		s.failLocked(fmt.Errorf("spool: %w", err))
		s.log.Warnf("spool: write failed, taking no more records: %v", err)
	}
	b.err = s.failed
	if b.err == nil {
		s.st.durable.Add(uint64(b.recs))
		for _, m := range b.marks { // a failed commit's records are not counted
			s.commitLat.observe(durable.Sub(m.start), m.n)
		}
	} else {
		// Their appends fail with b.err: the records are not the spool's
		// to deliver (Next never hands them out), so not pending either.
		// Bytes that reached the disk may still be recovered by the next
		// Open.
		s.pending -= int64(b.recs)
	}
	var written int64
	for g, n := range ackBytes {
		g.ackBytes += n
		written += n
	}
	s.disk += written - freed
	s.ackOwed -= owedDone
	// Space comes back when segments go, and when acknowledgements took
	// less than the room kept for them (ranges of several records).
	if freed > 0 || ackEntrySize*owedDone > written {
		close(s.spaceCh)
		s.spaceCh = make(chan struct{})
	}
	for _, g := range b.seal {
		s.maybeDeleteLocked(g)
	}
	for i := range b.chunks {
		for _, buf := range b.chunks[i].bufs {
			if cap(buf) == bufSize && len(s.bufPool) < maxPending/bufSize {
				s.bufPool = append(s.bufPool, buf)
			}
		}
		b.chunks[i].bufs = nil
	}
	if s.marks == nil {
		s.marks = b.marks[:0]
	}
	b.marks = nil
	more := s.pend.recs > 0 || len(s.acks) > 0 || len(s.toDelete) > 0 || len(s.dead) > 0
	s.mu.Unlock()
	close(b.done)
	if b.recs > 0 || len(b.seal) > 0 {
		s.wake()
	}
	if more {
		s.signal(s.kick)
	}
}

// writeBatch writes a batch's chunks and makes them durable.
func (s *Spool) writeBatch(b *batch) error {
	var touched []*segment
	created := false
	for i := range b.chunks {
		c := &b.chunks[i]
		g := c.seg
		if c.create {
			// A new segment has no acknowledgements: an ack file left
			// under its name belonged to an earlier segment of that name.
			if err := os.Remove(g.ackPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			f, err := os.OpenFile(g.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			if err != nil {
				return err
			}
			g.f = f
			created = true
		}
		if g.f == nil {
			return fmt.Errorf("segment %s is not open for writing", g.path)
		}
		for _, buf := range c.bufs {
			if _, err := g.f.Write(buf); err != nil {
				return err
			}
		}
		if len(touched) == 0 || touched[len(touched)-1] != g {
			touched = append(touched, g)
		}
	}
	if !s.opts.NoSync {
		for _, g := range touched {
			if err := g.f.Sync(); err != nil {
				return err
			}
			s.st.fsyncs.Add(1)
		}
		if created {
			if err := s.syncDir(s.dir); err != nil {
				return err
			}
		}
	}
	for i := range b.chunks {
		c := &b.chunks[i]
		c.seg.size.Store(c.end)
	}
	return nil
}

// writeAcks appends acknowledgement ranges to the segments' ack files. They
// are not fsynced (Close does): an acknowledgement lost in a machine crash
// only means the record is delivered once more.
func (s *Spool) writeAcks(acks []ackRef) (map[*segment]int64, error) {
	cmpAck := func(a, b ackRef) int {
		if c := cmp.Compare(a.seg.base, b.seg.base); c != 0 {
			return c
		}
		return cmp.Compare(a.index, b.index)
	}
	if !slices.IsSortedFunc(acks, cmpAck) {
		slices.SortFunc(acks, cmpAck)
	}
	written := make(map[*segment]int64)
	var buf []byte
	for i := 0; i < len(acks); {
		g := acks[i].seg
		buf = buf[:0]
		j := i
		for j < len(acks) && acks[j].seg == g {
			first := acks[j].index
			n := uint32(1)
			j++
			for j < len(acks) && acks[j].seg == g && acks[j].index == first+n {
				n++
				j++
			}
			buf = appendAck(buf, ackRange{first, n})
		}
		i = j
		if g.ackf == nil {
			f, err := os.OpenFile(g.ackPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
			if err != nil {
				return written, err
			}
			g.ackf = f
		}
		if _, err := g.ackf.Write(buf); err != nil {
			return written, err
		}
		written[g] += int64(len(buf))
	}
	return written, nil
}

// writeDead appends dead-letter lines and fsyncs them: they are written
// before the acknowledgements that remove the records from the spool. The
// first write of a process also fsyncs the file's directory, which holds
// the file's name when the write created it.
func (s *Spool) writeDead(b []byte) error {
	f, err := os.OpenFile(s.deadPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if _, err = f.Write(b); err == nil && !s.opts.NoSync {
		err = f.Sync()
		s.st.fsyncs.Add(1)
		if err == nil && !s.deadSynced {
			err = s.syncDir(filepath.Dir(s.deadPath))
			s.deadSynced = err == nil
		}
	}
	return errors.Join(err, f.Close())
}

// syncDir fsyncs a directory, counting it.
func (s *Spool) syncDir(dir string) error {
	s.st.dirSyncs.Add(1)
	return syncDir(dir)
}

// deleteSegments removes resolved segments and returns the bytes freed.
func (s *Spool) deleteSegments(dels []*segment) int64 {
	var freed int64
	for _, g := range dels {
		_ = g.closeFiles()
		if err := os.Remove(g.path); err != nil && !os.IsNotExist(err) {
			s.log.Warnf("spool: remove %s: %v", g.path, err)
		}
		if err := os.Remove(g.ackPath); err != nil && !os.IsNotExist(err) {
			s.log.Warnf("spool: remove %s: %v", g.ackPath, err)
		}
		s.mu.Lock()
		freed += g.bytes + g.ackBytes
		s.mu.Unlock()
	}
	return freed
}

// maybeDeleteLocked queues g for deletion once it takes no more appends, its
// bytes are final, and every record in it is resolved.
func (s *Spool) maybeDeleteLocked(g *segment) {
	if g.deleting || !g.rolled || !g.sealed.Load() || g.acked != g.total {
		return
	}
	g.deleting = true
	for i, x := range s.segs {
		if x == g {
			s.segs = append(s.segs[:i], s.segs[i+1:]...)
			break
		}
	}
	s.toDelete = append(s.toDelete, g)
	s.signal(s.kick)
}

// failLocked stops the spool for good: appends and Next return err.
func (s *Spool) failLocked(err error) {
	s.failed = err
	close(s.failedCh)
}

// wake tells Next that records may be readable.
func (s *Spool) wake() {
	s.wakeMu.Lock()
	close(s.wakeCh)
	s.wakeCh = make(chan struct{})
	s.wakeMu.Unlock()
}

func (s *Spool) wakeChan() <-chan struct{} {
	s.wakeMu.Lock()
	defer s.wakeMu.Unlock()
	return s.wakeCh
}

// Close commits what is pending, writes and fsyncs the acknowledgements and
// the directory, and closes the files. Append and Next return ErrClosed once
// Close has begun; entries still handed out stay unresolved and are handed
// out again by the next Open. Close is idempotent.
func (s *Spool) Close() error { return s.shutdown(false) }

// shutdown stops the committer and closes the files. With kill (tests) it
// leaves the directory as a killed process would: no last commit, no fsync,
// no deletion.
func (s *Spool) shutdown(kill bool) error {
	var err error
	s.once.Do(func() {
		s.abandon.Store(kill)
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.closedCh)
		close(s.stop)
		<-s.stopped
		s.mu.Lock()
		err = s.failed
		dels := s.toDelete
		s.toDelete = nil
		segs := append([]*segment(nil), s.segs...)
		s.mu.Unlock()
		if err == nil && !kill {
			s.deleteSegments(dels)
		} else {
			segs = append(segs, dels...)
		}
		sync := !kill && !s.opts.NoSync
		for _, g := range segs {
			if g.ackf != nil && sync {
				err = errors.Join(err, g.ackf.Sync())
			}
			err = errors.Join(err, g.closeFiles())
		}
		if sync {
			// The names of ack files created and of segments deleted
			// since the last fsync of the directory.
			err = errors.Join(err, s.syncDir(s.dir))
		}
		s.rmu.Lock()
		if s.rf != nil {
			_ = s.rf.Close()
			s.rf = nil
		}
		s.rmu.Unlock()
		err = errors.Join(err, s.lock.Close())
	})
	return err
}
