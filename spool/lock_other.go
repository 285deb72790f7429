//go:build !unix

package spool

import "os"

// lockDir opens the directory's lock file. Without flock it only guards
// against nothing; one process per spool directory is the caller's duty.
func lockDir(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
}
