package spool

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// recover loads the segments a previous process left, moves damaged bytes
// aside, and deletes what is fully resolved.
func (s *Spool) recover(ctx context.Context) error {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	var bases []uint64
	segs := make(map[uint64]bool)
	var acks []uint64
	for _, e := range ents {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, tmpExt):
			_ = os.Remove(filepath.Join(s.dir, name))
		case strings.HasSuffix(name, segExt):
			if b, ok := parseBase(name, segExt); ok {
				bases = append(bases, b)
				segs[b] = true
			}
		case strings.HasSuffix(name, ackExt):
			if b, ok := parseBase(name, ackExt); ok {
				acks = append(acks, b)
			}
		}
	}
	for _, b := range acks {
		if !segs[b] { // its segment was deleted before it
			_ = os.Remove(filepath.Join(s.dir, strings.TrimSuffix(segName(b), segExt)+ackExt))
		}
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	for _, b := range bases {
		if err := ctx.Err(); err != nil {
			return err
		}
		g, err := s.recoverSegment(b)
		if err != nil {
			return fmt.Errorf("spool: recover %s: %w", segName(b), err)
		}
		if b >= s.nextBase {
			s.nextBase = b + 1
		}
		if g == nil {
			continue
		}
		s.segs = append(s.segs, g)
		if end := g.base + uint64(g.next); end > s.nextBase {
			s.nextBase = end
		}
	}
	if n := s.st.recovered.Load(); n > 0 {
		s.log.Infof("spool: %d unresolved records in %d segments to replay", n, len(s.segs))
	}
	return syncDir(s.dir)
}

func parseBase(name, ext string) (uint64, bool) {
	digits := strings.TrimSuffix(name, ext)
	if len(digits) != 20 {
		return 0, false
	}
	b, err := strconv.ParseUint(digits, 10, 64)
	return b, err == nil
}

// recoverSegment scans one segment file. It returns nil when nothing in it
// is left to deliver (the files are then removed).
func (s *Spool) recoverSegment(base uint64) (*segment, error) {
	path := filepath.Join(s.dir, segName(base))
	ackPath := strings.TrimSuffix(path, segExt) + ackExt
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	res := scanSegment(b)
	if len(res.damaged) > 0 {
		var bad []byte
		for _, r := range res.damaged {
			bad = append(bad, b[r.off:r.off+r.n]...)
		}
		aside := strings.TrimSuffix(path, segExt) + corruptExt
		if err := appendDurable(aside, bad); err != nil {
			return nil, err
		}
		s.st.corrupt.Add(uint64(len(bad)))
		s.log.Warnf("spool: %s: %d damaged bytes in %d places moved to %s; %d good records kept",
			filepath.Base(path), len(bad), len(res.damaged), filepath.Base(aside), len(res.frames))
		if len(res.frames) > 0 {
			good := make([]byte, 0, len(b)-len(bad))
			good = append(good, segmentMagic...)
			for _, f := range res.frames {
				good = append(good, b[f.off:f.off+f.n]...)
			}
			if err := writeFileDurable(s.dir, filepath.Base(path), good); err != nil {
				return nil, err
			}
			b = good
		}
	}
	if len(res.frames) == 0 {
		return nil, removeSegmentFiles(path, ackPath)
	}
	maxIndex := res.frames[len(res.frames)-1].index
	bits := make([]uint64, maxIndex/64+1)
	ab, err := os.ReadFile(ackPath)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	ranges, badAck := decodeAcks(ab)
	if badAck > 0 {
		// Keep the good entries alone, so that new ones line up after
		// them and the damage is not counted again at the next Open; the
		// records of a damaged entry are delivered again.
		s.st.corrupt.Add(uint64(badAck))
		s.log.Warnf("spool: %s: %d damaged bytes of acknowledgements dropped; %d entries kept",
			filepath.Base(ackPath), badAck, len(ranges))
		good := make([]byte, 0, len(ranges)*ackEntrySize)
		for _, r := range ranges {
			good = appendAck(good, r)
		}
		if err := writeFileDurable(s.dir, filepath.Base(ackPath), good); err != nil {
			return nil, err
		}
		ab = good
	}
	for _, r := range ranges {
		end := uint64(r.first) + uint64(r.count)
		if end > uint64(maxIndex)+1 {
			end = uint64(maxIndex) + 1
		}
		for i := uint64(r.first); i < end; i++ {
			bits[i/64] |= 1 << (i % 64)
		}
	}
	g := &segment{
		base: base, path: path, ackPath: ackPath, recovered: true, ackedBits: bits,
		total: len(res.frames), next: maxIndex + 1, bytes: int64(len(b)),
		ackBytes: int64(len(ab)), rolled: true,
	}
	for _, f := range res.frames {
		if g.ackedBefore(f.index) {
			g.acked++
		}
	}
	if g.acked == g.total {
		return nil, removeSegmentFiles(path, ackPath)
	}
	g.size.Store(g.bytes)
	g.sealed.Store(true)
	left := int64(g.total - g.acked)
	s.pending += left
	s.ackOwed += left
	s.st.recovered.Add(uint64(left))
	s.disk += g.bytes + g.ackBytes
	return g, nil
}

func removeSegmentFiles(path, ackPath string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.Remove(ackPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// appendDurable appends b to the file at path and fsyncs it.
func appendDurable(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if _, err = f.Write(b); err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}
