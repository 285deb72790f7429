//go:build unix && !linux

package kinesismock

import "syscall"

// setDeathSignal does nothing where the kernel offers no death signal: a
// test binary that is killed may leave the server behind.
func setDeathSignal(*syscall.SysProcAttr) {}
