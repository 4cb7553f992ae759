//go:build linux

package kernels

import (
	"syscall"
	"time"
)

// gemmThreadCPU returns the CPU time the calling OS thread has used. On a shared,
// noisy machine it measures a kernel better than wall time, which counts the
// time other processes hold the core. Callers lock the OS thread.
func gemmThreadCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_THREAD, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
