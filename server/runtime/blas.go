package runtime

import (
	G "gorgonia.org/gorgonia"

	"github.com/corvidml/corvid/kernels"
)

// Gorgonia's float matrix products (MatMul, Gemm, and the GEMM inside Conv)
// call whatever BLAS is installed, gonum's pure Go by default. Corvid's SIMD
// SGEMM is several times faster on every shape the server meets
// (kernels/sgemm_bench_test.go); double precision stays with gonum.
func init() {
	G.Use(kernels.BLAS{})
}
