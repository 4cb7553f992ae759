package kernels

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corvidml/corvid/bench/peak/peakmeter"
	"github.com/corvidml/corvid/bench/stats"
)

// peakRef names the peak a benchmark quotes its share of: the per-core rate
// of one of the instruction families bench/peak/peakmeter measures, on this
// machine, once per process (about 100 ms each), not a figure from PERF.md's
// machine. peakNone reports no share.
type peakRef int

const (
	peakNone     peakRef = iota
	peakVNNIGOPS         // VPDPBUSD zmm
	peakAVX2GOPS         // VPMADDUBSW+VPMADDWD+VPADDD ymm
	peakFMAZmm           // VFMADD231PS zmm, GFLOPS
	peakFMAYmm           // VFMADD231PS ymm, GFLOPS
	peakAMXGOPS          // TDPBUSD tiles
	peakVNNIYmm          // VPDPBUSD ymm (the AVX2 tier's AVX-VNNI kernels)
)

var peakFamilies = [...]string{peakVNNIGOPS: "vnni_zmm", peakAVX2GOPS: "avx2_int8", peakFMAZmm: "fma_zmm", peakFMAYmm: "fma_ymm", peakAMXGOPS: "amx_int8", peakVNNIYmm: "vnni_ymm"}

var peakOnce [len(peakFamilies)]func() float64

func init() {
	for i, name := range peakFamilies {
		if name == "" {
			continue
		}
		peakOnce[i] = sync.OnceValue(func() float64 {
			r, ok := peakmeter.PerCore(name, 100*time.Millisecond)
			if !ok {
				return 0
			}
			fmt.Printf("measured peak: %s %.1f G/s per core\n", name, r/1e9)
			return r / 1e9
		})
	}
}

// perCore returns the measured per-core peak in GOPS or GFLOPS, 0 for
// peakNone or a family this CPU lacks.
func (p peakRef) perCore() float64 {
	if p <= peakNone || int(p) >= len(peakOnce) {
		return 0
	}
	return peakOnce[p]()
}

// tierPeak is the int8 peak the GEMM of tier t is a share of (for AMX the
// tiles', although M < 3 runs the VNNI GEMV).
func tierPeak(t Tier) peakRef {
	switch t {
	case AMX:
		return peakAMXGOPS
	case AVX512VNNI:
		return peakVNNIGOPS
	case AVX2:
		if avx2PathVNNI() {
			return peakVNNIYmm
		}
		return peakAVX2GOPS
	}
	return peakNone
}

// benchThreads are the thread counts the GEMM benchmarks compare.
var benchThreads = []int{1, 2}

var gemmBenchShapes = [][3]int{ // M, N, K
	{1, 768, 768}, {8, 768, 768}, {32, 768, 768}, {128, 768, 768},
	{1, 3072, 3072}, {8, 3072, 3072}, {32, 3072, 3072}, {128, 3072, 3072},
	{1024, 1024, 1024},
}

// gemmBenchOperands returns a random A (m x k), B (k x n) packed, and C,
// the same for every run.
func gemmBenchOperands(m, n, k int) (a []uint8, pb *PackedB, c []int32) {
	r := rand.New(rand.NewPCG(1, 2))
	a = make([]uint8, m*k)
	for i := range a {
		a[i] = uint8(r.UintN(256))
	}
	w := make([]int8, k*n)
	for i := range w {
		w[i] = int8(r.UintN(256))
	}
	return a, PackB(w, k, n), make([]int32, m*n)
}

// BenchmarkGemmU8S8 runs the PERF.md shapes on every tier, on 1 and 2 cores
// (SetParallelism; the generic tier on 1), B packed once and warm; it
// reports GOPS (2*M*N*K per call) and the share of the tier's measured peak
// over the cores used.
func BenchmarkGemmU8S8(b *testing.B) {
	for tier := Generic; tier <= Best; tier++ {
		for _, s := range gemmBenchShapes {
			m, n, k := s[0], s[1], s[2]
			if tier == Generic && m*n*k > 8*768*768 {
				continue // minutes per shape; the reference is not the point
			}
			for _, threads := range benchThreads {
				if tier == Generic && threads > 1 {
					continue
				}
				b.Run(fmt.Sprintf("%v/M=%d_N=%d_K=%d/threads=%d", tier, m, n, k, threads), func(b *testing.B) {
					useTierThreads(b, tier, threads)
					a, pb, c := gemmBenchOperands(m, n, k)
					GemmU8S8(m, a, k, 128, pb, c, n)
					gemmBenchOpsN(b, float64(m)*float64(n)*float64(k), tierPeak(tier), threads, func() {
						GemmU8S8(m, a, k, 128, pb, c, n)
					})
				})
				if threads == 1 || tier == Generic {
					continue
				}
				// The control: as many independent one-core GEMMs at once,
				// the most threads cores can give at that moment on a
				// shared machine.
				b.Run(fmt.Sprintf("%v/M=%d_N=%d_K=%d/callers=%d", tier, m, n, k, threads), func(b *testing.B) {
					prev, err := SetTier(tier)
					if err != nil {
						b.Fatal(err)
					}
					defer SetTier(prev)
					defer SetParallelism(SetParallelism(1))
					a := make([]uint8, m*k)
					pb := PackB(make([]int8, k*n), k, n)
					benchCallers(b, float64(m)*float64(n)*float64(k), "GOPS", tierPeak(tier), threads, func() func() {
						c := make([]int32, m*n)
						return func() { GemmU8S8(m, a, k, 128, pb, c, n) }
					})
				})
			}
		}
	}
}

// benchCallers runs b.N calls spread over callers goroutines, each locked
// to an OS thread and calling its own newCall(), and reports the aggregate
// rate (2*macs per call) in unit and its share of callers times the peak.
func benchCallers(b *testing.B, macs float64, unit string, peak peakRef, callers int, newCall func() func()) {
	pk := peak.perCore() * float64(callers)
	calls := make([]func(), callers)
	for i := range calls {
		calls[i] = newCall()
		calls[i]()
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for _, f := range calls {
		wg.Go(func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			for next.Add(1) <= int64(b.N) {
				f()
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	rate := 2 * macs * float64(b.N) / b.Elapsed().Seconds() / 1e9
	b.ReportMetric(rate, unit)
	if pk > 0 {
		b.ReportMetric(100*rate/pk, "%peak")
	}
}

// gemmBenchOps is gemmBenchOpsN on one core.
func gemmBenchOps(b *testing.B, macs float64, peak peakRef, f func()) {
	gemmBenchOpsN(b, macs, peak, 1, f)
}

// gemmBenchOpsN runs f in a b.Loop and reports GOPS (2*macs per call), the
// share of threads times the measured per-core peak (unless peak is
// peakNone) and, on one core where the OS tells a thread's CPU time,
// cpuGOPS: the same rate over the CPU time the benchmark's thread got, which
// other processes on a shared machine disturb less than wall time.
func gemmBenchOpsN(b *testing.B, macs float64, peak peakRef, threads int, f func()) {
	pk := peak.perCore() * float64(threads)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ResetTimer()
	cpu0 := gemmThreadCPU()
	for b.Loop() {
		f()
	}
	cpu := gemmThreadCPU() - cpu0
	ops := 2 * macs * float64(b.N)
	gops := ops / b.Elapsed().Seconds() / 1e9
	b.ReportMetric(gops, "GOPS")
	if pk > 0 {
		b.ReportMetric(100*gops/pk, "%peak")
	}
	if cpu > 0 && threads == 1 {
		b.ReportMetric(ops/cpu.Seconds()/1e9, "cpuGOPS")
	}
}

// BenchmarkDequantizeBiasReLU times the epilogue on a 32 x 3072 result.
func BenchmarkDequantizeBiasReLU(b *testing.B) {
	const m, n = 32, 3072
	c := make([]int32, m*n)
	for i := range c {
		c[i] = int32(uint32(i)*2654435761) >> 8
	}
	sc := make([]float32, n)
	bias := make([]float32, n)
	for j := range sc {
		sc[j], bias[j] = 1e-4, float32(j%7)-3
	}
	out := make([]float32, m*n)
	for tier := Generic; tier <= Best; tier++ {
		b.Run(tier.String(), func(b *testing.B) {
			prev, _ := SetTier(tier)
			defer SetTier(prev)
			b.SetBytes(m * n * 8)
			for b.Loop() {
				DequantizeBiasReLU(c, m, n, n, 0.02, sc, bias, true, out)
			}
		})
	}
}

// BenchmarkQuantizeU8 times per-tensor quantization of 32 x 3072 floats.
func BenchmarkQuantizeU8(b *testing.B) {
	x := make([]float32, 32*3072)
	for i := range x {
		x[i] = float32(i%1000) * 0.01
	}
	q := make([]uint8, len(x))
	for tier := Generic; tier <= Best; tier++ {
		b.Run(tier.String(), func(b *testing.B) {
			prev, _ := SetTier(tier)
			defer SetTier(prev)
			b.SetBytes(int64(len(x)) * 5)
			for b.Loop() {
				QuantizeU8(q, x, 0.04, 3)
			}
		})
	}
}

// useTierThreads makes tier and threads the active tier and parallelism
// until b ends.
func useTierThreads(b *testing.B, tier Tier, threads int) {
	prev, err := SetTier(tier)
	if err != nil {
		b.Fatal(err)
	}
	prevThreads := SetParallelism(threads)
	b.Cleanup(func() {
		SetParallelism(prevThreads)
		SetTier(prev)
	})
}

// BenchmarkGemmU8S8Dequant compares GemmU8S8Dequant, whose cores each
// dequantize the parts of C they computed, with GemmU8S8 followed by
// DequantizeBiasReLU (the epilogue on the caller alone, after the join), on
// one core and two, per tier, in alternating 20 ms windows (30 rounds): it
// reports the median rates and the median and quartiles of their ratio
// (fused/separate) per round. It times itself: run it with -benchtime 1x.
func BenchmarkGemmU8S8Dequant(b *testing.B) {
	for tier := AVX2; tier <= Best; tier++ {
		for _, s := range [][3]int{{1, 3072, 768}, {8, 768, 768}, {32, 3072, 768}} {
			m, n, k := s[0], s[1], s[2]
			for _, threads := range []int{1, 2} {
				b.Run(fmt.Sprintf("%v/M=%d_N=%d_K=%d/threads=%d", tier, m, n, k, threads), func(b *testing.B) {
					useTierThreads(b, tier, threads)
					a, pb, c := gemmBenchOperands(m, n, k)
					sc, bias := make([]float32, n), make([]float32, n)
					for j := range sc {
						sc[j], bias[j] = 1e-3, float32(j%7)-3
					}
					out := make([]float32, m*n)
					fused := windowVariant{call: func() {
						GemmU8S8Dequant(m, a, k, 128, 0.02, pb, sc, bias, true, out, n)
					}}
					separate := windowVariant{call: func() {
						GemmU8S8(m, a, k, 128, pb, c, n)
						DequantizeBiasReLU(c, m, n, n, 0.02, sc, bias, true, out)
					}}
					rates := windowRates(30, 20*time.Millisecond, 2*float64(m*n*k), fused, separate)
					stats.Median(b, rates[0], "fused-GOPS")
					stats.Median(b, rates[1], "separate-GOPS")
					stats.Ratio(b, "fused/separate", rates[0], rates[1])
				})
			}
		}
	}
}
