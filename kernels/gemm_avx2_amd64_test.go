//go:build amd64 && !purego

package kernels

import (
	"fmt"
	"math"
	"testing"
)

// avx2Paths returns the AVX2 tier's kernel families this CPU runs, each as a
// name and a function that selects it and returns one that restores the
// previous choice: VPMADDWD always, AVX-VNNI when the CPU has it.
func avx2Paths() []avx2Path {
	paths := []avx2Path{{"vpmaddwd", func() func() { return setAVX2VNNI(false) }}}
	if hasAVXVNNI {
		paths = append(paths, avx2Path{"avxvnni", func() func() { return setAVX2VNNI(true) }})
	}
	return paths
}

func setAVX2VNNI(on bool) func() {
	prev := avx2VNNI
	avx2VNNI = on
	return func() { avx2VNNI = prev }
}

// TestAVX2Paths checks that the AVX2 tier runs AVX-VNNI exactly when the CPU
// has it, and that both paths are tested.
func TestAVX2Paths(t *testing.T) {
	if avx2VNNI != hasAVXVNNI {
		t.Errorf("avx2VNNI = %v, want %v (the CPU's AVX-VNNI)", avx2VNNI, hasAVXVNNI)
	}
	if got, want := len(avx2Paths()), 1; hasAVXVNNI && got == want {
		t.Errorf("len(avx2Paths()) = %d on an AVX-VNNI CPU, want 2", got)
	}
}

// TestGemmAVX2Blocks runs every row count of the AVX2 kernels (1..avx2MR
// rows per block, with blockRows' splits and row-chunk ends) on both paths,
// columns covering whole and partial slices and panels.
func TestGemmAVX2Blocks(t *testing.T) {
	if Best < AVX2 {
		t.Skipf("no AVX2 here (best tier %v)", Best)
	}
	prev, err := SetTier(AVX2)
	if err != nil {
		t.Fatal(err)
	}
	defer SetTier(prev)
	for _, path := range avx2Paths() {
		t.Run(path.name, func(t *testing.T) {
			defer path.set()()
			r := newTestRand(3)
			for m := 1; m <= 4*avx2MR+1; m++ {
				for _, n := range []int{7, 8, 9, 24, 64, 72, 136} {
					gemmRandCase(r, m, n, 40).check(t)
				}
			}
			// Row chunks (rowChunk) end at a multiple of avx2MR: one row past it.
			for _, m := range []int{avx2MR*64 + 1, avx2MR*64 + 2} {
				gemmRandCase(r, m, 24, 1024).check(t)
			}
		})
	}
}

// BenchmarkGemmAVX2Paths runs the PERF.md shapes on one core through each of
// the AVX2 tier's kernel families (BenchmarkGemmU8S8's avx2 rows run the one
// this CPU selects).
func BenchmarkGemmAVX2Paths(b *testing.B) {
	if Best < AVX2 {
		b.Skipf("no AVX2 here (best tier %v)", Best)
	}
	for _, path := range avx2Paths() {
		for _, s := range gemmBenchShapes {
			m, n, k := s[0], s[1], s[2]
			b.Run(fmt.Sprintf("%s/M=%d_N=%d_K=%d", path.name, m, n, k), func(b *testing.B) {
				prev, err := SetTier(AVX2)
				if err != nil {
					b.Fatal(err)
				}
				defer SetTier(prev)
				defer path.set()()
				defer SetParallelism(SetParallelism(1))
				a, pb, c := gemmBenchOperands(m, n, k)
				GemmU8S8(m, a, k, 128, pb, c, n)
				gemmBenchOps(b, float64(m)*float64(n)*float64(k), peakAVX2GOPS, func() {
					GemmU8S8(m, a, k, 128, pb, c, n)
				})
			})
		}
	}
}

// TestGemmAVX2NoAllocs checks that both AVX2 paths allocate nothing once
// their scratch is warm, for one row, a few rows and a partial last slice.
func TestGemmAVX2NoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	if Best < AVX2 {
		t.Skipf("no AVX2 here (best tier %v)", Best)
	}
	prev, err := SetTier(AVX2)
	if err != nil {
		t.Fatal(err)
	}
	defer SetTier(prev)
	r := newTestRand(9)
	for _, path := range avx2Paths() {
		restore := path.set()
		for _, s := range [][3]int{{1, 100, 300}, {8, 200, 300}, {13, 72, 40}} {
			gc := gemmRandCase(r, s[0], s[1], s[2])
			pb := PackB(gc.b, gc.k, gc.n)
			c := make([]int32, (gc.m-1)*gc.ldc+gc.n)
			f := func() { GemmU8S8(gc.m, gc.a, gc.lda, gc.aZero, pb, c, gc.ldc) }
			f()
			if allocs := testing.AllocsPerRun(20, f); allocs != 0 {
				t.Errorf("%s %v: %v allocations per call, want 0", path.name, s, allocs)
			}
		}
		restore()
	}
}

// TestZeroPointBiasCols checks the vector loop of zeroPointBiasCols
// against the scalar formula, for every length up to three of its 32-column
// steps and every start, on sums that make the product wrap.
func TestZeroPointBiasCols(t *testing.T) {
	if Best < AVX2 {
		t.Skipf("no AVX2 here (best tier %v)", Best)
	}
	const np = 128
	pb := &PackedB{np: np, colSum: make([]int32, np)}
	for j := range pb.colSum {
		pb.colSum[j] = int32(uint32(j) * 2654435761) // both signs, |v| up to 2^31
	}
	pb.colSum[0], pb.colSum[1] = math.MaxInt32, math.MinInt32
	s := new(scratch)
	for _, z := range []uint8{0, 1, 128, 255} {
		for j0 := 0; j0 < np; j0 += 7 {
			for j1 := j0; j1 <= np; j1++ {
				got := s.zeroPointBiasCols(z, pb, j0, j1)
				if len(got) != j1-j0 {
					t.Fatalf("aZero %d, columns [%d, %d): %d values, want %d", z, j0, j1, len(got), j1-j0)
				}
				for j, v := range got {
					if want := -int32(z) * pb.colSum[j0+j]; v != want {
						t.Fatalf("aZero %d, columns [%d, %d): bias[%d] = %d, want %d", z, j0, j1, j, v, want)
					}
				}
			}
		}
	}
}
