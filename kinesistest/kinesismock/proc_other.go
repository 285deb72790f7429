//go:build !unix

package kinesismock

import (
	"os"
	"os/exec"
)

// ownProcessGroup does nothing where there are no process groups.
func ownProcessGroup(*exec.Cmd) {}

// terminate stops the server; without signals it is killed at once.
func terminate(p *os.Process) { _ = p.Kill() }

// kill ends the server.
func kill(p *os.Process) { _ = p.Kill() }
