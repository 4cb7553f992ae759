package kernels

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The worker pool that large GEMMs are split over. Its workers are
// long-lived goroutines (Parallelism()-1 of them, started on first need):
// handing a share of a GEMM to a goroutine started per call costs more than
// a small GEMM itself (shared/PERF.md). A caller takes the whole pool or, if
// another caller holds it, runs its GEMM alone on its own core: it never
// queues behind another caller. The caller always computes a share itself.
//
// Workers poll for workerSpin after each job, so that the next GEMM of a
// model's forward pass finds them awake, then park on a channel. A caller
// that runs out of chunks before a worker has joined cancels it rather than
// wait; when no worker joined, or one held the caller up, the next GEMMs (2,
// 4, ... up to maxSkip) leave the pool alone: on a machine whose other cores
// are busy with other work, a GEMM costs about what it costs on one core.

// kernelThreadsEnv overrides the default parallelism (GOMAXPROCS at first use).
const kernelThreadsEnv = "CORVID_KERNEL_THREADS"

var (
	threadsOnce sync.Once
	threads     atomic.Int32 // cores a GEMM may use, the caller's included
)

func initThreads() {
	threadsOnce.Do(func() {
		n, err := parseThreads(os.Getenv(kernelThreadsEnv), runtime.GOMAXPROCS(0))
		if err != nil {
			fmt.Fprintf(os.Stderr, "corvid: %v; using %d\n", err, n)
		}
		threads.Store(int32(n))
	})
}

// parseThreads reads CORVID_KERNEL_THREADS: def if s is empty or invalid
// (with an error saying so), else the positive count it holds.
func parseThreads(s string, def int) (int, error) {
	if strings.TrimSpace(s) == "" {
		return def, nil
	}
	v, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || v < 1 {
		return def, fmt.Errorf("%s=%q: want a positive integer", kernelThreadsEnv, s)
	}
	return v, nil
}

// Parallelism returns how many cores a large GEMM is split over, the
// caller's included: CORVID_KERNEL_THREADS if set, else GOMAXPROCS when the
// kernels were first used, unless SetParallelism changed it.
func Parallelism() int {
	initThreads()
	return int(threads.Load())
}

// SetParallelism sets how many cores a large GEMM may be split over (1: every
// GEMM runs on its caller's goroutine alone) and returns the previous value;
// n < 1 restores the default (see Parallelism). Tests and benchmarks use it
// to compare thread counts in one process. It is safe to call at any time;
// GEMMs already running keep the split they started with.
func SetParallelism(n int) (prev int) {
	initThreads()
	if n < 1 {
		n, _ = parseThreads(os.Getenv(kernelThreadsEnv), runtime.GOMAXPROCS(0))
	}
	return int(threads.Swap(int32(n)))
}

// workerSpin is how long an idle worker polls for the next job before it
// parks; callerSpin how long a caller that has finished its share polls for
// the workers still running theirs before it blocks. Both are short: on a
// busy machine a poller takes the CPU from the thread it waits for.
const (
	workerSpin = 20 * time.Microsecond
	callerSpin = 20 * time.Microsecond
)

// maxSkip bounds how many GEMMs in a row run alone after the workers failed
// to join: the cost of trying again (a wake-up) over that many GEMMs is
// small, and the pool is back in use soon after the cores free up.
const maxSkip = 64

// poolBackoff enables the back-off; tests turn it off so that every GEMM
// they split takes the split path.
var poolBackoff = true

// parJob is a GEMM cut into chunks; run computes chunk i on participant p
// (0 is the caller, w+1 worker w), which may keep per-participant state.
type parJob interface {
	run(p, i int)
}

// Worker states. A worker joins a job only by moving it from assigned to
// running; a caller that has run out of chunks cancels (assigned to idle)
// each worker that has not joined yet, so it never waits for a worker the OS
// or the Go scheduler has not run.
const (
	workerIdle int32 = iota
	workerAssigned
	workerRunning
)

type worker struct {
	id       int
	state    atomic.Int32
	gen      atomic.Uint64 // bumped by the caller for each job
	sleeping atomic.Bool   // parked on wake; whoever clears it owns the wake-up
	wake     chan struct{}
}

type workerPool struct {
	busy atomic.Bool // held by the caller whose job the workers run

	mu      sync.Mutex // guards growing workers
	workers atomic.Pointer[[]*worker]

	// The job, valid while busy is held.
	job     parJob
	chunks  int64
	next    atomic.Int64 // next chunk to take
	pending atomic.Int32 // assigned workers neither finished nor cancelled
	waiting atomic.Bool  // the caller is blocked on done
	done    chan struct{}
	jobs    atomic.Uint64 // jobs run, for tests

	// Backing off when the workers do not come: missed is how many jobs in
	// a row no worker joined (guarded by busy), skip how many GEMMs are
	// left to run without the pool.
	missed int
	skip   atomic.Int32

	// Preallocated jobs, so that a call does not allocate.
	u8 u8Job
	sg sgJob
}

var pool = &workerPool{done: make(chan struct{}, 1)}

// acquire takes the pool for a job on up to want workers and returns them, or
// false if another caller holds the pool.
func (p *workerPool) acquire(want int) ([]*worker, bool) {
	if poolBackoff && p.skip.Load() > 0 {
		p.skip.Add(-1)
		return nil, false
	}
	if !p.busy.CompareAndSwap(false, true) {
		return nil, false
	}
	ws := p.workers.Load()
	if ws == nil || len(*ws) < want {
		p.mu.Lock()
		cur := p.workers.Load()
		var grown []*worker
		if cur != nil {
			grown = append(grown, *cur...)
		}
		for len(grown) < want {
			w := &worker{id: len(grown), wake: make(chan struct{}, 1)}
			grown = append(grown, w)
			go p.loop(w)
		}
		p.workers.Store(&grown)
		ws = &grown
		p.mu.Unlock()
	}
	return (*ws)[:want], true
}

// runJob runs chunks chunks of job on the caller and whichever of the
// workers ws join in time, and returns when every chunk is done. The caller
// must hold the pool (acquire) and release it afterwards.
func (p *workerPool) runJob(ws []*worker, job parJob, chunks int) {
	p.job, p.chunks = job, int64(chunks)
	p.next.Store(0)
	p.pending.Store(int32(len(ws)))
	p.jobs.Add(1)
	for _, w := range ws {
		w.state.Store(workerAssigned)
		w.gen.Add(1)
		if w.sleeping.CompareAndSwap(true, false) {
			w.wake <- struct{}{}
		}
	}
	t0 := time.Now()
	p.work(job, 0)
	t1 := time.Now()
	cancelled := 0
	for _, w := range ws {
		if w.state.CompareAndSwap(workerAssigned, workerIdle) {
			p.pending.Add(-1)
			cancelled++
		}
	}
	p.wait()
	p.job = nil
	if cancelled == len(ws) || time.Since(t1) > t1.Sub(t0)/2 {
		// No worker came in time, or the caller waited for one longer
		// than half its own share took: their cores are busy with other
		// work (an OS time slice lasts milliseconds), or waking them
		// takes longer than this GEMM. Leave them be for the next 2, 4,
		// ... maxSkip GEMMs.
		p.missed = min(p.missed+1, 16)
		p.skip.Store(int32(min(1<<p.missed, maxSkip)))
	} else {
		p.missed = 0
	}
}

// resetBackoff makes the next GEMMs try the workers again (for tests).
func (p *workerPool) resetBackoff() { p.skip.Store(0) }

// release gives the pool back after runJob.
func (p *workerPool) release() { p.busy.Store(false) }

// work takes chunks until none are left.
func (p *workerPool) work(job parJob, part int) {
	for {
		i := p.next.Add(1) - 1
		if i >= p.chunks {
			return
		}
		job.run(part, int(i))
	}
}

// wait returns when no worker is running the job: it polls for up to
// callerSpin, then blocks.
func (p *workerPool) wait() {
	start := time.Now()
	for i := 0; p.pending.Load() != 0; i++ {
		if i%64 == 63 && time.Since(start) > callerSpin {
			p.waiting.Store(true)
			if p.pending.Load() == 0 {
				if p.waiting.CompareAndSwap(true, false) {
					return
				}
				// The last worker saw waiting and is sending.
			}
			<-p.done
			return
		}
	}
}

func (p *workerPool) loop(w *worker) {
	var seen uint64
	for {
		// Wait for the next job: poll, then park.
		start := time.Now()
		for i := 0; w.gen.Load() == seen; i++ {
			if i%64 != 63 || time.Since(start) < workerSpin {
				continue
			}
			w.sleeping.Store(true)
			if w.gen.Load() != seen && w.sleeping.CompareAndSwap(true, false) {
				break // a job came before the caller saw us asleep
			}
			<-w.wake
			break
		}
		seen = w.gen.Load()
		if !w.state.CompareAndSwap(workerAssigned, workerRunning) {
			continue // the caller finished without us
		}
		p.work(p.job, w.id+1)
		w.state.Store(workerIdle)
		if p.pending.Add(-1) == 0 && p.waiting.CompareAndSwap(true, false) {
			p.done <- struct{}{}
		}
	}
}
