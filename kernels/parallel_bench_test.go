package kernels

import (
	"fmt"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corvidml/corvid/bench/stats"
)

// windowVariant is one of the things windowRates compares: call is timed;
// background, if set, runs on another goroutine, locked to its OS thread,
// for the whole window until stop is closed, and copies is how many calls'
// work one timed call stands for (2 when background runs calls of the same
// size alongside).
type windowVariant struct {
	call       func()
	background func(stop <-chan struct{})
	copies     float64
}

// windowRates runs the variants in turn, rounds times, each for a window of
// at least window (and 3 calls), and returns, per variant, the median rate
// of each of its windows in GOPS (ops per call times copies): neighbouring
// windows of different variants see about the same state of a shared
// machine.
func windowRates(rounds int, window time.Duration, ops float64, variants ...windowVariant) [][]float64 {
	rates := make([][]float64, len(variants))
	var per []float64
	for range rounds {
		for v, f := range variants {
			var stop chan struct{}
			done := make(chan struct{})
			if f.background != nil {
				stop = make(chan struct{})
				go func() {
					runtime.LockOSThread()
					defer runtime.UnlockOSThread()
					f.background(stop)
					close(done)
				}()
			}
			per = per[:0]
			for start := time.Now(); time.Since(start) < window || len(per) < 3; {
				t0 := time.Now()
				f.call()
				per = append(per, max(f.copies, 1)*ops/time.Since(t0).Seconds()/1e9)
			}
			if stop != nil {
				close(stop)
				<-done
			}
			slices.Sort(per)
			rates[v] = append(rates[v], per[len(per)/2])
		}
	}
	return rates
}

// handoff returns a windowVariant whose call runs mine (if not nil) while
// a goroutine that does nothing else, polling in the background for the
// next call, runs theirs, and returns when both are done. setup, if not
// nil, runs first on that goroutine (locked to its thread), and what it
// returns when the window ends.
func handoff(setup func() (undo func()), mine, theirs func()) windowVariant {
	var gen, done atomic.Int64
	return windowVariant{
		call: func() {
			g := gen.Add(1)
			if mine != nil {
				mine()
			}
			for done.Load() != g {
			}
		},
		background: func(stop <-chan struct{}) {
			if setup != nil {
				defer setup()()
			}
			for seen := done.Load(); ; { // calls after done are to run
				select {
				case <-stop:
					return
				default:
				}
				if g := gen.Load(); g != seen {
					seen = g
					theirs()
					done.Store(g)
				}
			}
		},
	}
}

// BenchmarkParallelScaling compares GemmU8S8 on two cores with one, per
// tier, in alternating windows of 20 ms (30 rounds), the timing goroutine
// pinned to one CPU (on a shared host the vCPUs' rates differ, and change
// within seconds). It reports the median per-window rates and the median
// and quartiles, over rounds, of:
//
//   - ratio: two cores (the pool) over one (PERF.md's target: >= 1.8 for
//     M >= 8);
//   - split-ratio: the ideal split over one core: the first half of the
//     columns on the timing goroutine and the second on a goroutine that
//     does nothing else and polls for the next call, locked to its thread;
//     what the pool would reach if its hand-off and balancing were free;
//   - pool/split: the pool over the ideal split, which the host's state
//     (its vCPUs' rates can differ by 2x, and change within seconds) moves
//     least;
//   - pool/both: the pool over the sum of one core's rate on each of the
//     two CPUs (other-GOPS: on the CPU the timing goroutine is not pinned
//     to), measured alone in neighbouring windows: how much of what the two
//     vCPUs can give the pool gets, when their rates differ (1.0: all);
//   - callers2-ratio: two independent one-core GEMMs at once over one, the
//     timed one's rate counted twice: what the two cores give at that
//     moment if they run at the same rate;
//   - pool/at-once: the pool over those two GEMMs' rates added up (each
//     the median of its calls' in the window): how much of what the two
//     cores give at that moment, both busy, the pool gets. This host's
//     vCPUs slow each other down when both run, by a few percent to 1.75x
//     (pool.go), which lowers ratio and pool/both but not this;
//   - at-once-ratio: those two GEMMs' rates added up over one core alone:
//     what the two vCPUs give work that needs no hand-off at all, the
//     ceiling of ratio at that moment (ratio is about pool/at-once times
//     this). It falls short of 2 when the vCPUs slow each other down, or
//     when the other one runs slower (other-GOPS).
//
// It times itself: run it with -benchtime 1x.
func BenchmarkParallelScaling(b *testing.B) {
	type config struct {
		name  string
		tier  Tier
		adapt bool
	}
	var configs []config
	for tier := AVX2; tier <= Best; tier++ {
		configs = append(configs, config{tier.String(), tier, false})
	}
	if Best == AMX {
		// As Corvid serves: the tiles or VNNI, whichever is faster on
		// one core, and on two (adapt.go). The ideal split runs the tiles.
		configs = append(configs, config{"amx-adaptive", AMX, true})
	}
	for _, cf := range configs {
		tier := cf.tier
		for _, s := range gemmBenchShapes {
			m, n, k := s[0], s[1], s[2]
			if m < 8 {
				continue
			}
			b.Run(fmt.Sprintf("%v/M=%d_N=%d_K=%d", cf.name, m, n, k), func(b *testing.B) {
				prev, err := SetTier(tier)
				if err != nil {
					b.Fatal(err)
				}
				defer SetTier(prev)
				defer SetAdaptive(SetAdaptive(cf.adapt))
				defer SetParallelism(SetParallelism(1))
				a, pb, c := gemmBenchOperands(m, n, k)
				c2 := make([]int32, m*n)
				call := func(threads int) windowVariant {
					return windowVariant{call: func() {
						SetParallelism(threads)
						GemmU8S8(m, a, k, 128, pb, c, n)
					}}
				}
				// The ideal split, at a panel boundary.
				half := (pb.np / panelN / 2) * panelN
				left, right := newColView(), newColView()
				pb.colView(left, 0, half)
				pb.colView(right, half, n)
				split := handoff(nil,
					func() { gemmU8S8(tier, m, a, k, 128, left, c, n) },
					func() { gemmU8S8(tier, m, a, k, 128, right, c[half:], n) })
				// A second, independent one-core GEMM of the same shape
				// on the other core, all the while, and its median rate
				// per call in each window, as windowRates takes the timed
				// one's.
				ops := 2 * float64(m*n*k)
				var otherAtOnce, per []float64
				callers2 := call(1)
				callers2.copies = 2
				callers2.background = func(stop <-chan struct{}) {
					SetParallelism(1)
					per = per[:0]
					defer func() {
						slices.Sort(per)
						otherAtOnce = append(otherAtOnce, per[len(per)/2])
					}()
					for {
						select {
						case <-stop:
							return
						default:
							t0 := time.Now()
							GemmU8S8(m, a, k, 128, pb, c2, n)
							per = append(per, ops/time.Since(t0).Seconds()/1e9)
						}
					}
				}
				// The same one-core GEMM on the other CPU, otherTimes
				// calls per hand-off (which then costs well under 1%).
				const otherTimes = 10
				other := handoff(func() func() {
					_, undo := pinOther(b)
					SetParallelism(1)
					return undo
				}, nil, func() {
					for range otherTimes {
						GemmU8S8(m, a, k, 128, pb, c2, n)
					}
				})
				other.copies = otherTimes
				_, undo := pinThread(b)
				defer undo()
				rates := windowRates(30, 20*time.Millisecond, ops, call(2), call(1), split, callers2, other)
				both, atOnce := make([]float64, len(rates[1])), make([]float64, len(rates[1]))
				for i := range both {
					both[i] = rates[1][i] + rates[4][i]
					atOnce[i] = rates[3][i]/2 + otherAtOnce[i]
				}
				stats.Median(b, rates[1], "1core-GOPS")
				stats.Median(b, rates[4], "other-GOPS")
				stats.Median(b, rates[0], "2core-GOPS")
				stats.Ratio(b, "ratio", rates[0], rates[1])
				stats.Ratio(b, "split-ratio", rates[2], rates[1])
				stats.Ratio(b, "pool/split", rates[0], rates[2])
				stats.Ratio(b, "pool/both", rates[0], both)
				stats.Ratio(b, "callers2-ratio", rates[3], rates[1])
				stats.Ratio(b, "pool/at-once", rates[0], atOnce)
				stats.Ratio(b, "at-once-ratio", atOnce, rates[1])
			})
		}
	}
}

// BenchmarkLineRoundTrip measures what every hand-off between the pool's
// cores is made of: a cache line written on one CPU and read on the other.
// Two goroutines, pinned to two CPUs, take turns storing a counter each on
// a line of its own and polling for the other's; it reports the median
// round trip (two such transfers, and a clock read) in ns. A job of the
// pool waits on about one and a half such round trips (pool.go).
func BenchmarkLineRoundTrip(b *testing.B) {
	var flags [2]struct {
		v atomic.Int64
		_ [56]byte
	}
	const n = 20000
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, undo := pinOther(b)
		defer undo()
		for i := int64(1); i <= n*int64(b.N); i++ {
			for flags[0].v.Load() != i {
			}
			flags[1].v.Store(i)
		}
	}()
	_, undo := pinThread(b)
	defer undo()
	rts := make([]float64, 0, n*b.N)
	for i := int64(1); i <= n*int64(b.N); i++ {
		t0 := time.Now()
		flags[0].v.Store(i)
		for flags[1].v.Load() != i {
		}
		rts = append(rts, float64(time.Since(t0).Nanoseconds()))
	}
	<-done
	stats.Median(b, rts, "ns/roundtrip")
}
