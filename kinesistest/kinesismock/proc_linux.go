package kinesismock

import "syscall"

// setDeathSignal has the kernel kill the server when this process dies.
func setDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
