//go:build !purego

package peakmeter

import (
	"fmt"
	"syscall"
)

// amxRequest asks Linux (5.16+) for the AMX tile state, off for a process
// until it asks (a tile instruction before that raises SIGILL); the grant is
// process-wide. It repeats kernels' request rather than import kernels,
// whose benchmarks import this package.
func amxRequest() error {
	const (
		archReqXcompPerm  = 0x1023 // ARCH_REQ_XCOMP_PERM
		xfeatureXtiledata = 18     // XFEATURE_XTILEDATA
	)
	_, _, errno := syscall.RawSyscall(syscall.SYS_ARCH_PRCTL, archReqXcompPerm, xfeatureXtiledata, 0)
	if errno != 0 {
		return fmt.Errorf("arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA): %w", errno)
	}
	return nil
}
