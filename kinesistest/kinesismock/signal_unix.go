//go:build unix

package kinesismock

import (
	"errors"
	"fmt"
	"syscall"
)

// Signal sends sig to the server's process group. syscall.SIGSTOP freezes
// the server as a stalled service would be: connections are accepted by the
// kernel and requests queue up unanswered, until syscall.SIGCONT, when it
// answers them all, including those whose callers gave up on them. It
// returns an error when the server has exited.
func (s *Server) Signal(sig syscall.Signal) error {
	select {
	case <-s.done:
		return errors.New("kinesismock: the server has exited")
	default:
	}
	if err := syscall.Kill(-s.cmd.Process.Pid, sig); err != nil {
		return fmt.Errorf("kinesismock: signal %v: %w", sig, err)
	}
	return nil
}
