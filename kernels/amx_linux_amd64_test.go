//go:build !purego

package kernels

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestGemmAMXPreempted runs tile GEMMs in more goroutines than threads while
// other goroutines spin, the collector stops the world (preemption signals),
// the CPU profiler runs and the process signals its threads: handlers run in the middle of the kernels,
// the OS saves and restores the tile state around each, and goroutines move
// between threads between calls. Every result must stay exact.
func TestGemmAMXPreempted(t *testing.T) {
	withAMX(t, func(t *testing.T) {
		const m, n, k = 96, 320, 1000
		r := rand.New(rand.NewPCG(9, 0))
		gc := gemmRandCase(r, m, n, k)
		pb := PackB(gc.b, k, n)
		want := make([]int32, (m-1)*gc.ldc+n)
		refGemm(m, n, k, gc.a, gc.lda, gc.aZero, gc.b, want, gc.ldc)

		workers, iters := 4*runtime.GOMAXPROCS(0), 600
		if testing.Short() {
			iters = 60
		}
		// The profiler's SIGPROF lands on whichever thread is burning CPU,
		// mostly inside the kernels (skipped if a profile already runs).
		if pprof.StartCPUProfile(io.Discard) == nil {
			defer pprof.StopCPUProfile()
		}
		sigs := make(chan os.Signal, 64)
		signal.Notify(sigs, syscall.SIGUSR1)
		defer signal.Stop(sigs)
		var received atomic.Int64
		done := make(chan struct{})
		var bg sync.WaitGroup
		bg.Go(func() { // stop-the-world preemption, repeatedly
			for {
				select {
				case <-done:
					return
				default:
					runtime.GC()
				}
			}
		})
		var sent atomic.Int64
		bg.Go(func() { // signals to every thread in turn, often inside a kernel
			pid := os.Getpid()
			for {
				tasks, _ := os.ReadDir("/proc/self/task")
				for _, task := range tasks {
					if tid, err := strconv.Atoi(task.Name()); err == nil && syscall.Tgkill(pid, tid, syscall.SIGUSR1) == nil {
						sent.Add(1)
					}
					select {
					case <-done:
						return
					case <-sigs:
						received.Add(1)
					case <-time.After(50 * time.Microsecond):
					}
				}
			}
		})
		for range runtime.GOMAXPROCS(0) {
			bg.Go(func() { // goroutines that only a signal can preempt
				x := 0
				for {
					select {
					case <-done:
						return
					default:
					}
					for i := range 1 << 20 {
						x += i
					}
				}
			})
		}
		var wg sync.WaitGroup
		errs := make(chan string, workers)
		for w := range workers {
			wg.Go(func() {
				c := make([]int32, len(want))
				for it := range iters {
					clear(c)
					GemmU8S8(m, gc.a, gc.lda, gc.aZero, pb, c, gc.ldc)
					for i := range m {
						for j := range n {
							if got, w2 := c[i*gc.ldc+j], want[i*gc.ldc+j]; got != w2 {
								errs <- fmt.Sprintf("worker %d iteration %d: C[%d][%d] = %d, want %d", w, it, i, j, got, w2)
								return
							}
						}
					}
				}
			})
		}
		wg.Wait()
		close(done)
		bg.Wait()
		close(errs)
		for e := range errs {
			t.Error(e)
		}
		if received.Load() == 0 {
			t.Error("no SIGUSR1 arrived during the run")
		}
		t.Logf("%d workers x %d GEMMs; SIGUSR1: %d sent to threads, %d reached the channel", workers, iters, sent.Load(), received.Load())
	})
}
