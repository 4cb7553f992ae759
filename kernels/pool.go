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
// Each participant owns a contiguous range of a job's chunks: it runs its
// own from the front, then takes what is left of the others' from the back.
// A participant so computes the same columns (or rows) of every GEMM of a
// given shape, and its share of B and C stays in its core's cache; with a
// shared counter instead, chunks moved between cores from one call to the
// next, and 128 x 768^2 on two cores ran at 1.5-1.8x one core, not 1.9x
// (BenchmarkParallelScaling, avx512vnni).
//
// Workers poll for workerSpin after each job, so that the next GEMM of a
// model's forward pass finds them awake, then park on a channel. A caller
// that runs out of chunks before a worker has joined cancels it rather than
// wait. A parked worker, once woken, takes tens of microseconds to run
// (about 60 us here): that it comes late says nothing about its core. When
// a polling worker does not come, or the caller waits for the workers
// longer than its own share took, twice in a row, the next GEMMs (2, 4, ...
// up to maxSkip) leave the pool alone: on a machine whose other cores are
// busy with other work, a GEMM costs about what it costs on one core.
//
// A job of empty chunks with one polling worker takes 1.0-1.1 us here, the
// cache lines it moves between the cores (the worker's, the job's, the
// chunk ranges): what keeps the pool at about 0.9x of an ideal split on
// GEMMs of 10 us (BenchmarkParallelScaling's pool/split).

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
// parks: enough to bridge the gaps between the GEMMs of a forward pass.
// Longer costs the server: while a worker polls, its P neither runs other
// goroutines nor polls the network (with 100 us, the 768-3072-768 MLP's
// batch-1 Predict p50 rose from 467 to 518 us, BenchmarkQuantServing),
// and it saves little (on back-to-back 768^2 GEMMs one job in ten found its
// worker parked with 20 us, one in sixty with 100 us). callerSpin is the
// least time a caller that has finished its share polls for the workers
// still running theirs before it blocks: it polls for as long as its share
// took, since blocking hands its wake-up to the worker's P, which runs it
// only once that worker parks.
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
	waking   atomic.Bool   // sent a wake-up it has not yet taken
	cold     bool          // parked or waking when given the current job (caller's)
	wake     chan struct{}
}

type workerPool struct {
	busy atomic.Bool // held by the caller whose job the workers run

	mu      sync.Mutex // guards growing workers
	workers atomic.Pointer[[]*worker]

	// The job, valid while busy is held.
	job     parJob
	parts   int32                        // the caller and the workers assigned
	ranges  atomic.Pointer[[]chunkRange] // per participant, the caller's first
	pending atomic.Int32                 // assigned workers neither finished nor cancelled
	waiting atomic.Bool                  // the caller is blocked on done
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
		rs := make([]chunkRange, len(grown)+1)
		p.ranges.Store(&rs)
		ws = &grown
		p.mu.Unlock()
	}
	return (*ws)[:want], true
}

// runJob runs chunks chunks of job on the caller and whichever of the
// workers ws join in time, and returns when every chunk is done. The caller
// must hold the pool (acquire) and release it afterwards.
func (p *workerPool) runJob(ws []*worker, job parJob, chunks int) {
	p.job, p.parts = job, int32(len(ws)+1)
	rs := *p.ranges.Load()
	for i := range len(ws) + 1 {
		lo, hi := span(i, len(ws)+1, chunks)
		rs[i].set(lo, hi)
	}
	p.pending.Store(int32(len(ws)))
	p.jobs.Add(1)
	hot := 0 // workers already polling: they should join at once
	for _, w := range ws {
		w.state.Store(workerAssigned)
		w.gen.Add(1)
		w.cold = w.waking.Load()
		if w.sleeping.CompareAndSwap(true, false) {
			w.cold = true
			w.waking.Store(true)
			w.wake <- struct{}{}
		}
		if !w.cold {
			hot++
		}
	}
	t0 := time.Now()
	p.work(job, 0)
	t1 := time.Now()
	cancelled := 0
	for _, w := range ws {
		if w.state.CompareAndSwap(workerAssigned, workerIdle) {
			p.pending.Add(-1)
			if !w.cold {
				cancelled++
			}
		}
	}
	p.wait(max(callerSpin, t1.Sub(t0)))
	p.job = nil
	p.judge(hot, cancelled, t1.Sub(t0), time.Since(t1))
}

// judge updates the back-off after a job: hot of its workers were polling
// when it came (the others had to be woken), cancelled of those hot ones
// never joined; the caller's own chunks took share, then it waited for the
// workers. The split did not pay when no polling worker came, or when the
// caller waited longer than its share took (about the GEMM's time on one
// core). A woken worker may join late without its core being busy; one
// that was polling and did not come has lost its core to other work (an OS
// time slice lasts milliseconds). After two such jobs in a row (one can be
// a hiccup of a shared machine), the next 2, 4, ... maxSkip GEMMs leave the
// workers be.
func (p *workerPool) judge(hot, cancelled int, share, waited time.Duration) {
	switch {
	case hot > 0 && cancelled == hot, waited > share:
		p.missed = min(p.missed+1, 16)
		if p.missed >= 2 {
			p.skip.Store(int32(min(1<<(p.missed-1), maxSkip)))
		}
	case hot > 0:
		p.missed = 0
	}
}

// resetBackoff makes the next GEMMs try the workers again (for tests).
func (p *workerPool) resetBackoff() { p.skip.Store(0) }

// release gives the pool back after runJob.
func (p *workerPool) release() { p.busy.Store(false) }

// chunkRange is the chunks [lo, hi) a participant has yet to run, packed
// as lo<<32 | hi, on a cache line of its own.
type chunkRange struct {
	r atomic.Uint64
	_ [56]byte
}

func (c *chunkRange) set(lo, hi int) { c.r.Store(uint64(lo)<<32 | uint64(hi)) }

// take removes the first chunk (front) or the last one and returns it, or
// -1 if none is left.
func (c *chunkRange) take(front bool) int {
	for {
		r := c.r.Load()
		lo, hi := int(r>>32), int(uint32(r))
		if lo >= hi {
			return -1
		}
		i := hi - 1
		if front {
			i = lo
			lo++
		} else {
			hi--
		}
		if c.r.CompareAndSwap(r, uint64(lo)<<32|uint64(hi)) {
			return i
		}
	}
}

// work runs chunks until none are left: first participant part's own, in
// order, then, from the back, those of participants that have not come or
// fall behind. Each participant so runs the same columns (or rows) of
// every GEMM of a given shape, whose share of the weights then stays in its
// core's cache, and the others take over only at the edge of its range.
func (p *workerPool) work(job parJob, part int) {
	rs := *p.ranges.Load()
	n := int(p.parts)
	for {
		i := rs[part].take(true)
		for q := 1; i < 0 && q < n; q++ {
			i = rs[(part+q)%n].take(false)
		}
		if i < 0 {
			return
		}
		job.run(part, i)
	}
}

// wait returns when no worker is running the job: it polls for up to
// spin, then blocks.
func (p *workerPool) wait(spin time.Duration) {
	start := time.Now()
	for i := 0; p.pending.Load() != 0; i++ {
		if i%64 == 63 && time.Since(start) > spin {
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
	spin := workerSpin
	for {
		// Wait for the next job: poll, then park.
		start := time.Now()
		for i := 0; w.gen.Load() == seen; i++ {
			if i%64 != 63 {
				continue
			}
			if time.Since(start) < spin {
				continue
			}
			w.sleeping.Store(true)
			if w.gen.Load() != seen && w.sleeping.CompareAndSwap(true, false) {
				break // a job came before the caller saw us asleep
			}
			<-w.wake
			w.waking.Store(false)
			break
		}
		seen = w.gen.Load()
		if !w.state.CompareAndSwap(workerAssigned, workerRunning) {
			// The caller finished without us. Poll only after a job we
			// ran: one that came too late, woken in a server whose
			// goroutines keep the other Ps busy, would hold up a P that
			// they need.
			spin = 0
			continue
		}
		spin = workerSpin
		p.work(p.job, w.id+1)
		w.state.Store(workerIdle)
		if p.pending.Add(-1) == 0 && p.waiting.CompareAndSwap(true, false) {
			p.done <- struct{}{}
		}
	}
}
