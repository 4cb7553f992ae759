package kernels

import (
	"errors"
	"fmt"
	"sync"
)

// ErrShape reports slices too short or strides too small for the shape a
// kernel was asked to compute.
var ErrShape = errors.New("kernels: bad shape")

// Packing geometry shared by every tier: B is stored as column panels of
// panelN columns, each panel as K/4 groups of panelN columns x 4 consecutive
// k values (the operand layout of VPDPBUSD). K is padded to a multiple of
// kPad, N to a multiple of panelN; the padding is zero.
const (
	panelN = 64
	kPad   = 8 // a multiple of 4; 8 lets the GEMV kernel unroll by two groups
)

// PackedB is an int8 weight matrix B [K][N] packed once for the int8 GEMM,
// with its column sums. It is read-only after PackB and safe to share between
// goroutines. Every tier reads the same int8 layout, so a PackedB stays valid
// whatever SetTier does.
type PackedB struct {
	k, n   int
	kp, np int     // padded K and N
	data   []int8  // [np/panelN][kp/4][panelN][4]
	colSum []int32 // Σ_k B[k][j], len np (zero in the padding)

	// On the AMX tier, the recent times of the tiles and the VNNI kernels
	// on these weights (adapt.go); nil elsewhere, and in column views.
	tiles *tileChoice
}

// K returns the number of rows of B (the reduction length).
func (p *PackedB) K() int { return p.k }

// N returns the number of columns of B (the output width).
func (p *PackedB) N() int { return p.n }

// ColSums returns Σ_k B[k][j] for each column j. The slice must not be modified.
func (p *PackedB) ColSums() []int32 { return p.colSum[:p.n] }

// PackBChecked packs the row-major weight matrix b (k rows, n columns, row
// stride n) for GemmU8S8 and sums its columns; it copies b, which the caller
// may then reuse. It returns an error wrapping ErrShape if k or n is negative
// or len(b) < k*n.
func PackBChecked(b []int8, k, n int) (*PackedB, error) {
	if k < 0 || n < 0 {
		return nil, fmt.Errorf("%w: PackB k=%d n=%d: want both >= 0", ErrShape, k, n)
	}
	if len(b) < k*n {
		return nil, fmt.Errorf("%w: PackB len(b)=%d: want >= k*n = %d*%d = %d", ErrShape, len(b), k, n, k*n)
	}
	kp := (k + kPad - 1) / kPad * kPad
	np := (n + panelN - 1) / panelN * panelN
	p := &PackedB{k: k, n: n, kp: kp, np: np,
		data:   allocWeights(kp * np),
		colSum: make([]int32, np),
	}
	for j0 := 0; j0 < n; j0 += panelN {
		panel := p.data[(j0/panelN)*kp*panelN:][:kp*panelN]
		cols := min(panelN, n-j0)
		for kk := 0; kk < k; kk++ {
			row := b[kk*n+j0:][:cols]
			g := panel[(kk/4)*panelN*4+kk%4:]
			for jj, v := range row {
				g[jj*4] = v
				p.colSum[j0+jj] += int32(v)
			}
		}
	}
	settleWeights(p.data)
	if Best >= AMX {
		p.tiles = new(tileChoice)
	}
	return p, nil
}

// PackB is PackBChecked for callers that have already validated the shape:
// it panics with PackBChecked's error instead of returning it.
func PackB(b []int8, k, n int) *PackedB {
	p, err := PackBChecked(b, k, n)
	if err != nil {
		panic(err)
	}
	return p
}

func checkGemm(m int, a []uint8, lda int, pb *PackedB, c []int32, ldc int) error {
	if pb == nil {
		return fmt.Errorf("%w: GemmU8S8: nil PackedB", ErrShape)
	}
	k, n := pb.k, pb.n
	if m < 0 {
		return fmt.Errorf("%w: GemmU8S8 m=%d: want >= 0", ErrShape, m)
	}
	if lda < k {
		return fmt.Errorf("%w: GemmU8S8 lda=%d: want >= k=%d", ErrShape, lda, k)
	}
	if ldc < n {
		return fmt.Errorf("%w: GemmU8S8 ldc=%d: want >= n=%d", ErrShape, ldc, n)
	}
	if m == 0 {
		return nil
	}
	if need := (m-1)*lda + k; len(a) < need {
		return fmt.Errorf("%w: GemmU8S8 len(a)=%d: want >= (m-1)*lda+k = %d", ErrShape, len(a), need)
	}
	if need := (m-1)*ldc + n; len(c) < need {
		return fmt.Errorf("%w: GemmU8S8 len(c)=%d: want >= (m-1)*ldc+n = %d", ErrShape, len(c), need)
	}
	return nil
}

// GemmU8S8Checked computes, for i < m and j < N,
//
//	C[i*ldc+j] = Σ_{k<K} (int32(A[i*lda+k]) - int32(aZero)) * int32(B[k][j])
//
// with the active tier, where B [K][N] is the matrix packed in pb. The sum is
// exact whenever K <= 65535 (the worst case |Σ| = K*255*128 fits in int32);
// beyond that it wraps modulo 2^32, identically in every tier. Only the m x N
// block of C is written. It returns an error wrapping ErrShape, and writes
// nothing, if the slices or strides do not fit the shape.
func GemmU8S8Checked(m int, a []uint8, lda int, aZero uint8, pb *PackedB, c []int32, ldc int) error {
	if err := checkGemm(m, a, lda, pb, c, ldc); err != nil {
		return err
	}
	if m == 0 || pb.n == 0 {
		return nil
	}
	if pb.k == 0 {
		for i := range m {
			clear(c[i*ldc:][:pb.n])
		}
		return nil
	}
	gemmU8S8Par(active, m, a, lda, aZero, pb, c, ldc, nil)
	return nil
}

// GemmU8S8 is GemmU8S8Checked for callers that have already validated the
// shape: it panics with GemmU8S8Checked's error instead of returning it.
func GemmU8S8(m int, a []uint8, lda int, aZero uint8, pb *PackedB, c []int32, ldc int) {
	if err := GemmU8S8Checked(m, a, lda, aZero, pb, c, ldc); err != nil {
		panic(err)
	}
}

// scratch holds per-call buffers, pooled so that a GEMM does not allocate.
type scratch struct {
	bias  []int32 // -aZero*colSum, len np
	apack []uint8 // A with rows padded to a multiple of kPad
	a16   []int16 // the same, widened (AVX2 tier)
	tile  []int32 // one edge tile

	ones   []float32 // per-column scales of 1 (epilogue, per-tensor scale)
	bias32 []float32 // zero bias (epilogue)
	epi    []int32   // GemmU8S8Dequant's rows of C
	// GemmU8S8Dequant's dequantization, which a split GEMM's cores apply
	epiArgs epilogue
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}
