//go:build amd64 && !purego

package kernels

import (
	"math/rand/v2"
	"testing"

	"golang.org/x/sys/cpu"
)

// withAMX runs f with the AMX tier active, or skips when this machine (CPU
// or OS) has no AMX.
func withAMX(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	if Best < AMX {
		t.Skipf("no AMX here (best tier %v)", Best)
	}
	prev, err := SetTier(AMX)
	if err != nil {
		t.Fatal(err)
	}
	defer SetTier(prev)
	f(t)
}

// TestAMXDetect checks that Best is AMX exactly when the CPU has the tiles
// and the OS grants their state.
func TestAMXDetect(t *testing.T) {
	x := cpu.X86
	vnni := x.HasAVX512F && x.HasAVX512BW && x.HasAVX512VL && x.HasAVX512VNNI
	err := amxRequest()
	want := vnni && x.HasAMXTile && x.HasAMXInt8 && err == nil
	t.Logf("AMX-TILE %v, AMX-INT8 %v, permission: %v; best tier %v", x.HasAMXTile, x.HasAMXInt8, err, Best)
	if got := Best == AMX; got != want {
		t.Errorf("Best = %v, want AMX: %v", Best, want)
	}
}

func TestAMXConfig(t *testing.T) {
	for _, c := range []struct {
		name   string
		cfgs   *[17][64]byte
		firstB int // B tiles (16 k-quads) are firstB..7, the rest r rows
	}{{"amxCfgs", &amxCfgs, 6}, {"amxRowCfgs", &amxRowCfgs, 5}} {
		for r, cfg := range c.cfgs {
			if cfg[0] != 1 {
				t.Fatalf("%s[%d]: palette %d, want 1", c.name, r, cfg[0])
			}
			for i := range 8 {
				want := r
				if i >= c.firstB {
					want = 16
				}
				if colsb, rows := int(cfg[16+2*i])|int(cfg[17+2*i])<<8, int(cfg[48+i]); colsb != 64 || rows != want {
					t.Errorf("%s[%d]: tile %d is %d rows x %d bytes, want %d x 64", c.name, r, i, rows, colsb, want)
				}
			}
		}
	}
}

// TestGemmTilesShortM runs the tile path itself on M <= 16, one tile
// (amxRow), down to the M < amxMinM that gemmAMX leaves to the VNNI kernels.
func TestGemmTilesShortM(t *testing.T) {
	if Best < AMX {
		t.Skipf("no AMX here (best tier %v)", Best)
	}
	r := rand.New(rand.NewPCG(10, 0))
	for m := 1; m <= 16; m++ {
		for _, nk := range [][2]int{{64, 64}, {65, 67}, {200, 130}, {17, 1000}, {320, 4100}} {
			gc := gemmRandCase(r, m, nk[0], nk[1])
			pb := PackB(gc.b, gc.k, gc.n)
			got := make([]int32, (m-1)*gc.ldc+gc.n+gemmGuard)
			want := make([]int32, len(got))
			for i := range got {
				got[i], want[i] = gemmSentinel, gemmSentinel
			}
			refGemm(m, gc.n, gc.k, gc.a, gc.lda, gc.aZero, gc.b, want, gc.ldc)
			gemmTiles(m, gc.a, gc.lda, gc.aZero, pb, got, gc.ldc)
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("m=%d n=%d k=%d: C[%d] = %d, want %d", m, gc.n, gc.k, i, got[i], want[i])
				}
			}
		}
	}
}

// TestGemmAMXRemainders covers every remainder of M mod 32 (tile pairs of 16
// rows), N mod 64 (panels) and K mod 64 (tile depth) on the tile path, the
// other two dimensions random, then a grid of edge shapes.
func TestGemmAMXRemainders(t *testing.T) {
	withAMX(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(7, 11))
		rm := func() int { return amxMinM + r.IntN(80) }
		rn := func() int { return 1 + r.IntN(200) }
		rk := func() int { return amxMinK + r.IntN(300) }
		for i := range 64 {
			gemmRandCase(r, amxMinM+i%48, rn(), rk()).check(t)
			gemmRandCase(r, rm(), 1+i, rk()).check(t)
			gemmRandCase(r, rm(), 64+i, rk()).check(t)
			gemmRandCase(r, rm(), rn(), amxMinK+i).check(t)
			gemmRandCase(r, rm(), rn(), 128+i).check(t)
		}
		for _, m := range []int{3, 8, 15, 16, 17, 31, 32, 33, 47, 48, 49, 63, 64, 65, 97} {
			for _, n := range []int{1, 16, 17, 32, 33, 63, 64, 65, 128, 129} {
				for _, k := range []int{64, 65, 67, 68, 72, 127, 128, 129, 190, 192} {
					gemmRandCase(r, m, n, k).check(t)
				}
			}
		}
	})
}

// TestGemmAMXChunks spans several row chunks, with a short last chunk
// (which overlaps the one before it), a K beyond one chunk's budget, and
// both loop orders (K and N at and past the pair order's limits, odd and
// even tile counts).
func TestGemmAMXChunks(t *testing.T) {
	withAMX(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(8, 0))
		kmax, nmax := amxPairKChunks*64, amxPairPanels*panelN
		for _, s := range [][3]int{
			{48, nmax, kmax}, {80, nmax - 1, kmax - 1}, {112, nmax + 5, kmax},
			{33, nmax, 200}, {100, nmax - 64, 130}, {35, 70, kmax + 1}, {64, nmax + 3, kmax + 64},
			{amxChunkBytes/1024 + 5, 130, 1024},
			{amxChunkBytes/2048*2 + 1, 70, 2048},
			{2*amxChunkBytes/4160 + 17, 65, 4160},
			{40, 200, 16387},
		} {
			gemmRandCase(r, s[0], s[1], s[2]).check(t)
		}
	})
}

// TestGemmAMXExtremes is TestGemmU8S8Extremes on the tile path: products of
// 255 x -128 and 255 x 127 summed over K up to 65535, with and without the
// zero point, and signs alternating along K.
func TestGemmAMXExtremes(t *testing.T) {
	withAMX(t, func(t *testing.T) {
		for _, tc := range []struct {
			aval, zp uint8
			bval     int8
			m, n, k  int
		}{
			{255, 0, -128, 33, 65, 4099},
			{255, 0, 127, 17, 64, 4096},
			{0, 255, -128, 16, 17, 1001},
			{0, 255, 127, 47, 17, 1001},
			{255, 0, -128, 16, 16, 65535},
			{0, 255, 127, 32, 64, 65535},
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
			for i := range gc.b {
				if (i/tc.n)%2 == 1 {
					gc.b[i] = ^gc.b[i]
				}
			}
			gc.check(t)
		}
	})
}
