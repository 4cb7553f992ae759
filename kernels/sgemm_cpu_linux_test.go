package kernels

import (
	"syscall"
	"time"
)

// sgemmProcessCPU is the CPU time of the process: on a shared, loaded
// machine it excludes the time the benchmark was waiting for a core.
func sgemmProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
