package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// sgemmForEachTier runs f once per tier this CPU has, with that tier active
// (for the fp32 kernels and any others that have no path variants, unlike
// gemmForEachTier's).
func sgemmForEachTier(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	for tier := Generic; tier <= Best; tier++ {
		t.Run(tier.String(), func(t *testing.T) {
			prev, err := SetTier(tier)
			if err != nil {
				t.Fatal(err)
			}
			defer SetTier(prev)
			f(t)
		})
	}
}

// sgemmWithBlocks shrinks the cache blocking so small shapes cross every block
// edge.
// and direct sets how many rows of A Sgemm may read B in place for.
func sgemmWithBlocks(kc, nc, direct int, f func()) {
	okc, onc, od := sgemmKC, sgemmNC, sgemmDirectRows
	sgemmKC, sgemmNC, sgemmDirectRows = kc, nc, direct
	defer func() { sgemmKC, sgemmNC, sgemmDirectRows = okc, onc, od }()
	f()
}

const sgemmGuard = float32(-7.25e33)

type sgemmCase struct {
	transA, transB bool
	m, n, k        int
	alpha, beta    float32
	nanC           bool // fill C with NaN (beta must be 0)
}

func (tc sgemmCase) String() string {
	return fmt.Sprintf("tA=%v,tB=%v,m=%d,n=%d,k=%d,alpha=%g,beta=%g,nanC=%v", tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, tc.beta, tc.nanC)
}

// sgemmOperands makes op(A), op(B) and C with padded strides: padding in A
// and B is NaN (a kernel that reads it poisons the result), C's is a guard
// value checked afterwards.
func sgemmOperands(rng *rand.Rand, tc sgemmCase) (a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	fill := func(rows, cols, pad int, padVal float32) ([]float32, int) {
		ld := max(cols+pad, 1)
		x := make([]float32, rows*ld+5)
		for i := range x {
			x[i] = padVal
		}
		for i := 0; i < rows; i++ {
			for j := 0; j < cols; j++ {
				x[i*ld+j] = float32(rng.NormFloat64())
			}
		}
		return x, ld
	}
	nan := float32(math.NaN())
	ar, ac := tc.m, tc.k
	if tc.transA {
		ar, ac = ac, ar
	}
	br, bc := tc.k, tc.n
	if tc.transB {
		br, bc = bc, br
	}
	a, lda = fill(ar, ac, rng.IntN(3), nan)
	b, ldb = fill(br, bc, rng.IntN(3), nan)
	c, ldc = fill(tc.m, tc.n, 1+rng.IntN(3), sgemmGuard)
	if tc.nanC {
		for i := 0; i < tc.m; i++ {
			for j := 0; j < tc.n; j++ {
				c[i*ldc+j] = nan
			}
		}
	}
	return
}

// checkSgemm compares got with alpha*op(A)*op(B)+beta*c0 summed in float64,
// within a K·eps bound relative to the sum of the magnitudes of the terms,
// and checks that C's padding still holds the guard.
func checkSgemm(t *testing.T, tc sgemmCase, a []float32, lda int, b []float32, ldb int, c0, got []float32, ldc int) {
	t.Helper()
	opA := func(i, p int) float64 {
		if tc.transA {
			return float64(a[p*lda+i])
		}
		return float64(a[i*lda+p])
	}
	opB := func(p, j int) float64 {
		if tc.transB {
			return float64(b[j*ldb+p])
		}
		return float64(b[p*ldb+j])
	}
	bad := 0
	for i := 0; i < tc.m; i++ {
		for j := 0; j < tc.n; j++ {
			var s, mag float64
			for p := 0; p < tc.k; p++ {
				v := opA(i, p) * opB(p, j)
				s += v
				mag += math.Abs(v)
			}
			want := float64(tc.alpha) * s
			mag *= math.Abs(float64(tc.alpha))
			if tc.beta != 0 {
				cv := float64(tc.beta) * float64(c0[i*ldc+j])
				want += cv
				mag += math.Abs(cv)
			}
			tol := 2*float64(tc.k+2)*0x1p-24*mag + 1e-30
			g := float64(got[i*ldc+j])
			if math.IsNaN(g) || math.Abs(g-want) > tol {
				if bad++; bad <= 5 {
					t.Errorf("%v: C[%d][%d] = %v, want %v (tol %.3g)", tc, i, j, g, want, tol)
				}
			}
		}
		if i < tc.m-1 {
			for j := tc.n; j < ldc; j++ {
				if got[i*ldc+j] != sgemmGuard {
					t.Fatalf("%v: padding C[%d][%d] overwritten: %v", tc, i, j, got[i*ldc+j])
				}
			}
		}
	}
	for x := (tc.m-1)*ldc + tc.n; x < len(got); x++ {
		if got[x] != sgemmGuard {
			t.Fatalf("%v: guard past C's end at %d overwritten: %v", tc, x, got[x])
		}
	}
}

func runSgemmCase(t *testing.T, rng *rand.Rand, tc sgemmCase, packed bool) {
	t.Helper()
	a, lda, b, ldb, c, ldc := sgemmOperands(rng, tc)
	c0 := append([]float32(nil), c...)
	if packed {
		pb := PackSgemmB(tc.transB, tc.k, tc.n, b, ldb)
		SgemmPacked(tc.transA, tc.m, tc.alpha, a, lda, pb, tc.beta, c, ldc)
	} else {
		Sgemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, c, ldc)
	}
	checkSgemm(t, tc, a, lda, b, ldb, c0, c, ldc)
}

func TestSgemmShapes(t *testing.T) {
	// Every row remainder of mr = 14 and 6, every column remainder of
	// nr = 32 and 16 (with the tiny nc, every panel position in a block),
	// and k over the kc = 13 block edge and every accumulator-set tail.
	// B is read in place (direct 64) or packed per call (direct 0).
	sgemmForEachTier(t, func(t *testing.T) {
		for _, direct := range []int{64, 0} {
			sgemmWithBlocks(13, 64, direct, func() {
				sgemmShapes(t, direct)
			})
		}
	})
}

func sgemmShapes(t *testing.T, seed int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, uint64(seed)))
	for m := 1; m <= 30; m++ {
		for _, n := range []int{1, 5, 15, 16, 17, 31, 32, 33, 47, 64, 65, 97} {
			for _, k := range []int{1, 2, 3, 4, 5, 12, 13, 14, 27, 30} {
				if (m*7+n*3+k)%3 != 0 && n != 33 && m > 2 {
					continue // a third of the grid, but every m, n and k
				}
				for _, packed := range []bool{false, true} {
					tc := sgemmCase{transA: rng.IntN(2) == 0, transB: rng.IntN(2) == 0, m: m, n: n, k: k, alpha: 1, beta: 0}
					runSgemmCase(t, rng, tc, packed)
				}
			}
		}
	}
}

func TestSgemmTransAlphaBeta(t *testing.T) {
	sgemmForEachTier(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(3, 4))
		shapes := [][3]int{{1, 1, 1}, {1, 100, 300}, {3, 40, 7}, {8, 64, 257}, {14, 32, 256}, {15, 33, 513}, {29, 70, 100}, {20, 1100, 8}, {1, 2100, 21}, {1, 4200, 9}, {3, 9, 50}, {16, 7, 47}}
		for _, s := range shapes {
			for _, tA := range []bool{false, true} {
				for _, tB := range []bool{false, true} {
					for _, ab := range [][2]float32{{1, 0}, {1, 1}, {-0.5, 2}, {2.5, -1}, {0, 0.5}, {0, 0}} {
						for _, packed := range []bool{false, true} {
							tc := sgemmCase{tA, tB, s[0], s[1], s[2], ab[0], ab[1], false}
							runSgemmCase(t, rng, tc, packed)
						}
					}
				}
			}
		}
	})
}

// TestSgemmBetaZeroNaN: with beta = 0, C is written, never read, so NaNs in
// it vanish (also for alpha = 0 and k = 0).
func TestSgemmBetaZeroNaN(t *testing.T) {
	sgemmForEachTier(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(5, 6))
		for _, s := range [][3]int{{1, 50, 20}, {7, 33, 5}, {20, 70, 300}, {5, 9, 0}} {
			for _, alpha := range []float32{1, 0} {
				for _, packed := range []bool{false, true} {
					tc := sgemmCase{m: s[0], n: s[1], k: s[2], alpha: alpha, nanC: true}
					runSgemmCase(t, rng, tc, packed)
				}
			}
		}
	})
}

func TestSgemmRandom(t *testing.T) {
	sgemmForEachTier(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(7, 8))
		for range 60 {
			tc := sgemmCase{
				transA: rng.IntN(2) == 0, transB: rng.IntN(2) == 0,
				m: 1 + rng.IntN(40), n: 1 + rng.IntN(100), k: 1 + rng.IntN(600),
				alpha: float32(rng.NormFloat64()), beta: []float32{0, 1, 0.5}[rng.IntN(3)],
			}
			runSgemmCase(t, rng, tc, rng.IntN(2) == 0)
		}
	})
}

// TestSgemmPackedOtherTier: a matrix packed under the best tier still
// multiplies correctly under every other.
func TestSgemmPackedOtherTier(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	tc := sgemmCase{m: 9, n: 50, k: 40, alpha: 1, beta: 1}
	a, lda, b, ldb, c, ldc := sgemmOperands(rng, tc)
	pb := PackSgemmB(false, tc.k, tc.n, b, ldb)
	sgemmForEachTier(t, func(t *testing.T) {
		got := append([]float32(nil), c...)
		SgemmPacked(false, tc.m, tc.alpha, a, lda, pb, tc.beta, got, ldc)
		checkSgemm(t, tc, a, lda, b, ldb, c, got, ldc)
	})
}

func TestSgemmPanics(t *testing.T) {
	a := make([]float32, 12)
	for _, tt := range []struct {
		name string
		f    func()
	}{
		{"negative m", func() { Sgemm(false, false, -1, 2, 2, 1, a, 2, a, 2, 0, a, 2) }},
		{"short lda", func() { Sgemm(false, false, 2, 2, 3, 1, a, 2, a, 2, 0, a, 2) }},
		{"short ldc", func() { Sgemm(false, false, 2, 3, 2, 1, a, 2, a, 3, 0, a, 2) }},
		{"short c", func() { Sgemm(false, false, 4, 4, 1, 1, a, 1, a, 4, 0, a[:10], 4) }},
		{"short b transposed", func() { Sgemm(false, true, 1, 4, 4, 1, a, 4, a[:10], 4, 0, a, 4) }},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", tt.name)
				}
			}()
			tt.f()
		}()
	}
}

// TestBLAS checks the gonum-compatible BLAS against gonum's own.
func TestBLAS(t *testing.T) {
	sgemmForEachTier(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(11, 12))
		var impl blas.Float32 = BLAS{}
		closeTo := func(what string, got, want []float32, k int) {
			t.Helper()
			for i := range got {
				if d := math.Abs(float64(got[i] - want[i])); d > 1e-5*float64(k)*(1+math.Abs(float64(want[i]))) {
					t.Fatalf("%s: [%d] = %v, want %v", what, i, got[i], want[i])
				}
			}
		}
		randv := func(n int) []float32 {
			x := make([]float32, n)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			return x
		}
		for _, tA := range []blas.Transpose{blas.NoTrans, blas.Trans, blas.ConjTrans} {
			for _, tB := range []blas.Transpose{blas.NoTrans, blas.Trans} {
				m, n, k := 17, 35, 40
				a, b, c := randv(m*k), randv(k*n), randv(m*n)
				lda, ldb := k, n
				if tA != blas.NoTrans {
					lda = m
				}
				if tB != blas.NoTrans {
					ldb = k
				}
				want := append([]float32(nil), c...)
				gonum.Implementation{}.Sgemm(tA, tB, m, n, k, 0.5, a, lda, b, ldb, 2, want, n)
				impl.Sgemm(tA, tB, m, n, k, 0.5, a, lda, b, ldb, 2, c, n)
				closeTo(fmt.Sprintf("Sgemm(%c,%c)", tA, tB), c, want, k)
			}
			for _, inc := range []int{1, 2} {
				m, n := 23, 41
				a := randv(m * n)
				xl, yl := n, m
				if tA != blas.NoTrans {
					xl, yl = m, n
				}
				x, y := randv(xl*inc), randv(yl*inc)
				want := append([]float32(nil), y...)
				gonum.Implementation{}.Sgemv(tA, m, n, 1.5, a, n, x, inc, -1, want, inc)
				impl.Sgemv(tA, m, n, 1.5, a, n, x, inc, -1, y, inc)
				closeTo(fmt.Sprintf("Sgemv(%c, inc %d)", tA, inc), y, want, max(m, n))
			}
		}
	})
}
