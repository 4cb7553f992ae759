//go:build !purego

package kernels

import (
	"fmt"
	"syscall"
)

// Linux (5.16+) keeps AMX tile data (XFEATURE_XTILEDATA, 8 KiB per thread)
// off until a process asks for it; a TILE instruction before that raises
// SIGILL. The permission is process-wide and covers threads created later.
// See Documentation/arch/x86/xstate.rst in the Linux sources.
const (
	archReqXcompPerm  = 0x1023 // ARCH_REQ_XCOMP_PERM
	xfeatureXtiledata = 18     // XFEATURE_XTILEDATA
)

// amxRequest asks the kernel for the tile state. It fails on kernels before
// 5.16 (EINVAL), when a thread's signal stack is too small for the larger
// signal frame (ENOSPC; Go's are 32 KiB), or when a hypervisor hides it.
func amxRequest() error {
	_, _, errno := syscall.RawSyscall(syscall.SYS_ARCH_PRCTL, archReqXcompPerm, xfeatureXtiledata, 0)
	if errno != 0 {
		return fmt.Errorf("arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA): %w", errno)
	}
	return nil
}
