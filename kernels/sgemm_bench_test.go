package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// sgemmPeak is the fp32 FMA peak tier t's kernels are a share of: zmm for
// the AVX-512 tiers, ymm for AVX2; for Generic (and gonum), that of the best
// tier, the most this machine does.
func sgemmPeak(t Tier) peakRef {
	switch {
	case t == Generic:
		return sgemmPeak(Best)
	case t == AVX2:
		return peakFMAYmm
	}
	return peakFMAZmm
}

var sgemmBenchShapes = [][3]int{ // m, n, k
	{1, 768, 768}, {8, 768, 768}, {32, 768, 768}, {128, 768, 768},
	{1, 3072, 3072}, {8, 3072, 3072}, {32, 3072, 3072}, {128, 3072, 3072},
	{1024, 1024, 1024},
}

// sgemmBench times f like b.Loop and reports GFLOPS and share of threads
// times the measured per-core peak by wall time, and GFLOPS by the process's
// CPU time (cpu-GFLOPS), which the other tenants of a shared machine disturb
// less. cpu-GFLOPS counts every thread's time (gonum's SGEMM starts
// goroutines; the kernels' pool spins a little after each call).
func sgemmBench(b *testing.B, m, n, k int, peak peakRef, threads int, f func()) {
	pk := peak.perCore() * float64(threads)
	f()
	cpu0 := sgemmProcessCPU()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f()
	}
	b.StopTimer()
	cpu := sgemmProcessCPU() - cpu0
	flops := 2 * float64(m) * float64(n) * float64(k) * float64(b.N)
	gflops := flops / b.Elapsed().Seconds() / 1e9
	b.ReportMetric(gflops, "GFLOPS")
	if pk > 0 {
		b.ReportMetric(100*gflops/pk, "%peak")
	}
	if cpu > 0 {
		b.ReportMetric(flops/cpu.Seconds()/1e9, "cpu-GFLOPS")
	}
}

// BenchmarkSgemm runs every shape through gonum's SGEMM and through each
// tier, B raw (packed per call) and pre-packed, the SIMD tiers on 1 and 2
// cores (SetParallelism), so one run compares them.
func BenchmarkSgemm(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	randv := func(n int) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		return x
	}
	for _, s := range sgemmBenchShapes {
		m, n, k := s[0], s[1], s[2]
		a, bm, c := randv(m*k), randv(k*n), make([]float32, m*n)
		name := fmt.Sprintf("%dx%dx%d", m, n, k)
		b.Run(name+"/gonum", func(b *testing.B) {
			sgemmBench(b, m, n, k, sgemmPeak(Generic), 1, func() {
				gonum.Implementation{}.Sgemm(blas.NoTrans, blas.NoTrans, m, n, k, 1, a, k, bm, n, 0, c, n)
			})
		})
		for tier := Generic; tier <= Best; tier++ {
			if tier == Generic && m*n*k > 8*768*768 {
				continue // the reference is a triple loop
			}
			if tier == Generic {
				b.Run(name+"/"+tier.String(), func(b *testing.B) {
					prev, _ := SetTier(tier)
					defer SetTier(prev)
					sgemmBench(b, m, n, k, sgemmPeak(tier), 1, func() {
						Sgemm(false, false, m, n, k, 1, a, k, bm, n, 0, c, n)
					})
				})
				continue
			}
			for _, threads := range benchThreads {
				suffix := fmt.Sprintf("/threads=%d", threads)
				b.Run(name+"/"+tier.String()+suffix, func(b *testing.B) {
					prev, _ := SetTier(tier)
					defer SetTier(prev)
					defer SetParallelism(SetParallelism(threads))
					sgemmBench(b, m, n, k, sgemmPeak(tier), threads, func() {
						Sgemm(false, false, m, n, k, 1, a, k, bm, n, 0, c, n)
					})
				})
				b.Run(name+"/"+tier.String()+"-packed"+suffix, func(b *testing.B) {
					prev, _ := SetTier(tier)
					defer SetTier(prev)
					defer SetParallelism(SetParallelism(threads))
					pb := PackSgemmB(false, k, n, bm, n)
					sgemmBench(b, m, n, k, sgemmPeak(tier), threads, func() {
						SgemmPacked(false, m, 1, a, k, pb, 0, c, n)
					})
				})
				if threads == 1 {
					continue
				}
				// The control: independent one-core products at once (see
				// BenchmarkGemmU8S8).
				b.Run(fmt.Sprintf("%s/%v-packed/callers=%d", name, tier, threads), func(b *testing.B) {
					prev, _ := SetTier(tier)
					defer SetTier(prev)
					defer SetParallelism(SetParallelism(1))
					pb := PackSgemmB(false, k, n, bm, n)
					benchCallers(b, float64(m)*float64(n)*float64(k), "GFLOPS", sgemmPeak(tier), threads, func() func() {
						c := make([]float32, m*n)
						return func() { SgemmPacked(false, m, 1, a, k, pb, 0, c, n) }
					})
				})
			}
		}
	}
}

// BenchmarkSgemmTransB is C = A·Bᵀ with B stored n×k (how ONNX Gemm and
// PyTorch Linear keep weights), B raw, against gonum.
func BenchmarkSgemmTransB(b *testing.B) {
	rng := rand.New(rand.NewPCG(2, 2))
	for _, s := range sgemmBenchShapes[:8] {
		m, n, k := s[0], s[1], s[2]
		a, bm, c := make([]float32, m*k), make([]float32, n*k), make([]float32, m*n)
		for _, x := range [][]float32{a, bm} {
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
		}
		name := fmt.Sprintf("%dx%dx%d", m, n, k)
		b.Run(name+"/gonum", func(b *testing.B) {
			sgemmBench(b, m, n, k, sgemmPeak(Generic), 1, func() {
				gonum.Implementation{}.Sgemm(blas.NoTrans, blas.Trans, m, n, k, 1, a, k, bm, k, 0, c, n)
			})
		})
		for tier := AVX2; tier <= Best; tier++ {
			b.Run(name+"/"+tier.String(), func(b *testing.B) {
				prev, _ := SetTier(tier)
				defer SetTier(prev)
				sgemmBench(b, m, n, k, sgemmPeak(tier), Parallelism(), func() {
					Sgemm(false, true, m, n, k, 1, a, k, bm, k, 0, c, n)
				})
			})
		}
	}
}
