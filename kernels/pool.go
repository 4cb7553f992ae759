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
// own from the front, half of what is left at a time, then takes what is
// left of the others' from the back, one chunk at a time. The caller's
// range is sized by the share of the chunks it ran in the last jobs of
// the same shape (callerShare).
// A participant so computes the same columns (or rows) of every GEMM of a
// given shape, and its share of B and C stays in its core's cache; with a
// shared counter instead, chunks moved between cores from one call to the
// next, and 128 x 768^2 on two cores ran at 1.5-1.8x one core, not 1.9x
// (BenchmarkParallelScaling, avx512vnni).
//
// Workers poll for workerSpin after each job, so that the next GEMM of a
// model's forward pass finds them awake, then linger (see workerLinger),
// then park (wakeup). A worker that has not come by the time the caller
// has run its own chunks has them taken by the caller, which never waits
// for a worker that is not running. A parked worker, once woken, takes
// tens of microseconds to run (26-30 us at the median in a server here),
// and 1 ms and more at times, when it finds no free P (see workerLinger):
// that it comes late says nothing about its core. When a polling worker
// does not come, or the caller waits for the workers longer than its own
// share took, twice in a row, the next GEMMs (2, 4, ... up to maxSkip)
// leave the pool alone: on a machine whose other cores are busy with other
// work, a GEMM costs about what it costs on one core.
//
// A hand-off costs the cache lines it moves between cores, one after the
// other: posting a job writes only the worker's share (its chunk range,
// which it polls, and the job), and a worker reports only once, adding the
// chunks it ran to a counter the caller polls. On a job of two halves of 8
// x 768^2 (avx512vnni), the worker started its half 150-160 ns after the
// caller posted it, against 110 ns for a dedicated thread polling one
// flag, and the pool returned about 0.4 us later than that ideal split; in
// a slower state of the host, 570-660 ns after, against 660-790 ns with
// the job, the ranges and the worker's state on separate lines, as
// before. The host's two vCPUs' rates can also differ by 1.5x for seconds
// (the worker's vCPU ran its half in 13 us while the caller's took 8.5),
// which a fixed half-and-half split cannot make up and the chunks the
// faster core takes over, and the caller's share (callerShare), do.
//
// A line's round trip between the two vCPUs (written on one, read on the
// other, and back) took 430-490 ns (BenchmarkLineRoundTrip). A job waits
// on about one and a half of them (the post, the worker's claim and its
// read of the job, its report), 4-6% of the 12-16 us 8 x 768^2 takes on
// two cores, against one for a thread that polls for halves of the job
// (the ideal split of BenchmarkParallelScaling). The pool ran at 0.92-1.0
// of that split's rate. Timed with TSC stamps in a build made for that
// and not kept (8 x 768^2, avx512vnni, medians of 20,000 jobs in each of
// three runs): the caller spent 135-190 ns from gemmU8S8Split to the
// post, the worker saw the job 180-290 ns after it, the worker's report
// took 145-240 ns and reached the caller 90-500 ns later, and the caller
// spent 70-190 ns from there to its return. The host's state moved the
// halves themselves most: each took 8.0 us alone but 14 us while the
// other core ran its own, in one run; 10.9-11.2 alone and 11.3-11.9 at
// once in another, where two cores ran at 1.96x one. No split makes up
// that slowdown.

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
	return parseEnv(kernelThreadsEnv, s, def, "a positive integer", func(s string) (int, bool) {
		v, err := strconv.Atoi(s)
		return v, err == nil && v >= 1
	})
}

// parseEnv reads s, the value of the environment variable name, with
// parse: def if s is empty or parse refuses it (with an error naming the
// variable, its value and want), else what parse made of it.
func parseEnv[T any](name, s string, def T, want string, parse func(string) (T, bool)) (T, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return def, nil
	}
	v, ok := parse(s)
	if !ok {
		return def, fmt.Errorf("%s=%q: want %s", name, s, want)
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

// A worker that has run a job lingers after its workerSpin: until
// workerLinger has passed since the job, it keeps looking for the next one
// but yields its P between looks (runtime.Gosched), so that goroutines
// queued there run first; then it parks. A worker parked between a
// server's requests sleeps in the futex without its P, which the runtime
// hands to other goroutines, and once woken it must find a free P before
// it runs. In a trace of BenchmarkQuantServing (the 768-3072-768 MLP at
// batch 32, int8, 600 requests), 498 of 721 wake-ups found none, and one
// in ten waited 0.85 ms or more: the caller ran that forward pass alone,
// as it ran 335 of 985 first GEMMs in another run (timed in a build not
// kept). The futex wake-up alone took 15 us at the median and 24 us at the
// 90th percentile (a program not kept). ONNX Runtime's thread pools also
// spin between runs by default (session.intra_op.allow_spinning,
// onnxruntime.ai, "Thread management").
//
// Lingering pays only when a GEMM has the cores to itself. Once callers
// meet at the pool (one finds it busy), or a job's polling workers never
// come (their cores run other goroutines), the cores have other work, and
// a worker that lingered would only take turns with it. So workers do not
// linger within lingerQuiet of either. A woken worker that comes late is
// no such sign: that is the wait lingering avoids.
//
// BenchmarkKernelLinger, lingering and parking in alternating rounds, two
// runs: one client's p50 when parking over its p50 when lingering was
// 1.02-1.66 on the MLP (batch 1 and 32, fp32 and int8: all eight medians)
// and 0.95-1.20 on the digits CNN; four clients' rows/s when lingering
// over when parking, 0.79-1.19 in no consistent direction, and in three
// more runs of ten rounds on the MLP at batch 32, 0.96-1.03 in fp32 and
// 0.94-0.97 in int8.
//
// CORVID_KERNEL_LINGER sets workerLinger (a Go duration; 0 parks after
// workerSpin).
const (
	defaultLinger = 2 * time.Millisecond
	lingerQuiet   = 100 * time.Millisecond
	lingerEnv     = "CORVID_KERNEL_LINGER"
)

var (
	lingerOnce   sync.Once
	workerLinger atomic.Int64 // a time.Duration
	// epoch is what contended times count from: time.Since(epoch) reads
	// the monotonic clock.
	epoch = time.Now()
)

func initLinger() {
	lingerOnce.Do(func() {
		d, err := parseLinger(os.Getenv(lingerEnv))
		if err != nil {
			fmt.Fprintf(os.Stderr, "corvid: %v; using %v\n", err, d)
		}
		workerLinger.Store(int64(d))
	})
}

// parseLinger reads CORVID_KERNEL_LINGER: defaultLinger if s is empty or
// invalid (with an error saying so), else the duration it holds.
func parseLinger(s string) (time.Duration, error) {
	return parseEnv(lingerEnv, s, defaultLinger, "a duration such as 2ms, or 0", func(s string) (time.Duration, bool) {
		d, err := time.ParseDuration(s)
		return d, err == nil && d >= 0
	})
}

// SetLinger sets how long a worker that has run a job keeps looking for
// the next one before it parks (see workerLinger; 0: it parks after a few
// microseconds of polling) and returns the previous value; d < 0 restores
// the default (CORVID_KERNEL_LINGER, else 2 ms). Workers already lingering
// keep the value they started with.
func SetLinger(d time.Duration) (prev time.Duration) {
	initLinger()
	if d < 0 {
		d, _ = parseLinger(os.Getenv(lingerEnv))
	}
	return time.Duration(workerLinger.Swap(int64(d)))
}

// maxSkip bounds how many GEMMs in a row run alone after the workers failed
// to join: the cost of trying again (a wake-up) over that many GEMMs is
// small, and the pool is back in use soon after the cores free up.
const maxSkip = 64

// poolBackoff enables the back-off; tests turn it off so that every GEMM
// they split takes the split path.
var poolBackoff = true

// parJob is a GEMM cut into chunks; run computes chunks [lo, hi) on
// participant p (0 is the caller, w+1 worker w), which may keep
// per-participant state.
type parJob interface {
	run(p, lo, hi int)
}

// share is one participant's part of the job in hand. r holds the job's
// generation and the chunks [lo, hi) of the participant's range not yet
// taken: its owner takes them from the front, the others from the back,
// each by a compare-and-swap that fails once r holds another job. A
// worker's share is also its mailbox: the caller writes job and peers,
// then r, and the worker polls r for a new generation, so that posting a
// job moves one cache line. The worker reads job and peers only once it
// holds a chunk: until it has reported that chunk done, the caller cannot
// finish the job and post another.
type share struct {
	_     [64]byte
	r     rangeWord
	job   parJob   // a worker's: the job of r's generation
	peers []*share // a worker's: that job's shares, the caller's first
	// 192 bytes in all: a size class whose objects start on a cache line,
	// so that r, job and peers share one, and the padding keeps the
	// neighbours' fields off it.
	_ [80]byte
}

// rangeWord is a share's r: read and swapped atomically, posted by
// storeRelease.
type rangeWord struct{ v uint64 }

func (w *rangeWord) Load() uint64 { return atomic.LoadUint64(&w.v) }
func (w *rangeWord) CompareAndSwap(old, new uint64) bool {
	return atomic.CompareAndSwapUint64(&w.v, old, new)
}
func (w *rangeWord) addr() *uint64 { return &w.v }

// packRange makes a share's r from a job's generation and a chunk range
// (fewer than 1<<16 chunks: see maxParts).
func packRange(gen uint32, lo, hi int) uint64 {
	return uint64(gen)<<32 | uint64(lo)<<16 | uint64(hi)
}

// rangeLo returns the first chunk of r's range.
func rangeLo(r uint64) int { return int(r >> 16 & 0xffff) }

// take removes the last chunk of s's range for job gen and returns it, or
// -1 if none is left or s holds another job.
func (s *share) take(gen uint32) int {
	for {
		r := s.r.Load()
		lo, hi := rangeLo(r), int(r&0xffff)
		if uint32(r>>32) != gen || lo >= hi {
			return -1
		}
		if s.r.CompareAndSwap(r, packRange(gen, lo, hi-1)) {
			return hi - 1
		}
	}
}

// frontHalf returns where the first half (rounded up) of [lo, hi) ends.
func frontHalf(lo, hi int) int { return lo + (hi-lo+1)/2 }

// takeFront removes the first half (rounded up) of s's range for job gen
// and returns it, or an empty range if none is left or s holds another
// job. Its owner so runs its range in a few calls (the per-call cost of a
// GEMM on a 64-column chunk is not small), the later ones smaller, while
// the others take single chunks from the back. (Three quarters at a time
// took 8 x 768^2 from pool/both 0.85-0.86 to 0.87-0.88, but 128 x 3072^2
// from 1.03 to 0.88-0.99: avx512vnni, BenchmarkParallelScaling, two to
// four alternating runs. Tried again for jobs of halves of panels alone,
// 8 x 768^2 measured pool/at-once 0.86-0.92 with it, 0.89-0.95 without,
// four alternating runs each.)
func (s *share) takeFront(gen uint32) (lo, hi int) {
	for {
		r := s.r.Load()
		lo, hi := rangeLo(r), int(r&0xffff)
		if uint32(r>>32) != gen || lo >= hi {
			return 0, 0
		}
		mid := frontHalf(lo, hi)
		if s.r.CompareAndSwap(r, packRange(gen, mid, hi)) {
			return lo, mid
		}
	}
}

type worker struct {
	id       int
	box      *share      // its share of the job in hand, and its mailbox
	sleeping atomic.Bool // parked on wake; whoever clears it owns the wake-up
	waking   atomic.Bool // sent a wake-up it has not yet taken
	cold     bool        // parked or waking when given the current job (caller's)
	wake     wakeup
}

func newWorker(id int) *worker {
	w := &worker{id: id, box: new(share)}
	w.wake.init()
	return w
}

type workerPool struct {
	busy atomic.Bool // held by the caller whose job the workers run

	mu      sync.Mutex // guards growing workers
	workers atomic.Pointer[[]*worker]

	// Guarded by busy: the shares of the job in hand (the caller's first,
	// then its workers' boxes), the last job's generation, and how many
	// chunks the workers had finished, over all jobs, when it ended.
	peers  []*share
	gen    uint32
	expect uint64

	// Backing off when the workers do not come: missed is how many jobs in
	// a row no worker joined (guarded by busy), skip how many GEMMs are
	// left to run without the pool.
	missed int
	skip   atomic.Int32
	jobs   atomic.Uint64 // jobs run, for tests

	// The caller's share of the int8 GEMMs of a few recent shapes.
	shares [8]callerShare

	// Preallocated jobs, so that a call does not allocate, on lines of
	// their own: the caller writes them as it posts a job and the workers
	// read them, while the caller alone writes the fields above (on a line
	// the workers read, jobs.Add after a job waited 150 ns for it).
	_  [64]byte
	u8 u8Job
	sg sgJob
	qr quantRowsJob

	// Written by the workers as they finish, on a line of their own.
	_        [64]byte
	finished atomic.Uint64 // chunks the workers have run, over all jobs
	waiting  atomic.Bool   // the caller is blocked on done
	done     chan struct{}
	_        [64]byte

	// When a caller last found the pool busy or a job's polling workers
	// last never came (time.Since(epoch), plus 1 so that 0 is never), read
	// by lingering workers: on a line of its own, written only then.
	contended atomic.Int64
	_         [56]byte
}

var pool = &workerPool{done: make(chan struct{}, 1), peers: []*share{new(share)}}

// acquire takes the pool for a job on up to want workers and returns them, or
// false if another caller holds the pool.
func (p *workerPool) acquire(want int) ([]*worker, bool) {
	if poolBackoff && p.skip.Load() > 0 {
		p.skip.Add(-1)
		return nil, false
	}
	if !p.busy.CompareAndSwap(false, true) {
		p.contended.Store(int64(time.Since(epoch)) + 1)
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
			w := newWorker(len(grown))
			grown = append(grown, w)
			go p.loop(w)
		}
		// A new array: workers of earlier jobs may still read the old.
		peers := []*share{p.peers[0]}
		for _, w := range grown {
			peers = append(peers, w.box)
		}
		p.peers = peers
		p.workers.Store(&grown)
		ws = &grown
		p.mu.Unlock()
	}
	return (*ws)[:want], true
}

// runJob runs chunks chunks of job on the caller and whichever of the
// workers ws join in time, and returns when every chunk is done. The caller
// must hold the pool (acquire) and release it afterwards. The chunks of a
// worker that has not come by the time the caller has run its own are the
// caller's to take: it never waits for a worker the OS or the Go scheduler
// has not run, only for chunks being run.
//
// The caller's own range is chunks [0, mine) (mine >= 1), the workers'
// near-equal parts of the rest. It returns how many chunks the caller ran
// (its own and those it took over), and whether every worker was polling
// when the job came and joined it: only then do the chunks the caller ran
// measure its rate against theirs.
func (p *workerPool) runJob(ws []*worker, job parJob, chunks, mine int) (ran int, joined bool) {
	p.gen++
	gen, n := p.gen, len(ws)+1
	peers := p.peers[:n]
	for k, w := range ws {
		if peers[k+1] != w.box {
			// Not the pool's own workers (a test's): a new array, as
			// workers of earlier jobs may still read the old.
			p.peers = append([]*share{peers[0]}, p.peers[1:]...)
			peers = p.peers[:n]
			for k, w := range ws {
				peers[k+1] = w.box
			}
			break
		}
	}
	// Post to the workers first, then take the caller's own range, the
	// first half of it (frontHalf) already out of it. The stores do not
	// wait for their cache lines (storeRelease): the caller's first
	// compare-and-swap comes that half later, by when they have landed.
	hot := 0 // workers already polling: they should join at once
	for k, w := range ws {
		b := w.box
		b.job, b.peers = job, peers
		lo, hi := cut(k+1, n, chunks, mine)
		storeRelease(b.r.addr(), packRange(gen, lo, hi))
		w.cold = w.waking.Load()
		if w.sleeping.Load() && w.sleeping.CompareAndSwap(true, false) {
			w.cold = true
			w.waking.Store(true)
			w.wake.post()
		}
		if !w.cold {
			hot++
		}
	}
	first, hi := cut(0, n, chunks, mine)
	mid := frontHalf(first, hi)
	storeRelease(peers[0].r.addr(), packRange(gen, mid, hi))
	t0 := time.Now()
	ran, stole := p.runChunks(job, 0, first, mid, gen, peers, false)
	p.expect += uint64(chunks - ran)
	share, waited := p.wait(p.expect, t0)
	p.jobs.Add(1)
	absent := 0 // polling workers that never came: the caller took their first chunk
	if stole {
		for k, w := range ws {
			if first, _ := cut(k+1, n, chunks, mine); !w.cold && rangeLo(w.box.r.Load()) == first {
				absent++
			}
		}
	}
	p.judge(hot, absent, share, waited)
	return ran, hot == len(ws) && absent == 0
}

// cut returns participant i's range of a job of chunks chunks on n
// participants, the caller's (i = 0) being [0, mine) and the workers'
// near-equal parts of the rest.
func cut(i, n, chunks, mine int) (lo, hi int) {
	if i == 0 {
		return 0, mine
	}
	lo, hi = span(i-1, n-1, chunks-mine)
	return mine + lo, mine + hi
}

// runChunks runs chunks [lo, hi) (which participant part took from the
// front of its range), then part's other chunks, in order, then, from the
// back, those of participants that have not come or fall behind. Each
// participant so runs the same columns (or rows) of every GEMM of a given
// shape, whose share of the weights then stays in its core's cache, and
// the others take over only at the edge of its range. A worker (report)
// reports its own chunks done as soon as they are, before it looks for
// others' (which costs a cache line from each), then each chunk it takes
// over. It returns how many chunks it ran, and whether any of them was
// another participant's.
func (p *workerPool) runChunks(job parJob, part, lo, hi int, gen uint32, peers []*share, report bool) (ran int, stole bool) {
	for ; lo < hi; lo, hi = peers[part].takeFront(gen) {
		job.run(part, lo, hi)
		ran += hi - lo
	}
	if report && ran > 0 {
		p.report(ran)
	}
	// Once reported, the job may be over: from here on, only job and
	// peers as they were are used, and a chunk taken is of this job.
	for n := len(peers); ; {
		i := -1
		for q := 1; i < 0 && q < n; q++ {
			i = peers[(part+q)%n].take(gen)
		}
		if i < 0 {
			return ran, stole
		}
		job.run(part, i, i+1)
		ran++
		stole = true
		if report {
			p.report(1)
		}
	}
}

// report adds a worker's chunks done to finished, and wakes the caller if
// it is blocked.
func (p *workerPool) report(chunks int) {
	if p.finished.Add(uint64(chunks)); p.waiting.Load() && p.waiting.CompareAndSwap(true, false) {
		p.done <- struct{}{}
	}
}

// judge updates the back-off after a job: hot of its workers were polling
// when it came (the others had to be woken), absent of those hot ones
// never joined; the caller's own chunks took share, then it waited for the
// workers. The split did not pay when no polling worker came, or when the
// caller waited longer than its share took (about the GEMM's time on one
// core). A woken worker may join late without its core being busy; one
// that was polling and did not come has lost its core to other work (an OS
// time slice lasts milliseconds). After two such jobs in a row (one can be
// a hiccup of a shared machine), the next 2, 4, ... maxSkip GEMMs leave the
// workers be. A job whose polling workers never came also stops the
// workers lingering for a while (lingerQuiet).
func (p *workerPool) judge(hot, absent int, share, waited time.Duration) {
	if hot > 0 && absent == hot {
		// Polling workers that never came: their cores have other work.
		p.contended.Store(int64(time.Since(epoch)) + 1)
	}
	switch {
	case hot > 0 && absent == hot, waited > share:
		p.missed = min(p.missed+1, 16)
		if p.missed >= 2 {
			p.skip.Store(int32(min(1<<(p.missed-1), maxSkip)))
		}
	case hot > 0:
		p.missed = 0
	}
}

// forget drops the last jobs' references to their callers' data (A, B, C
// and the views of B; the rows of QuantizeRowsDynamicU8), so that they do
// not outlive those calls in the pool, if the pool is free. A worker calls
// it once it has said it parks (sleeping), and a caller releasing the pool
// when every worker has: one of the two finds the pool free. Clearing them
// at the end of every job instead moved the jobs' and the workers' views'
// cache lines between the cores once more per job.
func (p *workerPool) forget() {
	if !p.busy.CompareAndSwap(false, true) {
		return // held: its release, or a worker parking after it, forgets
	}
	u8, sg := &p.u8, &p.sg
	u8.a, u8.pb, u8.c, u8.epi = nil, nil, nil, nil
	for _, v := range u8.views {
		v.data, v.colSum = nil, nil
	}
	sg.a, sg.b, sg.c, sg.pb = nil, nil, nil, nil
	for _, v := range sg.views {
		v.data = nil
	}
	p.qr = quantRowsJob{}
	p.busy.Store(false)
}

// resetBackoff makes the next GEMMs try the workers again (for tests).
func (p *workerPool) resetBackoff() { p.skip.Store(0) }

// release gives the pool back after runJob, and forgets the job if no
// worker is awake to do it when it parks.
func (p *workerPool) release() {
	p.busy.Store(false)
	if ws := p.workers.Load(); ws != nil {
		for _, w := range *ws {
			if !w.sleeping.Load() {
				return
			}
		}
		p.forget()
	}
}

// wait returns when the workers have finished target chunks over all
// jobs, and, if they had not when it was called, how long the caller's own
// chunks took (since t0) and how long it then waited for the workers
// (else zeros). It polls for as long as the caller's chunks took, and at
// least callerSpin, then blocks until a worker that finishes wakes it.
// A clock read costs about 60 ns here, on a hand-off of a few hundred:
// wait reads none when the workers are done, and polling, one every 64
// polls, the last of which it returns as waited (short of the time it
// polled by up to 64 polls).
func (p *workerPool) wait(target uint64, t0 time.Time) (share, waited time.Duration) {
	if p.finished.Load() == target {
		return 0, 0
	}
	t1 := time.Now()
	share = t1.Sub(t0)
	spin := max(callerSpin, share)
	for i := 0; p.finished.Load() != target; i++ {
		if i%64 != 63 {
			continue
		}
		if waited = time.Since(t1); waited <= spin {
			continue
		}
		for {
			p.waiting.Store(true)
			if p.finished.Load() == target {
				if !p.waiting.CompareAndSwap(true, false) {
					<-p.done // a worker saw waiting and is sending
				}
				break
			}
			<-p.done
			if p.finished.Load() == target {
				break
			}
		}
		return share, time.Since(t1)
	}
	return share, waited
}

// contendedWithin reports whether, within the last d, a caller found the
// pool busy or a job's polling workers never came.
func (p *workerPool) contendedWithin(d time.Duration) bool {
	c := p.contended.Load()
	return c != 0 && time.Since(epoch)-time.Duration(c-1) <= d
}

// await returns w's box's r once it holds a job after generation seen: it
// polls for spin, then, until linger has passed, polls and yields its P
// between polls (unless the cores lately had other work: lingerQuiet),
// then parks until a caller wakes it. It reads w.box once: the caller
// writes w's line at every job (cold), and a poll that loaded w.box from it
// missed on that line before it could load the box's.
func (p *workerPool) await(w *worker, seen uint32, spin, linger time.Duration) uint64 {
	start, box := time.Now(), w.box
	for i := 0; ; i++ {
		if r := box.r.Load(); uint32(r>>32) != seen {
			return r
		}
		if i%64 != 63 {
			continue
		}
		if el := time.Since(start); el < spin {
			continue
		} else if el < linger && !p.contendedWithin(lingerQuiet) {
			runtime.Gosched()
			continue
		}
		w.sleeping.Store(true)
		p.forget()
		if r := box.r.Load(); uint32(r>>32) != seen && w.sleeping.CompareAndSwap(true, false) {
			return r // a job came before the caller saw us asleep
		}
		w.wake.wait()
		w.waking.Store(false)
		return box.r.Load()
	}
}

func (p *workerPool) loop(w *worker) {
	initLinger()
	var seen uint32
	spin, linger, box, part := workerSpin, time.Duration(0), w.box, w.id+1
	for {
		seen = uint32(p.await(w, seen, spin, linger) >> 32)
		lo, hi := box.takeFront(seen)
		if lo >= hi {
			// The caller took our chunks: we came too late. Poll only
			// after a job we ran: one that came too late, woken in a
			// server whose goroutines keep the other Ps busy, would hold
			// up a P that they need.
			spin, linger = 0, 0
			continue
		}
		spin, linger = workerSpin, time.Duration(workerLinger.Load())
		p.runChunks(box.job, part, lo, hi, seen, box.peers, true)
	}
}
