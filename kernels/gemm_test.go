package kernels

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

// refGemm is the definition: C[i][j] = Σ_k (A[i][k] - aZero) * B[k][j], with B
// unpacked, row-major [k][n].
func refGemm(m, n, k int, a []uint8, lda int, aZero uint8, b []int8, c []int32, ldc int) {
	for i := range m {
		for j := range n {
			var acc int32
			for kk := range k {
				acc += (int32(a[i*lda+kk]) - int32(aZero)) * int32(b[kk*n+j])
			}
			c[i*ldc+j] = acc
		}
	}
}

// avx2Path is one of the AVX2 tier's kernel families (avx2Paths): set
// selects it and returns a function that restores the previous one.
type avx2Path struct {
	name string
	set  func() (restore func())
}

// tierPaths returns the kernel families of tier: for AVX2 each of
// avx2Paths, for the others one that changes nothing.
func tierPaths(tier Tier) []avx2Path {
	if paths := avx2Paths(); tier == AVX2 && len(paths) > 0 {
		return paths
	}
	return []avx2Path{{"", func() func() { return func() {} }}}
}

// gemmForEachTier runs f once per tier this CPU has, with that tier active,
// and for the AVX2 tier once per kernel family.
func gemmForEachTier(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	for tier := Generic; tier <= Best; tier++ {
		for _, path := range tierPaths(tier) {
			name := tier.String()
			if path.name != "" {
				name += "/" + path.name
			}
			t.Run(name, func(t *testing.T) {
				prev, err := SetTier(tier)
				if err != nil {
					t.Fatal(err)
				}
				defer SetTier(prev)
				defer path.set()()
				f(t)
			})
		}
	}
}

func newTestRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0)) }

const (
	gemmGuard    = 37 // int32 gemmGuard cells before and after C
	gemmSentinel = int32(-0x5a5a5a5b)
)

type gemmCase struct {
	m, n, k  int
	lda, ldc int
	aZero    uint8
	a        []uint8
	b        []int8
}

func gemmRandCase(r *rand.Rand, m, n, k int) gemmCase {
	gc := gemmCase{m: m, n: n, k: k, lda: k + r.IntN(3), ldc: n + r.IntN(3), aZero: uint8(r.UintN(256))}
	gc.a = make([]uint8, max(0, (m-1)*gc.lda+k))
	for i := range gc.a {
		gc.a[i] = uint8(r.UintN(256))
	}
	gc.b = make([]int8, k*n)
	for i := range gc.b {
		gc.b[i] = int8(r.UintN(256))
	}
	return gc
}

// check runs GemmU8S8 on gc with the active tier into a gemmGuard-padded C and
// compares with refGemm, bit for bit, and checks every cell it must not write.
func (gc gemmCase) check(t *testing.T) {
	t.Helper()
	pb, err := PackBChecked(gc.b, gc.k, gc.n)
	if err != nil {
		t.Fatal(err)
	}
	gc.checkPacked(t, pb)
}

// checkPacked is check with gc's B packed as pb.
func (gc gemmCase) checkPacked(t *testing.T, pb *PackedB) {
	t.Helper()
	size := 0
	if gc.m > 0 {
		size = (gc.m-1)*gc.ldc + gc.n
	}
	buf := make([]int32, size+2*gemmGuard)
	for i := range buf {
		buf[i] = gemmSentinel
	}
	c := buf[gemmGuard : gemmGuard+size : gemmGuard+size]
	want := make([]int32, len(c))
	copy(want, c)
	refGemm(gc.m, gc.n, gc.k, gc.a, gc.lda, gc.aZero, gc.b, want, gc.ldc)
	if err := GemmU8S8Checked(gc.m, gc.a, gc.lda, gc.aZero, pb, c, gc.ldc); err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("%v m=%d n=%d k=%d lda=%d ldc=%d zp=%d", Active(), gc.m, gc.n, gc.k, gc.lda, gc.ldc, gc.aZero)
	for i := range gemmGuard {
		if buf[i] != gemmSentinel || buf[len(buf)-1-i] != gemmSentinel {
			t.Fatalf("%s: gemmGuard cell overwritten", name)
		}
	}
	bad := 0
	for i, got := range c {
		if got != want[i] {
			if bad++; bad <= 5 {
				t.Errorf("%s: C[%d][%d] = %d, want %d", name, i/gc.ldc, i%gc.ldc, got, want[i])
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%s: %d cells wrong", name, bad)
	}
}

func TestGemmU8S8Shapes(t *testing.T) {
	ms := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 32}
	ns := []int{1, 15, 16, 17, 31, 33, 63, 64, 65, 127, 128, 129}
	ks := []int{1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 20, 60, 63, 64, 65, 68}
	if testing.Short() {
		ms = []int{1, 5, 6, 7, 13}
	}
	gemmForEachTier(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(1, uint64(Active())))
		for _, m := range ms {
			for _, n := range ns {
				for _, k := range ks {
					gemmRandCase(r, m, n, k).check(t)
				}
			}
		}
	})
}

func TestGemmU8S8Large(t *testing.T) {
	gemmForEachTier(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(2, 0))
		// The last shape spans several row chunks (rowChunk) in both SIMD tiers.
		for _, s := range [][3]int{{1, 768, 768}, {1, 200, 3075}, {7, 130, 1029}, {33, 257, 300}, {41, 70, 16387}} {
			gemmRandCase(r, s[0], s[1], s[2]).check(t)
		}
	})
}

// TestGemmU8S8Extremes proves that no tier saturates: with A = 255 and
// B = -128 or 127 everywhere each pair of products is ±65280, beyond int16
// (VPMADDUBSW would clamp it to ±32767); and K = 65535 reaches the largest
// magnitude the int32 result holds exactly.
func TestGemmU8S8Extremes(t *testing.T) {
	gemmForEachTier(t, func(t *testing.T) {
		for _, tc := range []struct {
			aval, zp uint8
			bval     int8
			m, n, k  int
		}{
			{255, 0, -128, 7, 65, 4099},
			{255, 0, 127, 7, 65, 4099},
			{0, 255, -128, 3, 17, 1001},
			{0, 255, 127, 3, 17, 1001},
			{255, 0, -128, 1, 64, 65535},
			{255, 0, -128, 2, 16, 65535},
			{0, 255, 127, 6, 64, 65535},
		} {
			if testing.Short() && tc.k > 5000 {
				continue
			}
			gc := gemmCase{m: tc.m, n: tc.n, k: tc.k, lda: tc.k, ldc: tc.n, aZero: tc.zp,
				a: make([]uint8, tc.m*tc.k), b: make([]int8, tc.k*tc.n)}
			for i := range gc.a {
				gc.a[i] = tc.aval
			}
			for i := range gc.b {
				gc.b[i] = tc.bval
			}
			gc.check(t)
			// Alternate signs along k too, so partial sums swing both ways.
			for i := range gc.b {
				if (i/tc.n)%2 == 1 {
					gc.b[i] = ^gc.b[i]
				}
			}
			gc.check(t)
		}
	})
}

func TestGemmU8S8Errors(t *testing.T) {
	pb := PackB(make([]int8, 6), 2, 3)
	for _, tc := range []struct {
		name string
		m    int
		a    []uint8
		lda  int
		pb   *PackedB
		c    []int32
		ldc  int
	}{
		{"nil pb", 1, make([]uint8, 2), 2, nil, make([]int32, 3), 3},
		{"negative m", -1, make([]uint8, 2), 2, pb, make([]int32, 3), 3},
		{"short lda", 1, make([]uint8, 2), 1, pb, make([]int32, 3), 3},
		{"short ldc", 1, make([]uint8, 2), 2, pb, make([]int32, 3), 2},
		{"short a", 2, make([]uint8, 3), 2, pb, make([]int32, 6), 3},
		{"short c", 2, make([]uint8, 4), 2, pb, make([]int32, 5), 3},
	} {
		err := GemmU8S8Checked(tc.m, tc.a, tc.lda, 0, tc.pb, tc.c, tc.ldc)
		if !errors.Is(err, ErrShape) {
			t.Errorf("%s: got %v, want ErrShape", tc.name, err)
		}
	}
	if _, err := PackBChecked(make([]int8, 5), 2, 3); !errors.Is(err, ErrShape) {
		t.Errorf("PackBChecked short b: got %v, want ErrShape", err)
	}
	if _, err := PackBChecked(nil, -1, 3); !errors.Is(err, ErrShape) {
		t.Errorf("PackBChecked negative k: got %v, want ErrShape", err)
	}
	// Empty shapes are valid and write nothing (K = 0 writes zeros).
	c := []int32{5, 5, 5}
	if err := GemmU8S8Checked(1, nil, 0, 7, PackB(nil, 0, 3), c, 3); err != nil || c[0] != 0 || c[2] != 0 {
		t.Errorf("K=0: err %v, c %v, want zeros", err, c)
	}
	if err := GemmU8S8Checked(0, nil, 2, 7, pb, nil, 3); err != nil {
		t.Errorf("M=0: %v", err)
	}
}

func TestPackBColSums(t *testing.T) {
	b := []int8{1, -2, 3, 4, 5, -6}
	pb := PackB(b, 2, 3)
	want := []int32{5, 3, -3}
	for j, v := range pb.ColSums() {
		if v != want[j] {
			t.Errorf("ColSums()[%d] = %d, want %d", j, v, want[j])
		}
	}
	if pb.K() != 2 || pb.N() != 3 {
		t.Errorf("K, N = %d, %d, want 2, 3", pb.K(), pb.N())
	}
}

// FuzzGemm compares every tier with the reference on fuzzed shapes and data.
func FuzzGemm(f *testing.F) {
	f.Add(uint8(1), uint8(64), uint16(4), uint8(0), uint64(1))
	f.Add(uint8(7), uint8(65), uint16(33), uint8(128), uint64(2))
	f.Add(uint8(13), uint8(17), uint16(3), uint8(255), uint64(3))
	f.Fuzz(func(t *testing.T, m, n uint8, k uint16, zp uint8, seed uint64) {
		mm, nn, kk := int(m%20), int(n%140), int(k%600)
		r := rand.New(rand.NewPCG(seed, 0))
		gc := gemmRandCase(r, mm, nn, kk)
		gc.aZero = zp
		if seed%5 == 0 { // extremes
			for i := range gc.a {
				gc.a[i] = 255 * uint8(i&1)
			}
			for i := range gc.b {
				gc.b[i] = int8(-128 + 255*(i&1))
			}
		}
		for tier := Generic; tier <= Best; tier++ {
			for _, path := range tierPaths(tier) {
				prev, _ := SetTier(tier)
				restore := path.set()
				gc.check(t)
				restore()
				SetTier(prev)
			}
		}
	})
}
