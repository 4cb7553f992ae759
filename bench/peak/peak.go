package main

import (
	"encoding/binary"
	"math"
	"runtime"
	"sync"
	"time"
)

// loopFunc runs iters iterations of a register-only loop; see peak_amd64.go.
type loopFunc func(iters int, src, dst *byte)

// family is one instruction family whose peak is measured.
type family struct {
	name  string // machine-readable name, e.g. "vnni_zmm"
	instr string // what the loop body executes
	needs string // the CPU features it needs, for "not available"
	unit  string // "GOPS" (int8, 2 ops per MAC) or "GFLOPS" (2 per FMA lane)
	float bool   // float32 sources and results, else u8 x s8 -> s32

	perIter     int     // instructions (AVX2: 3-instruction sequences) per loop iteration
	opsPerInstr float64 // ops per instruction or sequence: 2 x MACs or 2 x FMA lanes
	lanes       int     // 32-bit result lanes the loop stores to dst

}

func (f family) opsPerIter() float64 { return float64(f.perIter) * f.opsPerInstr }

// families lists every family in report order. The loop bodies are in
// peak_amd64.s: 12 independent accumulators x 2 rounds for VNNI and FMA
// (twice the 4-cycle latency x 1-2 pipes), 8 accumulators x 2 rounds of
// VPMADDUBSW+VPMADDWD+VPADDD for AVX2 (only the 1-cycle VPADDD is carried).
var families = []family{
	{name: "vnni_zmm", instr: "VPDPBUSD zmm", needs: "AVX512F, AVX512_VNNI", unit: "GOPS",
		perIter: 24, opsPerInstr: 2 * 64, lanes: 16},
	{name: "vnni_ymm", instr: "VPDPBUSD ymm (EVEX)", needs: "AVX512_VNNI, AVX512VL", unit: "GOPS",
		perIter: 24, opsPerInstr: 2 * 32, lanes: 8},
	{name: "avx2_int8", instr: "VPMADDUBSW+VPMADDWD+VPADDD ymm", needs: "AVX2", unit: "GOPS",
		perIter: 16, opsPerInstr: 2 * 32, lanes: 8},
	{name: "fma_zmm", instr: "VFMADD231PS zmm", needs: "AVX512F", unit: "GFLOPS", float: true,
		perIter: 24, opsPerInstr: 2 * 16, lanes: 16},
	{name: "fma_ymm", instr: "VFMADD231PS ymm", needs: "AVX, FMA", unit: "GFLOPS", float: true,
		perIter: 24, opsPerInstr: 2 * 8, lanes: 8},
}

// Source layout read by the loops: bytes [0,64) the u8 (or float32) vector
// a, [64,128) the s8 (or float32) vector b, [128,192) int16 ones for
// VPMADDWD. The int8 values are small, so VPMADDUBSW never saturates and
// every family computes the same dot product per 32-bit lane; the float
// values are powers of two, so the sums are exact for the test and stay far
// from both denormals and overflow.
const (
	srcLen = 192
	dstLen = 64

	floatA = 0.5
	floatB = 1.0 / 1024
)

func makeSrc(f family) []byte {
	src := make([]byte, srcLen)
	for i := range 64 {
		if f.float {
			if i%4 == 0 {
				binary.LittleEndian.PutUint32(src[i:], math.Float32bits(floatA))
				binary.LittleEndian.PutUint32(src[64+i:], math.Float32bits(floatB))
			}
			continue
		}
		src[i] = byte(1 + i%7)          // u8 in [1, 7]
		src[64+i] = byte(int8(i%5 - 2)) // s8 in [-2, 2]
	}
	for i := 128; i < srcLen; i += 2 {
		binary.LittleEndian.PutUint16(src[i:], 1)
	}
	return src
}

// microarch is a core whose per-instruction throughputs are known, so the
// implied clock (per-core rate / ops per cycle) can be checked against the
// clock measured by the dependent-add chain.
type microarch struct {
	name  string
	match func(vendor string, family, model uint32, avx512 bool) bool
	issue map[string]float64 // instructions (AVX2: sequences) per cycle per core
}

var microarchs = []microarch{
	{
		// shared/PERF.md: 512-bit ops double-pumped on two 256-bit pipes.
		name: "AMD Zen 4",
		match: func(v string, f, _ uint32, avx512 bool) bool {
			return v == "AuthenticAMD" && f == 0x19 && avx512
		},
		issue: map[string]float64{"vnni_zmm": 1, "vnni_ymm": 2, "avx2_int8": 1, "fma_zmm": 1, "fma_ymm": 2},
	},
	{
		// Two 512-bit FMA units (ports 0+1 and 5); VPDPBUSD on both.
		name: "Intel Sapphire/Emerald Rapids",
		match: func(v string, f, m uint32, _ bool) bool {
			return v == "GenuineIntel" && f == 6 && (m == 0x8f || m == 0xcf)
		},
		issue: map[string]float64{"vnni_zmm": 2, "vnni_ymm": 2, "avx2_int8": 1, "fma_zmm": 2, "fma_ymm": 2},
	},
}

// findMicroarch returns the known core this CPU is, or nil.
func findMicroarch(vendor string, family, model uint32, avx512 bool) *microarch {
	for i := range microarchs {
		if microarchs[i].match(vendor, family, model, avx512) {
			return &microarchs[i]
		}
	}
	return nil
}

// roundIssue rounds a measured issue rate (instructions per cycle) to the
// nearest plausible pipe count: 0.5 (one pipe every other cycle), 1, 2, 3 or
// 4. It is used only for cores missing from microarchs.
func roundIssue(r float64) float64 {
	if r < 0.75 {
		return 0.5
	}
	return min(math.Round(r), 4)
}

// measurement is the best rate seen for one family on some cores.
type measurement struct {
	cores   int
	total   float64 // ops per second over all cores
	perCore float64 // total / cores
	iters   int     // loop iterations per call
	rounds  int     // timed rounds
	best    time.Duration
}

// defaultCall is how long one timed call takes by default: long enough that
// the start skew between cores (microseconds) and the timer are noise, short
// enough to fit between the preemptions of a shared machine (a Linux time
// slice is a few milliseconds) and to give hundreds of rounds a second.
const defaultCall = 2 * time.Millisecond

// callTarget returns call, or defaultCall if call is 0, at most dur/3.
func callTarget(dur, call time.Duration) time.Duration {
	if call <= 0 {
		call = defaultCall
	}
	return max(min(call, dur/3), time.Microsecond)
}

// calibrate returns the iteration count for which one call of run takes
// about target.
func calibrate(run func(iters int), target time.Duration) int {
	iters := 64
	for {
		start := time.Now()
		run(iters)
		d := time.Since(start)
		if d >= target/8 || iters >= 1<<40 {
			n := int(float64(iters) * float64(target) / float64(max(d, 1)))
			return max(n, 1)
		}
		iters *= 4
	}
}

// measure runs the loop on cores goroutines, each locked to its own OS
// thread, in rounds: every round releases all of them on the same call of
// iters iterations (calibrated to last about call) and lasts from the first
// start to the last end. Rounds repeat until dur has passed (at least 3); the
// best round counts.
func measure(f family, run loopFunc, cores int, dur, call time.Duration) measurement {
	src, dst := makeSrc(f), make([]byte, dstLen)
	iters := calibrate(func(n int) { run(n, &src[0], &dst[0]) }, callTarget(dur, call))
	best := timeRounds(cores, dur, func() func() {
		src, dst := makeSrc(f), make([]byte, dstLen)
		return func() { run(iters, &src[0], &dst[0]) }
	})
	m := measurement{cores: cores, iters: iters, best: best.wall, rounds: best.rounds}
	m.total = float64(cores) * float64(iters) * f.opsPerIter() / best.wall.Seconds()
	m.perCore = m.total / float64(cores)
	return m
}

// measureClock returns the core clock in Hz from a chain of dependent adds
// (one per cycle) on one core.
func measureClock(add func(iters int) int, dur, call time.Duration) float64 {
	iters := calibrate(func(n int) { add(n) }, callTarget(dur, call))
	best := timeRounds(1, dur, func() func() { return func() { add(iters) } })
	return 16 * float64(iters) / best.wall.Seconds()
}

type roundResult struct {
	wall   time.Duration
	rounds int
}

// timeRounds starts cores workers, each locked to an OS thread and running
// the call made for it by newCall, and times rounds as measure describes.
func timeRounds(cores int, dur time.Duration, newCall func() func()) roundResult {
	type span struct{ start, end time.Time }
	starts := make([]chan struct{}, cores)
	done := make(chan span, cores)
	var wg sync.WaitGroup
	for i := range starts {
		starts[i] = make(chan struct{}, 1)
		call := newCall()
		wg.Go(func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			for range starts[i] {
				s := time.Now()
				call()
				done <- span{s, time.Now()}
			}
		})
	}
	defer wg.Wait()
	defer func() {
		for _, c := range starts {
			close(c)
		}
	}()

	res := roundResult{wall: time.Duration(math.MaxInt64)}
	deadline := time.Now().Add(dur)
	for res.rounds < 3 || time.Now().Before(deadline) {
		for _, c := range starts {
			c <- struct{}{}
		}
		var first, last time.Time
		for i := range cores {
			s := <-done
			if i == 0 || s.start.Before(first) {
				first = s.start
			}
			if i == 0 || s.end.After(last) {
				last = s.end
			}
		}
		res.wall = min(res.wall, max(last.Sub(first), 1))
		res.rounds++
	}
	return res
}
