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
func pinThread(tb testing.TB) (cpu int, undo func()) { return pinNth(tb, 0) }

// pinOther is pinThread to the second CPU the thread may run on (the first
// if it may run on one only): where pinThread's caller is not.
func pinOther(tb testing.TB) (cpu int, undo func()) { return pinNth(tb, 1) }

// pinNth is pinThread to the nth CPU (from 0) the thread may run on, or
// the last if it may run on fewer.
func pinNth(tb testing.TB, nth int) (cpu int, undo func()) {
	runtime.LockOSThread()
	var old unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		runtime.UnlockOSThread()
		tb.Fatal(err)
	}
	cpu = -1
	for c, seen := 0, 0; seen <= nth && c < len(old)*64; c++ {
		if old.IsSet(c) {
			cpu, seen = c, seen+1
		}
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
