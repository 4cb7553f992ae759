package kernels

import (
	"os"
	"sync/atomic"
	"time"
)

// Tiles or VNNI, whichever runs faster now.
//
// On the AMX tier a GEMM can run on the tiles or on the AVX-512 VNNI
// kernels, and both give the same int32 results, bit for bit. The tiles
// are usually faster (8 x 768^2 on one core: 1,270 GOPS against 420-640),
// but on a shared host their rate drops by up to 3.5x for seconds at a time
// (the same GEMM: 340-390 GOPS), while the VNNI kernels' barely moves;
// then VNNI is the faster (8 x 3072^2: 300 GOPS against 200; and a GEMM
// split over two cores on the tiles at times ran slower than on one). So
// each PackedB keeps, per bucket of M, the recent time per row of each
// path, runs the faster, and now and then the other, to notice when that
// changes: the slower it is, the more rarely (explore), so that trying it
// costs about 1% or less.
//
// The tiles on the caller's core alone, where they would be split, are not
// a third path: while they ran, the pool's worker parked, so each split
// call that tried the other paths paid its wake-up and was timed slow. 32
// x 768^2 with the vCPUs' tiles at like rates then ran at 1.0-1.47x one
// core, against 1.52-1.64x with two paths; it gained only where the
// other vCPU's tiles ran 3x slower, from 0.82-1.0x to 0.97-1.0x
// (BenchmarkParallelScaling, amx-adaptive, four alternating runs).
//
// This applies to the AMX tier chosen by default; CORVID_KERNELS=amx (or
// SetAdaptive(false)) runs the tiles only, as the tier tests do.

// adaptMinMACs is the least work a GEMM must have to be timed: reading the
// clock twice costs about 50 ns, under 3% of a GEMM this size on the tiles.
const adaptMinMACs = 1 << 21

// adaptive enables the choice; see SetAdaptive.
var adaptive atomic.Bool

func init() { adaptive.Store(adaptiveDefault()) }

// adaptiveDefault is whether the choice is on by default: unless
// CORVID_KERNELS forces a tier.
func adaptiveDefault() bool { return os.Getenv("CORVID_KERNELS") == "" }

// SetAdaptive turns the per-weights choice between the tiles and the VNNI
// kernels on the AMX tier on or off and returns the previous setting. It
// is on unless CORVID_KERNELS is set. Tests and benchmarks use it to time
// one path.
func SetAdaptive(on bool) (prev bool) { return adaptive.Swap(on) }

// Path indices in pathTimes.
const (
	pathTiles = iota
	pathVNNI
)

// pathTimes is one bucket of M's recent times: per path, the time per row
// (see record), in 1/16 ns, 0 until measured.
type pathTimes struct {
	ns    [2]atomic.Int64
	calls atomic.Uint32
}

// tileChoice holds a PackedB's pathTimes: M = 1..32 one bucket each, then
// one per 32 rows up to 256, then one for the rest.
type tileChoice [32 + 8]pathTimes

func (tc *tileChoice) bucket(m int) *pathTimes {
	if m <= 32 {
		return &tc[m-1]
	}
	return &tc[32+min((m-33)/32, 7)]
}

// pick returns the path to run the next call on: each once first, then the
// faster, and the slower every explore calls.
func (pt *pathTimes) pick() int {
	n := pt.calls.Add(1)
	t, v := pt.ns[pathTiles].Load(), pt.ns[pathVNNI].Load()
	switch {
	case t == 0:
		return pathTiles
	case v == 0:
		return pathVNNI
	}
	best, other, ratio := pathTiles, pathVNNI, float64(v)/float64(t)
	if v < t {
		best, other, ratio = pathVNNI, pathTiles, float64(t)/float64(v)
	}
	if n%explore(ratio) == 0 {
		return other
	}
	return best
}

// explore returns every how many calls the slower path is tried when it
// takes ratio times as long: 16 + 64(ratio-1), at most maxExplore, which
// keeps the cost of trying it about 1.5% of the time or less.
func explore(ratio float64) uint32 {
	return 16 + uint32(min(64*(ratio-1), maxExplore-16))
}

// maxExplore bounds explore: however slow a path once was (its first call
// on a thread can take milliseconds, the kernel setting up the tiles'
// state), it is tried again within that many calls.
const maxExplore = 256

// record adds a call of m rows on path that took d. A time under the
// average replaces it: a call is slowed by what else the machine does
// (preemption, a busy pool), never sped up, so the path's fastest recent
// time is what it costs now. A longer one moves the average by 1/8.
func (pt *pathTimes) record(path, m int, d time.Duration) {
	x := max(int64(d)*16/int64(m), 1)
	if old := pt.ns[path].Load(); old != 0 && x > old {
		x = old + (x-old)/8
	}
	pt.ns[path].Store(x)
}

// adaptRan, if set (by tests, while no GEMM runs), is told the tier each
// chosen call runs on.
var adaptRan func(Tier)

// adaptTiles runs gemmU8S8Split on the tiles or the VNNI kernels and
// reports true, if the choice applies to this GEMM (see above); else it
// reports false and runs nothing.
func adaptTiles(t Tier, m int, a []uint8, lda int, aZero uint8, pb *PackedB, c []int32, ldc int, epi *epilogue) bool {
	if t != AMX || pb.tiles == nil || !amxTiles(m, pb) || float64(m)*float64(pb.n)*float64(pb.k) < adaptMinMACs || !adaptive.Load() {
		return false
	}
	pt := pb.tiles.bucket(m)
	path := pt.pick()
	run := AMX
	if path == pathVNNI {
		run = AVX512VNNI
	}
	if adaptRan != nil {
		adaptRan(run)
	}
	start := time.Now()
	gemmU8S8Split(run, m, a, lda, aZero, pb, c, ldc, epi)
	pt.record(path, m, time.Since(start))
	return true
}
