package up

import "syscall"

// childAttrs puts a role's process in a process group of its own (a
// Ctrl-C meant for up reaches it only through up, which stops the router
// first) and has the kernel kill it when up dies, even by SIGKILL.
func childAttrs() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
