package kernels

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
)

// Per-core peaks of the development machine (AMD EPYC Zen 4, ~3.6 GHz under
// AVX-512 load), from /work/shared/PERF.md "The physical peak": VPDPBUSD does
// 64 multiply-accumulates per cycle, the AVX2 int8 path half that. GOPS count
// two operations per multiply-accumulate.
const (
	peakVNNIGOPS = 464
	peakAVX2GOPS = 234
)

func tierPeakGOPS(t Tier) float64 {
	switch t {
	case AVX512VNNI:
		return peakVNNIGOPS
	case AVX2:
		return peakAVX2GOPS
	}
	return 0
}

var gemmBenchShapes = [][3]int{ // M, N, K
	{1, 768, 768}, {8, 768, 768}, {32, 768, 768}, {128, 768, 768},
	{1, 3072, 3072}, {8, 3072, 3072}, {32, 3072, 3072}, {128, 3072, 3072},
	{1024, 1024, 1024},
}

// BenchmarkGemmU8S8 runs the PERF.md shapes on every tier, B packed once and
// warm; it reports GOPS (2*M*N*K per call) and the share of the tier's peak.
func BenchmarkGemmU8S8(b *testing.B) {
	for tier := Generic; tier <= Best; tier++ {
		for _, s := range gemmBenchShapes {
			m, n, k := s[0], s[1], s[2]
			if tier == Generic && m*n*k > 8*768*768 {
				continue // minutes per shape; the reference is not the point
			}
			b.Run(fmt.Sprintf("%v/M=%d_N=%d_K=%d", tier, m, n, k), func(b *testing.B) {
				prev, err := SetTier(tier)
				if err != nil {
					b.Fatal(err)
				}
				defer SetTier(prev)
				r := rand.New(rand.NewPCG(1, 2))
				a := make([]uint8, m*k)
				for i := range a {
					a[i] = uint8(r.UintN(256))
				}
				w := make([]int8, k*n)
				for i := range w {
					w[i] = int8(r.UintN(256))
				}
				pb := PackB(w, k, n)
				c := make([]int32, m*n)
				GemmU8S8(m, a, k, 128, pb, c, n)
				gemmBenchOps(b, float64(m)*float64(n)*float64(k), tierPeakGOPS(tier), func() {
					GemmU8S8(m, a, k, 128, pb, c, n)
				})
			})
		}
	}
}

// gemmBenchOps runs f in a b.Loop and reports GOPS (2*macs per call), the share
// of peak (when peak > 0) and, where the OS tells a thread's CPU time,
// cpuGOPS: the same rate over the CPU time the benchmark's thread got,
// which other processes on a shared machine disturb less than wall time.
func gemmBenchOps(b *testing.B, macs, peak float64, f func()) {
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
	if peak > 0 {
		b.ReportMetric(100*gops/peak, "%peak")
	}
	if cpu > 0 {
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

// BenchmarkGemmU8S8Dequant compares the fused GEMM + epilogue with the two
// calls in sequence (32 x 768 x 768, active tier).
func BenchmarkGemmU8S8Dequant(b *testing.B) {
	const m, n, k = 32, 768, 768
	r := rand.New(rand.NewPCG(1, 2))
	a := make([]uint8, m*k)
	for i := range a {
		a[i] = uint8(r.UintN(256))
	}
	w := make([]int8, k*n)
	for i := range w {
		w[i] = int8(r.UintN(256))
	}
	pb := PackB(w, k, n)
	sc := make([]float32, n)
	bias := make([]float32, n)
	for j := range sc {
		sc[j] = 1e-3
	}
	c := make([]int32, m*n)
	out := make([]float32, m*n)
	b.Run("fused", func(b *testing.B) {
		gemmBenchOps(b, m*n*k, tierPeakGOPS(Active()), func() {
			GemmU8S8Dequant(m, a, k, 128, 0.02, pb, sc, bias, true, out, n)
		})
	})
	b.Run("separate", func(b *testing.B) {
		gemmBenchOps(b, m*n*k, tierPeakGOPS(Active()), func() {
			GemmU8S8(m, a, k, 128, pb, c, n)
			DequantizeBiasReLU(c, m, n, n, 0.02, sc, bias, true, out)
		})
	})
}
