package kernels

import (
	"fmt"
	"sync"
)

// Sgemm computes, with BLAS semantics on row-major matrices,
//
//	C = alpha * op(A) * op(B) + beta * C
//
// where op(A) is m×k (A is m×k with stride lda, or k×m if transA), op(B) is
// k×n (B is k×n with stride ldb, or n×k if transB) and C is m×n with stride
// ldc. When beta is zero C is not read, so NaNs in it do not propagate. It
// panics, as gonum's BLAS does, on negative sizes, short strides or short
// slices. The active tier (see Active) picks the kernel; sgemmGeneric is the
// reference every tier is tested against. It is safe for concurrent use; a
// large product is split over the kernels' worker pool (see SetParallelism).
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	sgemmCheck(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	if m == 0 || n == 0 {
		return
	}
	if k == 0 || alpha == 0 {
		sgemmScaleC(m, n, beta, c, ldc)
		return
	}
	ar := sgemmArchFor(active)
	if ar == nil {
		sgemmGeneric(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	sgemmPar(ar, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// sgemmSerial is Sgemm on ar's kernels, on the calling goroutine. Arguments
// are checked, m, n, k > 0 and alpha != 0.
func sgemmSerial(ar *sgemmArch, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 1 && !transB {
		sgemmGemv(ar, transA, n, k, alpha, a, lda, b, ldb, beta, c)
		return
	}
	if transB && !transA && m <= sgemmDotRows && ar.dot != nil && k >= ar.vec {
		sgemmDotNT(ar, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	sgemmBlocked(ar, transA, m, n, k, alpha, a, lda, sgemmB{trans: transB, b: b, ldb: ldb}, beta, c, ldc)
}

// sgemmDotRows is up to how many rows of A Sgemm computes A·Bᵀ as dot
// products of rows (a Linear layer's weights stored out×in, at small batch)
// instead of packing Bᵀ, which costs more than the product itself.
const sgemmDotRows = 128

// sgemmDotNT is Sgemm for !transA, transB: C[i][j] = alpha*Σ_p
// A[i][p]·B[j][p] + beta*C[i][j], in 4×4 tiles of dot products; 4 rows of B
// stay in L1 while every row of A passes over them.
func sgemmDotNT(ar *sgemmArch, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	v, tr := ar.vec, len(ar.dot)
	kv := k / v * v
	var out [16]float32
	for j := 0; j < n; j += 4 {
		cols := min(4, n-j)
		for i := 0; i < m; i += tr {
			rows := min(tr, m-i)
			ar.dot[rows-1][cols-1](kv/v, &a[i*lda], lda*4, &b[j*ldb], ldb*4, &out[0])
			for r := 0; r < rows; r++ {
				arow := a[(i+r)*lda+kv : (i+r)*lda+k]
				for q := 0; q < cols; q++ {
					s := out[r*4+q]
					brow := b[(j+q)*ldb+kv : (j+q)*ldb+k]
					for p, av := range arow {
						s += av * brow[p]
					}
					ci := (i+r)*ldc + j + q
					if beta == 0 {
						c[ci] = alpha * s
					} else {
						c[ci] = alpha*s + beta*c[ci]
					}
				}
			}
		}
	}
}

// sgemvColBlock is how many columns of y one pass of the GEMV kernel
// updates: 8 KiB of y stays in L1 while B streams past.
const sgemvColBlock = 2048

// sgemmGemv is Sgemm for m = 1 with B untransposed: c[j] = alpha*Σ_p
// op(A)[0][p]·B[p][j] + beta*c[j], B read row by row in sequential runs.
func sgemmGemv(ar *sgemmArch, transA bool, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32) {
	w := sgemmPool.Get().(*sgemmWork)
	defer sgemmPool.Put(w)
	x := sgemmGrow(w.a, k)
	w.a = x
	for p := range x {
		if transA {
			x[p] = alpha * a[p*lda]
		} else {
			x[p] = alpha * a[p]
		}
	}
	y := c[:n]
	sgemmScaleC(1, n, beta, y, n)
	k8, v := k/8*8, ar.vec
	for jb := 0; jb < n; jb += sgemvColBlock {
		nb := min(sgemvColBlock, n-jb)
		chunks := nb / v
		if chunks > 0 && k8 > 0 {
			ar.gemv(chunks, k8/8, &x[0], &b[jb], ldb*4, &y[jb])
		}
		for j := jb + chunks*v; j < jb+nb; j++ {
			var s float32
			for p := 0; p < k8; p++ {
				s += x[p] * b[p*ldb+j]
			}
			y[j] += s
		}
	}
	for p := k8; p < k; p++ {
		xp, row := x[p], b[p*ldb:p*ldb+n]
		for j, bv := range row {
			y[j] += xp * bv
		}
	}
}

// SgemmPackedB is a k×n fp32 matrix B packed once (at model load) for
// SgemmPacked, in the panel layout of the tier active when it was packed.
type SgemmPackedB struct {
	k, n int
	nr   int // panel width: columns per panel
	kc   int // rows per block
	// data holds blocks of kc rows (fewer in the last), each
	// [ceil(n/nr)][kc][nr] and zero-padded past column n: the block a
	// kernel pass streams is contiguous.
	data []float32
}

// K returns the number of rows of the packed matrix.
func (p *SgemmPackedB) K() int { return p.k }

// N returns the number of columns of the packed matrix.
func (p *SgemmPackedB) N() int { return p.n }

// PackSgemmB packs op(B) (k×n; B is n×k with stride ldb if transB) for
// SgemmPacked. Pack after choosing the tier: a matrix packed for another tier
// still gives the right answer, by the slow generic path.
func PackSgemmB(transB bool, k, n int, b []float32, ldb int) *SgemmPackedB {
	if k < 0 || n < 0 {
		panic(fmt.Sprintf("kernels: PackSgemmB: negative size k=%d n=%d", k, n))
	}
	sgemmCheckMat("B", transB, k, n, b, ldb)
	nr := 16
	if ar := sgemmArchFor(active); ar != nil {
		nr = ar.nr
	}
	npad := (n + nr - 1) / nr * nr
	p := &SgemmPackedB{k: k, n: n, nr: nr, kc: sgemmKC, data: make([]float32, npad*k)}
	for pc := 0; pc < k; pc += p.kc {
		sgemmPackB(p.data[pc*npad:], nr, transB, b, ldb, pc, min(p.kc, k-pc), 0, n)
	}
	return p
}

// SgemmPacked computes C = alpha * op(A) * B + beta * C like Sgemm, with B
// packed by PackSgemmB; m, k and n come from op(A) rows and pb.
func SgemmPacked(transA bool, m int, alpha float32, a []float32, lda int, pb *SgemmPackedB, beta float32, c []float32, ldc int) {
	k, n := pb.k, pb.n
	if m < 0 {
		panic(fmt.Sprintf("kernels: SgemmPacked: negative m=%d", m))
	}
	sgemmCheckMat("A", transA, m, k, a, lda)
	sgemmCheckMat("C", false, m, n, c, ldc)
	if m == 0 || n == 0 {
		return
	}
	if k == 0 || alpha == 0 {
		sgemmScaleC(m, n, beta, c, ldc)
		return
	}
	ar := sgemmArchFor(active)
	if ar == nil || ar.nr != pb.nr {
		sgemmPackedGeneric(transA, m, alpha, a, lda, pb, beta, c, ldc)
		return
	}
	sgemmPackedPar(ar, transA, m, alpha, a, lda, pb, beta, c, ldc)
}

func sgemmCheck(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("kernels: Sgemm: negative size m=%d n=%d k=%d", m, n, k))
	}
	sgemmCheckMat("A", transA, m, k, a, lda)
	sgemmCheckMat("B", transB, k, n, b, ldb)
	sgemmCheckMat("C", false, m, n, c, ldc)
}

// sgemmCheckMat checks that x holds op(X), rows×cols, with stride ld.
func sgemmCheckMat(name string, trans bool, rows, cols int, x []float32, ld int) {
	if trans {
		rows, cols = cols, rows
	}
	if ld < max(1, cols) {
		panic(fmt.Sprintf("kernels: Sgemm: ld%s=%d, want >= %d", name, ld, max(1, cols)))
	}
	if rows == 0 || cols == 0 {
		return
	}
	if need := (rows-1)*ld + cols; len(x) < need {
		panic(fmt.Sprintf("kernels: Sgemm: len(%s)=%d, want >= %d", name, len(x), need))
	}
}

// sgemmScaleC sets C = beta*C, writing zeros (not 0*NaN) when beta is 0.
func sgemmScaleC(m, n int, beta float32, c []float32, ldc int) {
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		switch beta {
		case 0:
			clear(row)
		case 1:
		default:
			for j := range row {
				row[j] *= beta
			}
		}
	}
}

// sgemmKernel is a micro-kernel: see sgemm_asm_gen.go for what it computes.
type sgemmKernel func(k int, a, b *float32, bstride int, c *float32, ldc int, alpha, beta float32, loadC int)

// sgemmArch describes a SIMD tier's micro-kernels and blocking.
type sgemmArch struct {
	mr, nr int           // micro-tile: at most mr rows of nr columns
	kern   []sgemmKernel // kern[r-1] computes r rows
	vec    int           // floats per vector register
	// gemv adds rows of B, 8 at a time, to chunks vectors of y: see
	// genGemv in sgemm_asm_gen.go.
	gemv func(chunks, groups int, x, b *float32, ldb int, y *float32)
	// dot[r-1][c-1] takes dot products of r rows of A with c rows of B
	// (r up to len(dot), c up to 4): see genDot in sgemm_asm_gen.go.
	dot [][4]sgemmDotKernel
}

type sgemmDotKernel func(chunks int, a *float32, lda int, b *float32, ldb int, out *float32)

// Cache blocking (variables so tests can shrink them to reach every edge
// with small shapes). A kc×nr B micro-panel is streamed from L2 against an
// mr×kc A micro-panel held in L1; a kc×nc block of packed B fits in L2.
var (
	sgemmKC = 256
	sgemmNC = 256
	// Up to this many rows of A, Sgemm reads an untransposed B in place
	// instead of packing it per call.
	sgemmDirectRows = 64
)

// sgemmB is the B operand: a raw matrix, or one packed by PackSgemmB.
type sgemmB struct {
	packed *SgemmPackedB
	trans  bool
	b      []float32
	ldb    int
}

type sgemmWork struct {
	a, b, tile []float32
}

var sgemmPool = sync.Pool{New: func() any { return new(sgemmWork) }}

func sgemmGrow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

// sgemmBlocked is the packed, cache-blocked product on ar's micro-kernels.
// Arguments are checked, m, n, k > 0 and alpha != 0.
func sgemmBlocked(ar *sgemmArch, transA bool, m, n, k int, alpha float32, a []float32, lda int, bs sgemmB, beta float32, c []float32, ldc int) {
	mr, nr := ar.mr, ar.nr
	kcMax, ncMax := sgemmKC, max(sgemmNC/nr, 1)*nr
	if bs.packed != nil {
		kcMax = bs.packed.kc
	}
	w := sgemmPool.Get().(*sgemmWork)
	defer sgemmPool.Put(w)
	w.tile = sgemmGrow(w.tile, mr*nr)
	// With few row panels each element of B is used once or twice: read
	// full panels of an untransposed B in place rather than copy them.
	direct := bs.packed == nil && !bs.trans && m <= sgemmDirectRows
	// A single untransposed row is already in the packed layout.
	directA := m == 1 && !transA
	for pc := 0; pc < k; pc += kcMax {
		kc := min(kcMax, k-pc)
		if !directA {
			// Row panel i (a multiple of mr) lands at w.a[i*kc:].
			w.a = sgemmGrow(w.a, (m+mr-1)/mr*mr*kc)
			for i := 0; i < m; i += mr {
				sgemmPackA(w.a[i*kc:], min(mr, m-i), transA, a, lda, i, pc, kc)
			}
		}
		cbeta, loadC := beta, 0
		if pc > 0 {
			cbeta, loadC = 1, 1
		} else if beta != 0 {
			loadC = 1
		}
		for jc := 0; jc < n; jc += ncMax {
			nc := min(ncMax, n-jc)
			// Where panel q (columns jc+q*nr...) of this block lives.
			var bbase []float32
			var bpanel, boff int
			switch {
			case bs.packed != nil:
				npad := (n + nr - 1) / nr * nr
				bbase, bpanel, boff = bs.packed.data, kc*nr, pc*npad+jc*kc
			case direct:
				// Only the ragged last panel is packed.
				if rem := nc % nr; rem != 0 {
					w.b = sgemmGrow(w.b, kc*nr)
					sgemmPackB(w.b, nr, false, bs.b, bs.ldb, pc, kc, jc+nc-rem, rem)
				}
			default:
				w.b = sgemmGrow(w.b, (nc+nr-1)/nr*nr*kc)
				sgemmPackB(w.b, nr, bs.trans, bs.b, bs.ldb, pc, kc, jc, nc)
				bbase, bpanel, boff = w.b, kc*nr, 0
			}
			for i := 0; i < m; i += mr {
				rows := min(mr, m-i)
				var ap *float32
				if directA {
					ap = &a[pc]
				} else {
					ap = &w.a[i*kc]
				}
				kern := ar.kern[rows-1]
				for jr := 0; jr < nc; jr += nr {
					cols := min(nr, nc-jr)
					var bp *float32
					bstride := nr * 4
					switch {
					case direct && cols == nr:
						bp, bstride = &bs.b[pc*bs.ldb+jc+jr], bs.ldb*4
					case direct:
						bp = &w.b[0]
					default:
						bp = &bbase[boff+(jr/nr)*bpanel]
					}
					ci := i*ldc + jc + jr
					if cols == nr {
						kern(kc, ap, bp, bstride, &c[ci], ldc*4, alpha, cbeta, loadC)
						continue
					}
					t := w.tile
					kern(kc, ap, bp, bstride, &t[0], nr*4, alpha, 0, 0)
					for r := 0; r < rows; r++ {
						crow, trow := c[ci+r*ldc:ci+r*ldc+cols], t[r*nr:r*nr+cols]
						switch {
						case loadC == 0:
							copy(crow, trow)
						case cbeta == 1:
							for j, v := range trow {
								crow[j] += v
							}
						default:
							for j, v := range trow {
								crow[j] = v + cbeta*crow[j]
							}
						}
					}
				}
			}
		}
	}
}

// sgemmPackA packs rows [i, i+rows) × columns [pc, pc+kc) of op(A) as
// dst[p*rows+r] = op(A)[i+r][pc+p].
func sgemmPackA(dst []float32, rows int, trans bool, a []float32, lda, i, pc, kc int) {
	dst = dst[:kc*rows]
	if trans {
		for p := 0; p < kc; p++ {
			copy(dst[p*rows:p*rows+rows], a[(pc+p)*lda+i:])
		}
		return
	}
	for r := 0; r < rows; r++ {
		src := a[(i+r)*lda+pc : (i+r)*lda+pc+kc]
		for p, v := range src {
			dst[p*rows+r] = v
		}
	}
}

// sgemmPackB packs rows [pc, pc+kc) × columns [jc, jc+nc) of op(B) into
// panels of nr columns: dst[q*kc*nr + p*nr + j] = op(B)[pc+p][jc+q*nr+j],
// zero past column jc+nc.
func sgemmPackB(dst []float32, nr int, trans bool, b []float32, ldb, pc, kc, jc, nc int) {
	panels := (nc + nr - 1) / nr
	dst = dst[:panels*kc*nr]
	if trans {
		for q := 0; q < panels; q++ {
			cols := min(nr, nc-q*nr)
			panel := dst[q*kc*nr : (q+1)*kc*nr]
			if cols < nr {
				clear(panel)
			}
			for j := 0; j < cols; j++ {
				src := b[(jc+q*nr+j)*ldb+pc : (jc+q*nr+j)*ldb+pc+kc]
				for p, v := range src {
					panel[p*nr+j] = v
				}
			}
		}
		return
	}
	// Row by row, so B is read in long sequential runs the hardware
	// prefetcher follows (a panel at a time is a short run per row).
	full := nc / nr
	for p := 0; p < kc; p++ {
		src := b[(pc+p)*ldb+jc : (pc+p)*ldb+jc+nc]
		d := p * nr
		switch nr {
		case 32:
			for q := 0; q < full; q, d = q+1, d+kc*nr {
				*(*[32]float32)(dst[d:]) = *(*[32]float32)(src[q*32:])
			}
		case 16:
			for q := 0; q < full; q, d = q+1, d+kc*nr {
				*(*[16]float32)(dst[d:]) = *(*[16]float32)(src[q*16:])
			}
		default:
			for q := 0; q < full; q, d = q+1, d+kc*nr {
				copy(dst[d:d+nr], src[q*nr:])
			}
		}
		if rem := nc - full*nr; rem != 0 {
			row := dst[d : d+nr]
			copy(row, src[full*nr:])
			clear(row[rem:])
		}
	}
}

// sgemmPackedGeneric is SgemmPacked in plain Go, for any panel width.
func sgemmPackedGeneric(transA bool, m int, alpha float32, a []float32, lda int, pb *SgemmPackedB, beta float32, c []float32, ldc int) {
	k, n, nr := pb.k, pb.n, pb.nr
	npad := (n + nr - 1) / nr * nr
	sgemmScaleC(m, n, beta, c, ldc)
	for i := 0; i < m; i++ {
		crow := c[i*ldc : i*ldc+n]
		for pc := 0; pc < k; pc += pb.kc {
			kc := min(pb.kc, k-pc)
			for q := 0; q*nr < n; q++ {
				cols := min(nr, n-q*nr)
				panel := pb.data[pc*npad+q*kc*nr : pc*npad+(q+1)*kc*nr]
				cc := crow[q*nr : q*nr+cols]
				for p := 0; p < kc; p++ {
					var av float32
					if transA {
						av = a[(pc+p)*lda+i]
					} else {
						av = a[i*lda+pc+p]
					}
					av *= alpha
					for j, bv := range panel[p*nr : p*nr+cols] {
						cc[j] += av * bv
					}
				}
			}
		}
	}
}
