package kernels

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// BLAS is gonum's pure-Go BLAS with the fp32 matrix products replaced by
// Corvid's kernels. It satisfies gonum's blas.Float32 and blas.Float64 (and
// the complex interfaces), so the runtime can hand it to gorgonia.Use and
// tensor.Use.
type BLAS struct {
	gonum.Implementation
}

var _ blas.Float32 = BLAS{}

// Sgemm is Sgemm with gonum's argument conventions (ConjTrans means Trans).
func (BLAS) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	Sgemm(blasTrans(tA), blasTrans(tB), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// Sgemv computes y = alpha*op(A)*x + beta*y. Unit strides run as a 1-row
// Sgemm (xᵀ·A for Trans, xᵀ·Aᵀ for NoTrans); other strides are gonum's.
func (impl BLAS) Sgemv(tA blas.Transpose, m, n int, alpha float32, a []float32, lda int, x []float32, incX int, beta float32, y []float32, incY int) {
	lenX, lenY := n, m
	if tA != blas.NoTrans {
		lenX, lenY = m, n
	}
	valid := tA == blas.NoTrans || tA == blas.Trans || tA == blas.ConjTrans
	if !valid || incX != 1 || incY != 1 || m <= 0 || n <= 0 || lda < max(1, n) ||
		len(a) < (m-1)*lda+n || len(x) < lenX || len(y) < lenY {
		impl.Implementation.Sgemv(tA, m, n, alpha, a, lda, x, incX, beta, y, incY)
		return
	}
	// y[1×lenY] = alpha * x[1×lenX] · op(A)ᵀ + beta * y.
	Sgemm(false, tA == blas.NoTrans, 1, lenY, lenX, alpha, x, lenX, a, lda, beta, y, lenY)
}

func blasTrans(t blas.Transpose) bool {
	switch t {
	case blas.NoTrans:
		return false
	case blas.Trans, blas.ConjTrans:
		return true
	}
	panic("kernels: BLAS: bad transpose")
}
