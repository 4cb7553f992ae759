package kernels

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"
)

// withParallel runs f with threads cores per GEMM and every GEMM of at least
// minMACs multiply-accumulates split, without the pool's back-off.
func withParallel(threads, minMACs int, f func()) {
	prevT, prevMin := SetParallelism(threads), parMinMACs
	parMinMACs, poolBackoff = minMACs, false
	defer func() { SetParallelism(prevT); parMinMACs, poolBackoff = prevMin, true }()
	f()
}

// TestGemmU8S8ParallelExact splits every GEMM, however small, over 2 and 3
// cores and checks it bit for bit against the reference with guard-padded C
// (gemmCase.check): every remainder of 64 columns (column split), and shapes
// of one or two panels with up to 40 rows (row split, every remainder of 6).
func TestGemmU8S8ParallelExact(t *testing.T) {
	gemmForEachTier(t, func(t *testing.T) {
		for _, threads := range []int{2, 3} {
			withParallel(threads, 1, func() {
				r := rand.New(rand.NewPCG(3, uint64(Active())*10+uint64(threads)))
				ks := []int{1, 3, 4, 8, 17, 64, 100}
				jobs0 := pool.jobs.Load()
				for n := 1; n <= 3*panelN; n++ {
					for _, m := range []int{1, 2, 5, 6, 7, 12, 13} {
						gemmRandCase(r, m, n, ks[r.IntN(len(ks))]).check(t)
					}
				}
				for _, n := range []int{1, 63, 64, 65, 127} {
					for m := 14; m <= 40; m++ {
						gemmRandCase(r, m, n, ks[r.IntN(len(ks))]).check(t)
					}
				}
				if pool.jobs.Load() == jobs0 {
					t.Fatalf("%d threads: no GEMM was split", threads)
				}
			})
		}
	})
}

// takePool is pool.acquire(want) for a test that needs the pool (want 0:
// only the pool's state a caller may touch): it retries while a parking
// worker's forget holds the pool for a moment, which a single try can run
// into, or while the back-off, if on, refuses it.
func takePool(t *testing.T, want int) []*worker {
	t.Helper()
	for start := time.Now(); ; {
		if ws, ok := pool.acquire(want); ok {
			return ws
		}
		if time.Since(start) > time.Second {
			t.Fatal("pool held for a second")
		}
		runtime.Gosched()
	}
}

// TestCallerShare checks the caller's share of int8 jobs (callerShare):
// cut gives every participant a range and covers the job, mine and record
// stay within bounds, the share moves halfway to what the caller ran, and
// GEMMs whose caller takes the least and the most it may are exact.
func TestCallerShare(t *testing.T) {
	for n := 2; n <= 5; n++ {
		for chunks := n; chunks <= 40; chunks++ {
			for mine := 1; mine <= chunks-(n-1); mine++ {
				next := 0
				for i := range n {
					lo, hi := cut(i, n, chunks, mine)
					if lo != next || hi <= lo {
						t.Fatalf("cut(%d, %d, %d, %d) = [%d, %d), want a range from %d", i, n, chunks, mine, lo, hi, next)
					}
					next = hi
				}
				if next != chunks {
					t.Fatalf("cut(_, %d, %d, %d) ends at %d", n, chunks, mine, next)
				}
			}
		}
	}

	takePool(t, 0)
	pb := PackB(make([]int8, 64*200), 64, 200)
	s := pool.shareOf(Active(), 8, pb, 2)
	if s.frac != 0.5 || s.mine(24) != 12 {
		t.Fatalf("new share: frac %v, mine(24) %d; want 0.5, 12", s.frac, s.mine(24))
	}
	for _, step := range []struct {
		ran  int
		want float64
	}{{18, 0.625}, {24, 0.75}, {24, 0.75}, {0, 0.375}, {0, 0.25}} {
		s.record(step.ran, 24)
		if s.frac != step.want {
			t.Fatalf("after the caller ran %d of 24: frac %v, want %v", step.ran, s.frac, step.want)
		}
	}
	if got := pool.shareOf(Active(), 8, pb, 2); got != s || got.frac != 0.25 {
		t.Fatalf("the same shape again: a share with frac %v, want the one kept (0.25)", got.frac)
	}
	if got := pool.shareOf(Active(), 8, pb, 3); got.frac != 1.0/3 || got.mine(3) != 1 || got.mine(1000) != 333 {
		t.Fatalf("on 3 cores: frac %v, mine(3) %d, mine(1000) %d; want 1/3, 1, 333", got.frac, got.mine(3), got.mine(1000))
	}
	pool.release()

	gemmForEachTier(t, func(t *testing.T) {
		withParallel(2, 1, func() {
			r := rand.New(rand.NewPCG(11, uint64(Active())))
			for _, s := range [][3]int{{8, 3*panelN - 5, 40}, {13, 130, 17}, {40, 70, 64}} {
				gc := gemmRandCase(r, s[0], s[1], s[2])
				pb := PackB(gc.b, gc.k, gc.n)
				for _, frac := range []float64{0, 1} {
					takePool(t, 0)
					pool.shareOf(Active(), gc.m, pb, 2).frac = frac // mine clamps it
					pool.release()
					gc.checkPacked(t, pb)
				}
			}
		})
	})
}

// TestU8JobRanges runs int8 jobs cut as gemmU8S8Split cuts them, in
// random ranges of chunks on random participants, as the pool's owners and
// thieves take them, and checks C bit for bit, guard cells included: split
// by columns into blocks of rows of a panel or into halves of panels (a
// range then starts or ends inside a panel), by whole panels, and by rows.
func TestU8JobRanges(t *testing.T) {
	gemmForEachTier(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(9, uint64(Active())))
		for _, s := range [][3]int{{8, 3*panelN - 5, 40}, {10, 150, 70}, {13, 130, 17}, {32, 200, 64}, {1, 129, 9}, {7, panelN, 5}, {300, 70, 33}} {
			gc := gemmRandCase(r, s[0], s[1], s[2])
			pb := PackB(gc.b, gc.k, gc.n)
			for _, parts := range []int{2, 3} {
				size := (gc.m-1)*gc.ldc + gc.n
				buf := make([]int32, size+2*gemmGuard)
				c := buf[gemmGuard : gemmGuard+size : gemmGuard+size]
				j, got := planU8(Active(), gc.m, gc.a, gc.lda, gc.aZero, pb, c, gc.ldc, parts)
				if got < 2 && Active() == AMX && gc.n <= panelN && gc.m <= 16 {
					continue // one panel of one row tile: nothing to cut
				}
				if got < 2 {
					t.Fatalf("m=%d n=%d: planned on %d cores, want %d", gc.m, gc.n, got, parts)
				}
				if blocks := (gc.m + rowUnit(Active()) - 1) / rowUnit(Active()); j.byCols && cutsPanels(Active(), gc.m) && j.rb != blocks {
					t.Fatalf("m=%d n=%d: %d blocks of rows per panel, want %d", gc.m, gc.n, j.rb, blocks)
				}
				if j.byCols && j.halves != halvesPanels(Active(), gc.m, pb) {
					t.Fatalf("m=%d n=%d: halves of panels %v, want %v", gc.m, gc.n, j.halves, !j.halves)
				}
				j.grow(got)
				want := make([]int32, size+2*gemmGuard)
				for i := range want {
					want[i] = gemmSentinel
				}
				refGemm(gc.m, gc.n, gc.k, gc.a, gc.lda, gc.aZero, gc.b, want[gemmGuard:], gc.ldc)
				for round := range 8 {
					for i := range buf {
						buf[i] = gemmSentinel
					}
					j.id++
					for lo := 0; lo < j.chunks; {
						hi := lo + 1 + r.IntN(j.chunks-lo)
						if round == 0 {
							hi = lo + 1 // one chunk at a time
						}
						j.run(r.IntN(got), lo, hi)
						lo = hi
					}
					for i := range buf {
						if buf[i] != want[i] {
							t.Fatalf("%v m=%d n=%d k=%d on %d: cell %d (guard %d) = %d, want %d",
								Active(), gc.m, gc.n, gc.k, got, i-gemmGuard, gemmGuard, buf[i], want[i])
						}
					}
				}
			}
		}
	})
}

// TestGemmU8S8ParallelLarge runs shapes above the default split threshold
// (both split directions and several row chunks) on 2 cores.
func TestGemmU8S8ParallelLarge(t *testing.T) {
	gemmForEachTier(t, func(t *testing.T) {
		if Active() == Generic && testing.Short() {
			t.Skip("slow")
		}
		withParallel(2, parMinMACs, func() {
			r := rand.New(rand.NewPCG(4, uint64(Active())))
			jobs0 := pool.jobs.Load()
			// Along N; along M (one panel); along M (M >= parRowSplitM);
			// large enough for the AMX tier to split along N (A packed
			// once per core): one row tile and a K tail, three row
			// tiles, five.
			for _, s := range [][3]int{{1, 1000, 1100}, {8, 777, 700}, {130, 200, 255}, {300, 64, 200}, {parRowSplitM + 7, 300, 70},
				{16, 1100, 1000}, {40, 1000, 448}, {70, 600, 300}} {
				gemmRandCase(r, s[0], s[1], s[2]).check(t)
			}
			if pool.jobs.Load() == jobs0 {
				t.Fatal("no GEMM was split")
			}
		})
	})
}

// TestGemmU8S8ParallelBusyPool checks that a caller finding the pool taken
// computes alone, correctly, instead of waiting for it.
func TestGemmU8S8ParallelBusyPool(t *testing.T) {
	withParallel(2, 1, func() {
		ws := takePool(t, 1)
		jobs0 := pool.jobs.Load()
		gemmRandCase(rand.New(rand.NewPCG(5, 5)), 9, 200, 50).check(t)
		if pool.jobs.Load() != jobs0 {
			t.Error("a GEMM ran on the pool while another caller held it")
		}
		pool.runJob(ws, (*u8Job)(nil), 0, 0)
		pool.release()
	})
}

// TestGemmParallelConcurrentCallers runs int8 and fp32 GEMMs from several
// goroutines at once, all eligible for the pool, and checks each result
// against the same product computed on one core.
func TestGemmParallelConcurrentCallers(t *testing.T) {
	const callers, rounds = 4, 20
	r := rand.New(rand.NewPCG(6, 6))
	type u8case struct {
		gc   gemmCase
		pb   *PackedB
		want []int32
	}
	type f32case struct {
		m, n, k int
		a, b    []float32
		pb      *SgemmPackedB
		want    []float32
	}
	var u8s []u8case
	var f32s []f32case
	withParallel(1, 1, func() {
		for _, s := range [][3]int{{1, 300, 200}, {8, 260, 100}, {50, 64, 90}, {20, 130, 33}} {
			gc := gemmRandCase(r, s[0], s[1], s[2])
			pb := PackB(gc.b, gc.k, gc.n)
			want := make([]int32, (gc.m-1)*gc.ldc+gc.n)
			GemmU8S8(gc.m, gc.a, gc.lda, gc.aZero, pb, want, gc.ldc)
			u8s = append(u8s, u8case{gc, pb, want})
		}
		for _, s := range [][3]int{{1, 300, 200}, {8, 260, 100}, {33, 100, 70}} {
			fc := f32case{m: s[0], n: s[1], k: s[2]}
			fc.a, fc.b = make([]float32, fc.m*fc.k), make([]float32, fc.k*fc.n)
			for _, x := range [][]float32{fc.a, fc.b} {
				for i := range x {
					x[i] = float32(r.NormFloat64())
				}
			}
			fc.pb = PackSgemmB(false, fc.k, fc.n, fc.b, fc.n)
			fc.want = make([]float32, fc.m*fc.n)
			SgemmPacked(false, fc.m, 1, fc.a, fc.k, fc.pb, 0, fc.want, fc.n)
			f32s = append(f32s, fc)
		}
	})
	withParallel(2, 1, func() {
		var wg sync.WaitGroup
		for g := range callers {
			wg.Go(func() {
				for i := range rounds {
					u := u8s[(g+i)%len(u8s)]
					c := make([]int32, len(u.want))
					GemmU8S8(u.gc.m, u.gc.a, u.gc.lda, u.gc.aZero, u.pb, c, u.gc.ldc)
					for x := range c {
						if c[x] != u.want[x] {
							t.Errorf("caller %d: int8 %dx%dx%d: C[%d] = %d, want %d", g, u.gc.m, u.gc.n, u.gc.k, x, c[x], u.want[x])
							return
						}
					}
					f := f32s[(g+i)%len(f32s)]
					fc := make([]float32, len(f.want))
					SgemmPacked(false, f.m, 1, f.a, f.k, f.pb, 0, fc, f.n)
					for x := range fc {
						if math.Float32bits(fc[x]) != math.Float32bits(f.want[x]) {
							t.Errorf("caller %d: fp32 %dx%dx%d: C[%d] = %v, want %v", g, f.m, f.n, f.k, x, fc[x], f.want[x])
							return
						}
					}
				}
			})
		}
		wg.Wait()
	})
}

// TestSgemmParallelBitIdentical checks that splitting Sgemm and SgemmPacked
// (along N, and along M for packed B) changes no bit of C, padding included,
// with blocks shrunk so that B spans several kc blocks.
func TestSgemmParallelBitIdentical(t *testing.T) {
	sgemmForEachTier(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(7, uint64(Active())))
		sgemmWithBlocks(16, 64, 8, func() {
			jobs0 := pool.jobs.Load()
			for _, tc := range []sgemmCase{
				{m: 1, n: 100, k: 50, alpha: 1},
				{m: 1, n: 33, k: 40, alpha: 0.5, beta: 2, transA: true},
				{m: 3, n: 97, k: 37, alpha: 1, beta: 1},
				{m: 8, n: 64, k: 33, alpha: 1, transB: true},
				{m: 15, n: 161, k: 17, alpha: -1, beta: 0.25, transA: true},
				{m: 29, n: 20, k: 48, alpha: 1},
				{m: 40, n: 47, k: 65, alpha: 2, beta: 1, transA: true, transB: true},
				{m: 70, n: 31, k: 30, alpha: 1, transB: true},
				{m: 9, n: 130, k: 16, alpha: 1, nanC: true},
				{m: parRowSplitM + 5, n: 100, k: 20, alpha: 1, beta: 0.5},
			} {
				for _, packed := range []bool{false, true} {
					a, lda, b, ldb, c, ldc := sgemmOperands(rng, tc)
					var pb *SgemmPackedB
					if packed {
						pb = PackSgemmB(tc.transB, tc.k, tc.n, b, ldb)
					}
					run := func(threads int) []float32 {
						got := append([]float32(nil), c...)
						withParallel(threads, 1, func() {
							if packed {
								SgemmPacked(tc.transA, tc.m, tc.alpha, a, lda, pb, tc.beta, got, ldc)
							} else {
								Sgemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, got, ldc)
							}
						})
						return got
					}
					want := run(1)
					checkSgemm(t, tc, a, lda, b, ldb, c, want, ldc)
					for _, threads := range []int{2, 3} {
						got := run(threads)
						for x := range got {
							if math.Float32bits(got[x]) != math.Float32bits(want[x]) {
								t.Fatalf("%v packed=%v threads=%d: C[%d] = %v, want %v (1 thread)", tc, packed, threads, x, got[x], want[x])
							}
						}
					}
				}
			}
			if Active() != Generic && pool.jobs.Load() == jobs0 {
				t.Fatal("no SGEMM was split")
			}
		})
	})
}

// TestParallelNoAllocs checks that a split GEMM allocates nothing once the
// pool and its buffers are warm.
func TestParallelNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	r := rand.New(rand.NewPCG(8, 8))
	gc := gemmRandCase(r, 8, 1000, 300)
	pb := PackB(gc.b, gc.k, gc.n)
	c := make([]int32, (gc.m-1)*gc.ldc+gc.n)
	gr := gemmRandCase(r, 100, 64, 300) // split by rows
	pbr := PackB(gr.b, gr.k, gr.n)
	cr := make([]int32, (gr.m-1)*gr.ldc+gr.n)
	out := make([]float32, gc.m*gc.n)
	sc := []float32{0.01}
	fa, fb := make([]float32, 8*300), make([]float32, 300*1000)
	fpb := PackSgemmB(false, 300, 1000, fb, 1000)
	fc := make([]float32, 8*1000)
	withParallel(2, 1, func() {
		for _, tc := range []struct {
			name string
			f    func()
		}{
			{"GemmU8S8/cols", func() { GemmU8S8(gc.m, gc.a, gc.lda, gc.aZero, pb, c, gc.ldc) }},
			{"GemmU8S8/rows", func() { GemmU8S8(gr.m, gr.a, gr.lda, gr.aZero, pbr, cr, gr.ldc) }},
			{"GemmU8S8Dequant", func() {
				if err := GemmU8S8Dequant(gc.m, gc.a, gc.lda, gc.aZero, 0.02, pb, sc, nil, true, out, gc.n); err != nil {
					t.Fatal(err)
				}
			}},
			{"SgemmPacked", func() { SgemmPacked(false, 8, 1, fa, 300, fpb, 0, fc, 1000) }},
			{"Sgemm", func() { Sgemm(false, false, 8, 1000, 300, 1, fa, 300, fb, 1000, 0, fc, 1000) }},
		} {
			jobs0 := pool.jobs.Load()
			tc.f()
			if allocs := testing.AllocsPerRun(50, tc.f); allocs != 0 {
				t.Errorf("%s: %v allocations per call, want 0", tc.name, allocs)
			}
			if Best != Generic && pool.jobs.Load() == jobs0 {
				t.Errorf("%s: not split", tc.name)
			}
		}
	})
}

func TestParseThreads(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    int
		wantErr bool
	}{
		{"", 7, false}, {"1", 1, false}, {" 4 ", 4, false},
		{"0", 7, true}, {"-2", 7, true}, {"two", 7, true},
	} {
		got, err := parseThreads(tc.in, 7)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("parseThreads(%q, 7) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestSetParallelism(t *testing.T) {
	orig := SetParallelism(3)
	defer SetParallelism(orig)
	if got := Parallelism(); got != 3 {
		t.Errorf("Parallelism() = %d after SetParallelism(3)", got)
	}
	if prev := SetParallelism(0); prev != 3 {
		t.Errorf("SetParallelism(0) returned %d, want 3", prev)
	}
	if got, want := Parallelism(), runtime.GOMAXPROCS(0); os.Getenv(kernelThreadsEnv) == "" && got != want {
		t.Errorf("Parallelism() = %d after SetParallelism(0), want the default GOMAXPROCS %d", got, want)
	}
}

// nopJob is a job whose chunks do nothing.
type nopJob struct{}

func (nopJob) run(int, int, int) {}

// TestPoolBackoff checks the back-off: which jobs count as misses, that a
// lone miss is forgiven, that GEMMs then skip the pool for 2, 4, ...
// maxSkip calls, and that the pool is tried again after them.
func TestPoolBackoff(t *testing.T) {
	defer SetParallelism(SetParallelism(2))
	pool.resetBackoff()
	takePool(t, 1) // held until the jobs below are done
	defer pool.resetBackoff()
	const us = time.Microsecond
	for _, c := range []struct {
		name            string
		hot, cancelled  int
		share, waited   time.Duration
		miss, unchanged bool
	}{
		{"polling worker never came", 1, 1, 10 * us, 0, true, false},
		{"caller waited longer than its share", 1, 0, 10 * us, 11 * us, true, false},
		{"woken worker, waited longer than its share", 0, 0, 10 * us, 11 * us, true, false},
		{"one of two polling workers came", 2, 1, 10 * us, 2 * us, false, false},
		{"polling worker came, short wait", 1, 0, 10 * us, 5 * us, false, false},
		{"woken worker late, short wait", 0, 0, 10 * us, 5 * us, false, true},
	} {
		for _, before := range []int{0, 1, 5} {
			pool.missed = before
			pool.skip.Store(0)
			pool.judge(c.hot, c.cancelled, c.share, c.waited)
			want, wantSkip := 0, 0
			switch {
			case c.unchanged:
				want = before
			case c.miss:
				want = before + 1
				if want >= 2 {
					wantSkip = min(1<<(want-1), maxSkip)
				}
			}
			if pool.missed != want || int(pool.skip.Load()) != wantSkip {
				t.Errorf("%s, after %d misses: missed %d, skip %d; want %d, %d", c.name, before, pool.missed, pool.skip.Load(), want, wantSkip)
			}
		}
	}
	pool.missed = 16
	pool.judge(1, 1, 0, 0)
	if got := pool.skip.Load(); got != maxSkip {
		t.Errorf("after many misses: skip %d, want maxSkip %d", got, maxSkip)
	}

	// Real jobs go through judge: a worker that looks polling (neither
	// parked nor woken) but whose goroutine never runs, as when its core
	// is taken, has its chunks taken by the caller; the second such job in
	// a row backs off.
	absent := []*worker{newWorker(0)}
	pool.missed = 0
	pool.skip.Store(0)
	pool.runJob(absent, nopJob{}, 2, 1)
	if pool.missed != 1 || pool.skip.Load() != 0 {
		t.Fatalf("after one job without its worker: missed %d, skip %d; want 1, 0", pool.missed, pool.skip.Load())
	}
	pool.runJob(absent, nopJob{}, 2, 1)
	skip := int(pool.skip.Load())
	pool.release()
	if skip != 2 {
		t.Fatalf("after two jobs without their worker: skip %d, want 2", skip)
	}
	skips := 0
	for start := time.Now(); skips <= maxSkip && time.Since(start) < time.Second; {
		backingOff := pool.skip.Load() > 0
		if _, ok := pool.acquire(1); ok {
			pool.release()
			break
		}
		if backingOff {
			skips++
		} else {
			runtime.Gosched() // held by a parking worker's forget: not a skip
		}
	}
	if skips != skip {
		t.Errorf("%d GEMMs skipped the pool, want %d", skips, skip)
	}
}

// TestPoolForgets checks that once its workers park, the pool holds none
// of the last GEMMs' operands (which could be a model's weights, unloaded
// since).
func TestPoolForgets(t *testing.T) {
	if Best == Generic {
		t.Skip("the generic tier does not split")
	}
	r := rand.New(rand.NewPCG(9, 9))
	gc := gemmRandCase(r, 8, 1000, 300)
	pb := PackB(gc.b, gc.k, gc.n)
	c := make([]int32, (gc.m-1)*gc.ldc+gc.n)
	fa, fb := make([]float32, 8*300), make([]float32, 300*1000)
	fpb := PackSgemmB(false, 300, 1000, fb, 1000)
	fc := make([]float32, 8*1000)
	withParallel(2, 1, func() {
		jobs0 := pool.jobs.Load()
		GemmU8S8(gc.m, gc.a, gc.lda, gc.aZero, pb, c, gc.ldc)
		SgemmPacked(false, 8, 1, fa, 300, fpb, 0, fc, 1000)
		Sgemm(false, false, 8, 1000, 300, 1, fa, 300, fb, 1000, 0, fc, 1000)
		if pool.jobs.Load() < jobs0+3 {
			t.Fatal("the GEMMs were not split")
		}
	})
	held := func() string {
		if !pool.busy.CompareAndSwap(false, true) {
			return "busy"
		}
		defer pool.release()
		u8, sg := &pool.u8, &pool.sg
		if u8.a != nil || u8.pb != nil || u8.c != nil || sg.a != nil || sg.b != nil || sg.c != nil || sg.pb != nil {
			return "a job's operands"
		}
		for _, v := range u8.views {
			if v.data != nil || v.colSum != nil {
				return "a view of B"
			}
		}
		for _, v := range sg.views {
			if v.data != nil {
				return "a view of fp32 B"
			}
		}
		return ""
	}
	deadline := time.Now().Add(5 * time.Second)
	for what := held(); what != ""; what = held() {
		if time.Now().After(deadline) {
			t.Fatalf("5 s after the last split GEMM, the pool still holds %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestGemmDequantSplit checks, on every tier and on 1, 2 and 3 cores with
// every GEMM split, that GemmU8S8Dequant and GemmU8S8DequantRows, whose
// cores dequantize the parts of C they computed, give the bits of the GEMM
// followed by DequantizeBiasReLU or DequantizeRowsBiasReLU, and write no
// cell outside the output (between rows included): split by halves of
// panels, blocks of rows of a panel, whole panels and rows, in two blocks
// of rows (epilogueBytes), and a GEMV.
func TestGemmDequantSplit(t *testing.T) {
	gemmForEachTier(t, func(t *testing.T) {
		r := newTestRand(41)
		for _, threads := range []int{1, 2, 3} {
			withParallel(threads, 1, func() {
				jobs0 := pool.jobs.Load()
				for _, s := range [][3]int{{8, 200, 64}, {13, 130, 17}, {32, 300, 40}, {300, 70, 33}, {100, 3000, 5}, {48, 640, 96}, {1, 129, 9}} {
					m, n, k := s[0], s[1], s[2]
					gc := gemmRandCase(r, m, n, k)
					pb := PackB(gc.b, k, n)
					sc, bias := make([]float32, n), make([]float32, n)
					for j := range sc {
						sc[j] = float32(r.Float64()*0.1 + 1e-3)
						bias[j] = float32(r.NormFloat64())
					}
					aScales, aZeros := make([]float32, m), make([]uint8, m)
					for i := range m {
						aScales[i], aZeros[i] = float32(r.Float64()+1e-3), uint8(r.UintN(256))
					}
					aZeros[0] = 255
					if m > 1 {
						aZeros[1] = 0
					}
					relu := m%2 == 0
					c := make([]int32, m*n)
					c0 := make([]int32, m*n)
					GemmU8S8(m, gc.a, gc.lda, gc.aZero, pb, c, n)
					GemmU8S8(m, gc.a, gc.lda, 0, pb, c0, n)
					for _, tc := range []struct {
						name string
						want func(out []float32) error
						got  func(out []float32, ldo int) error
					}{
						{"GemmU8S8Dequant", func(out []float32) error {
							return DequantizeBiasReLU(c, m, n, n, 0.3, sc, bias, relu, out)
						}, func(out []float32, ldo int) error {
							return GemmU8S8Dequant(m, gc.a, gc.lda, gc.aZero, 0.3, pb, sc, bias, relu, out, ldo)
						}},
						{"GemmU8S8DequantRows, a zero point per row", func(out []float32) error {
							return DequantizeRowsBiasReLU(c0, m, n, n, aScales, aZeros, pb, sc[:1], nil, relu, out)
						}, func(out []float32, ldo int) error {
							return GemmU8S8DequantRows(m, gc.a, gc.lda, 0, aScales, aZeros, pb, sc[:1], nil, relu, out, ldo)
						}},
						{"GemmU8S8DequantRows, one zero point", func(out []float32) error {
							return DequantizeRowsBiasReLU(c, m, n, n, aScales, nil, pb, sc, bias, relu, out)
						}, func(out []float32, ldo int) error {
							return GemmU8S8DequantRows(m, gc.a, gc.lda, gc.aZero, aScales, nil, pb, sc, bias, relu, out, ldo)
						}},
					} {
						want := make([]float32, m*n)
						if err := tc.want(want); err != nil {
							t.Fatal(err)
						}
						checkDequantInto(t, fmt.Sprintf("%s m=%d n=%d k=%d on %d", tc.name, m, n, k, threads), m, n, n+3, want, tc.got)
					}
				}
				if split := pool.jobs.Load() != jobs0; split != (threads > 1) {
					t.Errorf("on %d cores: split %v", threads, split)
				}
			})
		}
	})
	pb := PackB(make([]int8, 6), 2, 3)
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"nil pb", GemmU8S8DequantRows(1, make([]uint8, 2), 2, 0, []float32{1}, nil, nil, []float32{1}, nil, false, make([]float32, 3), 3)},
		{"short a", GemmU8S8DequantRows(2, make([]uint8, 3), 2, 0, []float32{1, 1}, nil, pb, []float32{1}, nil, false, make([]float32, 6), 3)},
		{"short aScales", GemmU8S8DequantRows(2, make([]uint8, 4), 2, 0, []float32{1}, nil, pb, []float32{1}, nil, false, make([]float32, 6), 3)},
		{"short aZeros", GemmU8S8DequantRows(2, make([]uint8, 4), 2, 0, []float32{1, 1}, []uint8{0}, pb, []float32{1}, nil, false, make([]float32, 6), 3)},
		{"short out", GemmU8S8DequantRows(2, make([]uint8, 4), 2, 0, []float32{1, 1}, nil, pb, []float32{1}, nil, false, make([]float32, 5), 3)},
	} {
		if !errors.Is(tc.err, ErrShape) {
			t.Errorf("%s: got %v, want ErrShape", tc.name, tc.err)
		}
	}
}
