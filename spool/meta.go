package spool

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// meta is the spool's own state, in the file metaName: the producer id and
// the end of the block of sequence numbers handed out so far. Sequence
// numbers below SeqLimit may have been used; a restart continues from
// SeqLimit, so no number is ever reused, even when the records that carried
// the last ones were torn or already deleted.
type meta struct {
	Version  int    `json:"version"`
	PID      string `json:"pid"`
	SeqLimit uint64 `json:"seq_limit"`
}

const (
	metaName    = "spool.json"
	lockName    = "LOCK"
	deadName    = "dead-letter.jsonl"
	segExt      = ".seg"
	ackExt      = ".ack"
	corruptExt  = ".corrupt"
	tmpExt      = ".tmp"
	metaVersion = 1
)

// loadMeta reads the meta file, or creates one with a new random producer
// id when the directory has none.
func loadMeta(dir string) (meta, error) {
	b, err := os.ReadFile(filepath.Join(dir, metaName))
	if errors.Is(err, fs.ErrNotExist) {
		var id [16]byte
		if _, err := rand.Read(id[:]); err != nil {
			return meta{}, err
		}
		m := meta{Version: metaVersion, PID: hex.EncodeToString(id[:])}
		return m, writeMeta(dir, m)
	}
	if err != nil {
		return meta{}, err
	}
	var m meta
	if err := json.Unmarshal(b, &m); err != nil {
		return meta{}, fmt.Errorf("spool: %s: %w", metaName, err)
	}
	if m.Version != metaVersion || !validPID(m.PID) {
		return meta{}, fmt.Errorf("spool: %s: unsupported version %d or invalid pid %q", metaName, m.Version, m.PID)
	}
	return m, nil
}

// validPID reports whether s is lower-case hex of 32 to 128 digits, the
// record id contract's producer id.
func validPID(s string) bool {
	if len(s) < 32 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// writeMeta replaces the meta file durably: a temporary file, fsync, rename,
// fsync of the directory.
func writeMeta(dir string, m meta) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return writeFileDurable(dir, metaName, append(b, '\n'))
}

func writeFileDurable(dir, name string, b []byte) error {
	tmp := filepath.Join(dir, name+tmpExt)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err = f.Write(b); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes the directory's entries (created, renamed or removed files)
// durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// mkdirDurable creates dir and its missing parents, like os.MkdirAll, and
// fsyncs the parent of every directory it created, so that the new names
// survive a crash of the machine. It returns the directories it fsynced.
func mkdirDurable(dir string) ([]string, error) {
	dir = filepath.Clean(dir)
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil || !errors.Is(err, fs.ErrNotExist) {
			break
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var synced []string
	for i := len(missing) - 1; i >= 0; i-- { // outermost first
		parent := filepath.Dir(missing[i])
		if err := syncDir(parent); err != nil {
			return synced, err
		}
		synced = append(synced, parent)
	}
	return synced, nil
}
