package peakmeter

import (
	"encoding/binary"
	"math"
	"runtime"
	"sync"
	"time"
)

// LoopFunc runs iters iterations of a register-only loop; see peak_amd64.go.
type LoopFunc func(iters int, src, dst *byte)

// Family is one instruction family whose peak is measured.
type Family struct {
	Name  string // machine-readable name, e.g. "vnni_zmm"
	Instr string // what the loop body executes
	Needs string // the CPU features it needs, for "not available"
	Unit  string // "GOPS" (int8, 2 ops per MAC) or "GFLOPS" (2 per FMA lane)
	Float bool   // float32 sources and results, else u8 x s8 -> s32
	Tile  bool   // AMX: lane j sums a[4k+t]·b[4j+t] over all 16 k-quads, not k = j only

	PerIter     int     // instructions (AVX2: 3-instruction sequences) per loop iteration
	OpsPerInstr float64 // ops per instruction or sequence: 2 x MACs or 2 x FMA lanes
	Lanes       int     // 32-bit result lanes the loop stores to dst
}

// OpsPerIter is the ops one loop iteration does.
func (f Family) OpsPerIter() float64 { return float64(f.PerIter) * f.OpsPerInstr }

// Families lists every family in report order. The loop bodies are in
// peak_amd64.s: 12 independent accumulators x 2 rounds for VNNI and FMA
// (twice the 4-cycle latency x 1-2 pipes), 8 accumulators x 2 rounds of
// VPMADDUBSW+VPMADDWD+VPADDD for AVX2 (only the 1-cycle VPADDD is carried),
// 4 accumulator tiles x 2 rounds of TDPBUSD for AMX (16 cycles each on
// Sapphire Rapids' one tile unit, so 4 tiles cover its latency).
var Families = []Family{
	{Name: "vnni_zmm", Instr: "VPDPBUSD zmm", Needs: "AVX512F, AVX512_VNNI", Unit: "GOPS",
		PerIter: 24, OpsPerInstr: 2 * 64, Lanes: 16},
	{Name: "vnni_ymm", Instr: "VPDPBUSD ymm (EVEX)", Needs: "AVX512_VNNI, AVX512VL", Unit: "GOPS",
		PerIter: 24, OpsPerInstr: 2 * 32, Lanes: 8},
	{Name: "avx2_int8", Instr: "VPMADDUBSW+VPMADDWD+VPADDD ymm", Needs: "AVX2", Unit: "GOPS",
		PerIter: 16, OpsPerInstr: 2 * 32, Lanes: 8},
	{Name: "fma_zmm", Instr: "VFMADD231PS zmm", Needs: "AVX512F", Unit: "GFLOPS", Float: true,
		PerIter: 24, OpsPerInstr: 2 * 16, Lanes: 16},
	{Name: "fma_ymm", Instr: "VFMADD231PS ymm", Needs: "AVX, FMA", Unit: "GFLOPS", Float: true,
		PerIter: 24, OpsPerInstr: 2 * 8, Lanes: 8},
	// One TDPBUSD multiplies a 16 x 64 u8 tile by a 64 x 16 s8 one (16
	// k-quads x 16 columns x 4): 16·16·64 MAC.
	{Name: "amx_int8", Instr: "TDPBUSD tile", Needs: "AMX-TILE, AMX-INT8, OS tile permission", Unit: "GOPS", Tile: true,
		PerIter: 8, OpsPerInstr: 2 * 16 * 16 * 64, Lanes: 16},
}

// Source layout read by the loops: bytes [0,64) the u8 (or float32) vector
// a, [64,128) the s8 (or float32) vector b, [128,192) int16 ones for
// VPMADDWD. The int8 values are small, so VPMADDUBSW never saturates and
// every family computes the same dot product per 32-bit lane; the float
// values are powers of two, so the sums are exact for the test and stay far
// from both denormals and overflow.
const (
	SrcLen = 192
	DstLen = 64

	floatA = 0.5
	floatB = 1.0 / 1024
)

func MakeSrc(f Family) []byte {
	src := make([]byte, SrcLen)
	for i := range 64 {
		if f.Float {
			if i%4 == 0 {
				binary.LittleEndian.PutUint32(src[i:], math.Float32bits(floatA))
				binary.LittleEndian.PutUint32(src[64+i:], math.Float32bits(floatB))
			}
			continue
		}
		src[i] = byte(1 + i%7)          // u8 in [1, 7]
		src[64+i] = byte(int8(i%5 - 2)) // s8 in [-2, 2]
	}
	for i := 128; i < SrcLen; i += 2 {
		binary.LittleEndian.PutUint16(src[i:], 1)
	}
	return src
}

// Microarch is a core whose per-instruction throughputs are known, so the
// implied clock (per-core rate / ops per cycle) can be checked against the
// clock measured by the dependent-add chain.
type Microarch struct {
	Name  string
	match func(vendor string, family, model uint32, avx512 bool) bool
	Issue map[string]float64 // instructions (AVX2: sequences) per cycle per core
}

var microarchs = []Microarch{
	{
		// shared/PERF.md: 512-bit ops double-pumped on two 256-bit pipes.
		Name: "AMD Zen 4",
		match: func(v string, f, _ uint32, avx512 bool) bool {
			return v == "AuthenticAMD" && f == 0x19 && avx512
		},
		Issue: map[string]float64{"vnni_zmm": 1, "vnni_ymm": 2, "avx2_int8": 1, "fma_zmm": 1, "fma_ymm": 2},
	},
	{
		// Two 512-bit FMA units (ports 0+1 and 5); VPDPBUSD on both. One
		// TDPBUSD every 16 cycles (1024 MAC/cycle).
		Name: "Intel Sapphire/Emerald Rapids",
		match: func(v string, f, m uint32, _ bool) bool {
			return v == "GenuineIntel" && f == 6 && (m == 0x8f || m == 0xcf)
		},
		Issue: map[string]float64{"vnni_zmm": 2, "vnni_ymm": 2, "avx2_int8": 1, "fma_zmm": 2, "fma_ymm": 2, "amx_int8": 1.0 / 16},
	},
}

// FindMicroarch returns the known core this CPU is, or nil.
func FindMicroarch(vendor string, family, model uint32, avx512 bool) *Microarch {
	for i := range microarchs {
		if microarchs[i].match(vendor, family, model, avx512) {
			return &microarchs[i]
		}
	}
	return nil
}

// RoundIssue rounds a measured issue rate (instructions per cycle) to the
// nearest plausible pipe count: 0.5 (one pipe every other cycle), 1, 2, 3 or
// 4. It is used only for cores missing from microarchs.
func RoundIssue(r float64) float64 {
	if r < 0.75 {
		return 0.5
	}
	return min(math.Round(r), 4)
}

// Measurement is the best rate seen for one family on some cores.
type Measurement struct {
	Cores   int
	Total   float64       // ops per second over all cores
	PerCore float64       // Total / Cores
	Iters   int           // loop iterations per call
	Rounds  int           // timed rounds
	Best    time.Duration // the best round
}

// DefaultCall is how long one timed call takes by default: long enough that
// the start skew between cores (microseconds) and the timer are noise, short
// enough to fit between the preemptions of a shared machine (a Linux time
// slice is a few milliseconds) and to give hundreds of rounds a second.
const DefaultCall = 2 * time.Millisecond

// callTarget returns call, or DefaultCall if call is 0, at most dur/3.
func callTarget(dur, call time.Duration) time.Duration {
	if call <= 0 {
		call = DefaultCall
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

// Measure runs the loop on cores goroutines, each locked to its own OS
// thread, in rounds: every round releases all of them on the same call of
// iters iterations (calibrated to last about call) and lasts from the first
// start to the last end. Rounds repeat until dur has passed (at least 3); the
// best round counts.
func Measure(f Family, run LoopFunc, cores int, dur, call time.Duration) Measurement {
	src, dst := MakeSrc(f), make([]byte, DstLen)
	iters := calibrate(func(n int) { run(n, &src[0], &dst[0]) }, callTarget(dur, call))
	best := timeRounds(cores, dur, func() func() {
		src, dst := MakeSrc(f), make([]byte, DstLen)
		return func() { run(iters, &src[0], &dst[0]) }
	})
	m := Measurement{Cores: cores, Iters: iters, Best: best.wall, Rounds: best.rounds}
	m.Total = float64(cores) * float64(iters) * f.OpsPerIter() / best.wall.Seconds()
	m.PerCore = m.Total / float64(cores)
	return m
}

// MeasureClock returns the core clock in Hz from a chain of dependent adds
// (one per cycle) on one core.
func MeasureClock(add func(iters int) int, dur, call time.Duration) float64 {
	iters := calibrate(func(n int) { add(n) }, callTarget(dur, call))
	best := timeRounds(1, dur, func() func() { return func() { add(iters) } })
	return 16 * float64(iters) / best.wall.Seconds()
}

type roundResult struct {
	wall   time.Duration
	rounds int
}

// timeRounds starts cores workers, each locked to an OS thread and running
// the call made for it by newCall, and times rounds as Measure describes.
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
