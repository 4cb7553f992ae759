package kernels

import (
	"sync/atomic"
	"syscall"
	"unsafe"
)

// wakeup is a parked worker's wake-up call, posted at most once per wait
// (the worker's sleeping flag decides who posts). On Linux the worker's
// thread waits on a futex in the kernel, and a post wakes that thread
// directly. A worker parked on a channel instead was made runnable in the
// waker's own P's next slot, behind the GEMM the waker went on to run: it
// ran once another P stole it, or once the waker's GEMM ended. Woken that
// way in a server (BenchmarkQuantServing, the 768-3072-768 MLP at batch
// 32), a worker took 145 us to run at the median and 1.1 ms at the 90th
// percentile, and came after the caller had run its whole GEMM alone in
// most jobs.
type wakeup struct{ word atomic.Uint32 }

// Linux's futex operations (linux/futex.h), on a word private to this
// process.
const (
	futexWaitPrivate = 0 | 128
	futexWakePrivate = 1 | 128
)

func (u *wakeup) init() {}

// wait returns once post has been called, at once if it already was.
func (u *wakeup) wait() {
	for u.word.Load() == 0 {
		// An interrupted or spurious return comes back here; EAGAIN (the
		// word is no longer 0) ends the loop.
		syscall.Syscall6(syscall.SYS_FUTEX, uintptr(unsafe.Pointer(&u.word)), futexWaitPrivate, 0, 0, 0, 0)
	}
	u.word.Store(0)
}

// post wakes the waiting worker, or lets its next wait return at once.
func (u *wakeup) post() {
	u.word.Store(1)
	syscall.Syscall6(syscall.SYS_FUTEX, uintptr(unsafe.Pointer(&u.word)), futexWakePrivate, 1, 0, 0, 0)
}
