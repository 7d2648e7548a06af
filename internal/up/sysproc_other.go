//go:build !linux

package up

import "syscall"

// childAttrs puts a role's process in a process group of its own. Only
// Linux can have it killed when up dies (PR_SET_PDEATHSIG).
func childAttrs() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
