//go:build amd64 && !purego

package kernels

import (
	"fmt"
	"testing"
)

// BenchmarkMicroKernel times each micro-kernel alone with A and B in L1: the
// ceiling the blocked GEMM can reach.
func BenchmarkMicroKernel(b *testing.B) {
	const kg = 64
	a := make([]uint8, 12*kg*4)
	a16 := make([]int16, 8*kg*4)
	w := make([]int8, kg*256)
	c := make([]int32, 12*64)
	bias := make([]int32, 64)
	if Best >= AVX512VNNI {
		for r := 1; r <= vnniMR; r++ {
			b.Run(fmt.Sprintf("vnni%dx64", r), func(b *testing.B) {
				gemmBenchOps(b, float64(r*64*4*kg), peakVNNIGOPS, func() {
					vnniKernels[r](&a[0], kg*4, &w[0], kg, &c[0], 64, &bias[0], &w[0])
				})
			})
		}
		for r := vnniMR + 1; r <= vnniWideMR; r++ {
			b.Run(fmt.Sprintf("vnni%dx32", r), func(b *testing.B) {
				gemmBenchOps(b, float64(r*32*4*kg), peakVNNIGOPS, func() {
					vnniWideKernels[r](&a[0], kg*4, &w[0], kg, &c[0], 64, &bias[0])
				})
			})
		}
		b.Run("gemv", func(b *testing.B) {
			gemmBenchOps(b, float64(64*4*kg), peakVNNIGOPS, func() {
				gemvVNNI(&a[0], &w[0], kg, 1, &c[0], &bias[0])
			})
		})
	}
	if Best >= AVX2 {
		for r := 1; r <= avx2MR; r++ {
			b.Run(fmt.Sprintf("avx2x%dx8", r), func(b *testing.B) {
				gemmBenchOps(b, float64(r*8*4*kg), peakAVX2GOPS, func() {
					avx2Kernels[r](&a16[0], kg*8, &w[0], kg, &c[0], 64, &bias[0])
				})
			})
		}
		b.Run("avx2nib1x32", func(b *testing.B) {
			gemmBenchOps(b, float64(32*4*kg), peakAVX2GOPS, func() {
				gemmAVX2Nib1x32(&a[0], kg*4, &w[0], kg, &c[0], 64, &bias[0])
			})
		})
	}
	if hasAVXVNNI {
		for r := 1; r <= avx2MR; r++ {
			b.Run(fmt.Sprintf("avxvnni%dx16", r), func(b *testing.B) {
				gemmBenchOps(b, float64(r*16*4*kg), peakAVX2GOPS, func() {
					avxVNNIKernels[r](&a[0], kg*4, &w[0], kg, &c[0], 64, &bias[0])
				})
			})
		}
		b.Run("avxvnnigemv", func(b *testing.B) {
			gemmBenchOps(b, float64(64*4*kg), peakAVX2GOPS, func() {
				gemvAVXVNNI(&a[0], &w[0], kg, 1, &c[0], &bias[0])
			})
		})
	}
}
