package kernels

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// pinThread locks the calling goroutine to its OS thread and that thread to
// the first CPU it may run on, which it returns; the returned function
// undoes both. Comparisons with another process pin both to one CPU: on a
// shared host one vCPU can run AMX at half the rate of the other.
func pinThread(tb testing.TB) (cpu int, undo func()) {
	runtime.LockOSThread()
	var old unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		runtime.UnlockOSThread()
		tb.Fatal(err)
	}
	for cpu = 0; !old.IsSet(cpu); cpu++ {
	}
	var one unix.CPUSet
	one.Set(cpu)
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		runtime.UnlockOSThread()
		tb.Fatal(err)
	}
	return cpu, func() {
		unix.SchedSetaffinity(0, &old)
		runtime.UnlockOSThread()
	}
}
