package kernels

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestQuantParamsU8(t *testing.T) {
	for _, tc := range []struct {
		lo, hi    float32
		wantScale float32
		wantZero  uint8
	}{
		{-1, 1, 2.0 / 255, 127}, // 1/float32(2/255) = 127.49999
		{0, 255, 1, 0},
		{-255, 0, 1, 255},
		{10, 255, 1, 0},     // range widened to include 0
		{-51, -1, 0.2, 255}, // likewise
		{0, 0, 1, 0},        // degenerate
		{-2.55, 0, 0.01, 255},
	} {
		s, z := QuantParamsU8(tc.lo, tc.hi)
		if math.Abs(float64(s-tc.wantScale)) > 1e-7 || z != tc.wantZero {
			t.Errorf("QuantParamsU8(%v, %v) = %v, %d, want %v, %d", tc.lo, tc.hi, s, z, tc.wantScale, tc.wantZero)
		}
	}
}

func TestMinMax(t *testing.T) {
	nan := float32(math.NaN())
	lo, hi := MinMax([]float32{nan, 3, -2, nan, 7})
	if lo != -2 || hi != 7 {
		t.Errorf("MinMax = %v, %v, want -2, 7", lo, hi)
	}
	if lo, hi := MinMax(nil); lo != 0 || hi != 0 {
		t.Errorf("MinMax(nil) = %v, %v, want 0, 0", lo, hi)
	}
}

// TestMinMaxTiers checks every tier against the reference on every length
// up to a few blocks, with NaNs and infinities placed anywhere, the extremes
// in the SIMD part and in the tail, and all-NaN inputs.
func TestMinMaxTiers(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	nan := float32(math.NaN())
	for tier := Generic; tier <= Best; tier++ {
		for n := 0; n <= 70; n++ {
			for trial := range 8 {
				x := make([]float32, n)
				for i := range x {
					switch r.IntN(10) {
					case 0:
						x[i] = nan
					case 1:
						if trial%2 == 0 {
							x[i] = float32(math.Inf(1 - 2*r.IntN(2)))
						}
					default:
						x[i] = float32(r.NormFloat64() * 10)
					}
				}
				if trial == 7 {
					for i := range x {
						x[i] = nan
					}
				}
				wlo, whi, wok := minMaxGeneric(x)
				lo, hi, ok := minMax(tier, x)
				if ok != wok || ok && (lo != wlo || hi != whi) {
					t.Fatalf("%v n=%d: minMax = %v %v %t, reference %v %v %t (x=%v)", tier, n, lo, hi, ok, wlo, whi, wok, x)
				}
			}
		}
	}
}

func quantInputs(r *rand.Rand, n int) []float32 {
	special := []float32{0, float32(math.Copysign(0, -1)), 0.5, 1.5, 2.5, -0.5, -1.5, 127.5, 128.5, 254.5, 255.5,
		1e30, -1e30, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 511.5, 512.5, -600, 3e9, -3e9}
	x := make([]float32, n)
	for i := range x {
		if i < len(special) {
			x[i] = special[i]
		} else {
			x[i] = float32(r.NormFloat64() * 100)
		}
	}
	return x
}

func TestQuantizeU8(t *testing.T) {
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	src := []float32{2.5, 3.5, -20, 300, nan, inf, -inf, 0, -10, -10.5, 1e10}
	want := []uint8{12, 14, 0, 255, 0, 255, 0, 10, 0, 0, 255}
	gemmForEachTier(t, func(t *testing.T) {
		got := make([]uint8, len(src))
		if err := QuantizeU8(got, src, 1, 10); err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("QuantizeU8(%v, scale 1, zero 10) = %d, want %d", src[i], got[i], want[i])
			}
		}
		r := rand.New(rand.NewPCG(3, 4))
		for _, n := range []int{0, 1, 15, 16, 17, 63, 64, 65, 1000} {
			x := quantInputs(r, n)
			for _, sz := range []struct {
				s float32
				z uint8
			}{{1, 0}, {0.37, 128}, {2.1, 255}, {1e-3, 17}} {
				ref := make([]uint8, n)
				quantizeU8Generic(ref, x, sz.s, sz.z)
				buf := make([]uint8, n+2*gemmGuard)
				for i := range buf {
					buf[i] = 0xa5
				}
				if err := QuantizeU8(buf[gemmGuard:gemmGuard+n], x, sz.s, sz.z); err != nil {
					t.Fatal(err)
				}
				for i := range gemmGuard {
					if buf[i] != 0xa5 || buf[len(buf)-1-i] != 0xa5 {
						t.Fatalf("n=%d: gemmGuard overwritten", n)
					}
				}
				for i := range n {
					if buf[gemmGuard+i] != ref[i] {
						t.Fatalf("n=%d scale %v zero %d: x=%v: got %d, want %d", n, sz.s, sz.z, x[i], buf[gemmGuard+i], ref[i])
					}
				}
			}
		}
	})
	if err := QuantizeU8(make([]uint8, 1), make([]float32, 2), 1, 0); !errors.Is(err, ErrShape) {
		t.Errorf("short dst: got %v, want ErrShape", err)
	}
	if err := QuantizeU8(nil, nil, 0, 0); !errors.Is(err, ErrShape) {
		t.Errorf("zero scale: got %v, want ErrShape", err)
	}
}

func TestQuantizeDynamicRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	x := make([]float32, 1000)
	for i := range x {
		x[i] = float32(r.NormFloat64()*3 + 1)
	}
	q := make([]uint8, len(x))
	s, z, err := QuantizeDynamicU8(q, x)
	if err != nil {
		t.Fatal(err)
	}
	back := make([]float32, len(x))
	if err := DequantizeU8(back, q, s, z); err != nil {
		t.Fatal(err)
	}
	for i := range x {
		if d := math.Abs(float64(back[i] - x[i])); d > float64(s)/2*1.001 {
			t.Fatalf("x=%v: round trip %v, error %v > scale/2 = %v", x[i], back[i], d, s/2)
		}
	}
}

func TestQuantizeWeightsS8(t *testing.T) {
	w := []float32{
		1, -0.5, 0,
		-2, 0.25, 0,
	}
	q, scales, err := QuantizeWeightsS8(w, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	wantScales := []float32{2.0 / 127, 0.5 / 127, 1}
	wantQ := []int8{64, -127, 0, -127, 64, 0} // 63.5 and 63.5 round to even 64
	for j := range wantScales {
		if scales[j] != wantScales[j] {
			t.Errorf("scales[%d] = %v, want %v", j, scales[j], wantScales[j])
		}
	}
	for i := range wantQ {
		if q[i] != wantQ[i] {
			t.Errorf("q[%d] = %d, want %d", i, q[i], wantQ[i])
		}
	}
	if _, _, err := QuantizeWeightsS8(w, 3, 3); !errors.Is(err, ErrShape) {
		t.Errorf("short w: got %v, want ErrShape", err)
	}
}

func TestDequantizeBiasReLU(t *testing.T) {
	c := []int32{10, -10, 7, 99 /* row 2 */, -4, 4, 0, 99}
	got := make([]float32, 6)
	if err := DequantizeBiasReLU(c, 2, 3, 4, 0.5, []float32{1, 2, 4}, []float32{1, 1, -1}, true, got); err != nil {
		t.Fatal(err)
	}
	want := []float32{6, 0, 13, 0, 5, 0}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("out[%d] = %v, want %v", i, got[i], want[i])
		}
	}
	gemmForEachTier(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(7, 8))
		for _, n := range []int{1, 15, 16, 17, 31, 64, 65, 100} {
			for _, m := range []int{1, 3} {
				ldc := n + r.IntN(3)
				c := make([]int32, (m-1)*ldc+n)
				for i := range c {
					c[i] = int32(r.Uint32())
				}
				c[0] = math.MinInt32
				sc := make([]float32, n)
				bias := make([]float32, n)
				for j := range sc {
					sc[j] = float32(r.Float64()) * 1e-3
					bias[j] = float32(r.NormFloat64())
				}
				for _, relu := range []bool{false, true} {
					for _, b := range [][]float32{bias, nil} {
						for _, scs := range [][]float32{sc, sc[:1]} {
							want := make([]float32, m*n)
							full := make([]float32, n)
							for j := range full {
								full[j] = 0.7 * scs[min(j, len(scs)-1)]
							}
							zero := make([]float32, n)
							for i := range m {
								bb := b
								if bb == nil {
									bb = zero
								}
								dequantizeRowGeneric(want[i*n:][:n], c[i*ldc:][:n], full, 1, 0, nil, bb, relu)
							}
							buf := make([]float32, m*n+2*gemmGuard)
							for i := range buf {
								buf[i] = 12345
							}
							if err := DequantizeBiasReLU(c, m, n, ldc, 0.7, scs, b, relu, buf[gemmGuard:gemmGuard+m*n]); err != nil {
								t.Fatal(err)
							}
							for i := range gemmGuard {
								if buf[i] != 12345 || buf[len(buf)-1-i] != 12345 {
									t.Fatalf("gemmGuard overwritten")
								}
							}
							for i, w := range want {
								if g := buf[gemmGuard+i]; math.Float32bits(g) != math.Float32bits(w) {
									t.Fatalf("m=%d n=%d relu=%v: out[%d] = %v, want %v", m, n, relu, i, g, w)
								}
							}
						}
					}
				}
			}
		}
	})
	if err := DequantizeBiasReLU(make([]int32, 4), 2, 2, 2, 1, []float32{1, 1, 1}, nil, false, make([]float32, 4)); !errors.Is(err, ErrShape) {
		t.Errorf("bad bScales: got %v, want ErrShape", err)
	}
	if err := DequantizeBiasReLU(make([]int32, 4), 2, 2, 2, 1, []float32{1}, nil, false, make([]float32, 3)); !errors.Is(err, ErrShape) {
		t.Errorf("short out: got %v, want ErrShape", err)
	}
}

// TestQuantizedMatMul runs the whole int8 path (dynamic activation
// quantization, per-channel weights, GEMM, epilogue) against float math.
func TestQuantizedMatMul(t *testing.T) {
	const m, k, n = 5, 300, 70
	r := rand.New(rand.NewPCG(9, 10))
	x := make([]float32, m*k)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	w := make([]float32, k*n)
	for i := range w {
		w[i] = float32(r.NormFloat64()) * 0.05
	}
	bias := make([]float32, n)
	for i := range bias {
		bias[i] = float32(r.NormFloat64())
	}
	wq, ws, err := QuantizeWeightsS8(w, k, n)
	if err != nil {
		t.Fatal(err)
	}
	pb := PackB(wq, k, n)
	gemmForEachTier(t, func(t *testing.T) {
		xq := make([]uint8, m*k)
		xs, xz, err := QuantizeDynamicU8(xq, x)
		if err != nil {
			t.Fatal(err)
		}
		c := make([]int32, m*n)
		GemmU8S8(m, xq, k, xz, pb, c, n)
		out := make([]float32, m*n)
		if err := DequantizeBiasReLU(c, m, n, n, xs, ws, bias, true, out); err != nil {
			t.Fatal(err)
		}
		var maxErr float64
		for i := range m {
			for j := range n {
				var want float64
				for kk := range k {
					want += float64(x[i*k+kk]) * float64(w[kk*n+j])
				}
				want = max(want+float64(bias[j]), 0)
				maxErr = max(maxErr, math.Abs(want-float64(out[i*n+j])))
			}
		}
		if maxErr > 0.05 {
			t.Errorf("max |int8 - float| = %v, want <= 0.05", maxErr)
		}
	})
}

func TestGemmU8S8Dequant(t *testing.T) {
	gemmForEachTier(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(11, 12))
		// {100, 3000, 5} takes two row chunks (epilogueBytes).
		for _, s := range [][3]int{{1, 10, 64}, {8, 65, 33}, {13, 129, 7}, {70, 300, 40}, {3, 5, 0}, {100, 3000, 5}} {
			m, n, k := s[0], s[1], s[2]
			gc := gemmRandCase(r, m, n, k)
			pb := PackB(gc.b, k, n)
			sc := make([]float32, n)
			bias := make([]float32, n)
			for j := range sc {
				sc[j] = float32(r.Float64()) * 1e-2
				bias[j] = float32(r.NormFloat64())
			}
			for _, relu := range []bool{false, true} {
				for _, b := range [][]float32{bias, nil} {
					c := make([]int32, m*n)
					GemmU8S8(m, gc.a, gc.lda, gc.aZero, pb, c, n)
					want := make([]float32, m*n)
					if err := DequantizeBiasReLU(c, m, n, n, 0.3, sc, b, relu, want); err != nil {
						t.Fatal(err)
					}
					checkDequantInto(t, fmt.Sprintf("m=%d n=%d k=%d relu=%v", m, n, k, relu), m, n, n+2, want, func(out []float32, ldo int) error {
						return GemmU8S8Dequant(m, gc.a, gc.lda, gc.aZero, 0.3, pb, sc, b, relu, out, ldo)
					})
				}
			}
		}
	})
	pb := PackB(make([]int8, 6), 2, 3)
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"nil pb", GemmU8S8Dequant(1, make([]uint8, 2), 2, 0, 1, nil, []float32{1}, nil, false, make([]float32, 3), 3)},
		{"short a", GemmU8S8Dequant(2, make([]uint8, 3), 2, 0, 1, pb, []float32{1}, nil, false, make([]float32, 6), 3)},
		{"short out", GemmU8S8Dequant(2, make([]uint8, 4), 2, 0, 1, pb, []float32{1}, nil, false, make([]float32, 5), 3)},
		{"bad scales", GemmU8S8Dequant(1, make([]uint8, 2), 2, 0, 1, pb, []float32{1, 1}, nil, false, make([]float32, 3), 3)},
		{"short bias", GemmU8S8Dequant(1, make([]uint8, 2), 2, 0, 1, pb, []float32{1}, []float32{1}, false, make([]float32, 3), 3)},
		{"short ldo", GemmU8S8Dequant(1, make([]uint8, 2), 2, 0, 1, pb, []float32{1}, nil, false, make([]float32, 3), 2)},
	} {
		if !errors.Is(tc.err, ErrShape) {
			t.Errorf("%s: got %v, want ErrShape", tc.name, tc.err)
		}
	}
}

// checkDequantInto runs into on a guard-padded output of m rows of n
// (row stride ldo) and fails t, naming the case what, if it writes a cell
// outside them, or if a cell's bits differ from want's (m x n, stride n).
func checkDequantInto(t *testing.T, what string, m, n, ldo int, want []float32, into func(out []float32, ldo int) error) {
	t.Helper()
	buf := make([]float32, (m-1)*ldo+n+2*gemmGuard)
	for i := range buf {
		buf[i] = 777
	}
	out := buf[gemmGuard : len(buf)-gemmGuard]
	if err := into(out, ldo); err != nil {
		t.Fatal(err)
	}
	for i := range buf {
		in := i >= gemmGuard && i < len(buf)-gemmGuard && (i-gemmGuard)%ldo < n
		if !in && buf[i] != 777 {
			t.Fatalf("%s: cell %d outside the output was written", what, i)
		}
	}
	for i := range m {
		for j := range n {
			if g, w := out[i*ldo+j], want[i*n+j]; math.Float32bits(g) != math.Float32bits(w) {
				t.Fatalf("%s: out[%d][%d] = %v, want %v", what, i, j, g, w)
			}
		}
	}
}

// TestDequantizeRowsBiasReLU checks, on every tier, that one GEMM with 0 as
// zero point followed by DequantizeRowsBiasReLU gives, bit for bit, what
// GemmU8S8Dequant gives row by row with each row's own zero point and
// scale: the guarantee a batch of rows quantized on their own relies on.
// Widths cover the SIMD blocks and their tails; zero points include 0 and
// 255; scales are per column and per tensor; bias nil or not; with and
// without ReLU. Cells past the output are left alone, and bad shapes are
// refused.
func TestDequantizeRowsBiasReLU(t *testing.T) {
	gemmForEachTier(t, func(t *testing.T) {
		r := newTestRand(31)
		for _, n := range []int{1, 7, 8, 16, 33, 100} {
			m, k := 5, 40
			gc := gemmRandCase(r, m, n, k)
			a, lda := gc.a, gc.lda
			pb := PackB(gc.b, k, n)
			aScales := []float32{0.02, 0.5, 1e-3, 3, 0.07}
			aZeros := []uint8{0, 255, 17, 128, 0}
			sc, bias := make([]float32, n), make([]float32, n)
			for j := range sc {
				sc[j] = float32(r.Float64()*0.1 + 1e-3)
				bias[j] = float32(r.NormFloat64())
			}
			c := make([]int32, m*n)
			GemmU8S8(m, a, lda, 0, pb, c, n)
			for _, relu := range []bool{false, true} {
				for _, bb := range [][]float32{bias, nil} {
					for _, scs := range [][]float32{sc, sc[:1]} {
						want := make([]float32, m*n)
						for i := range m {
							if err := GemmU8S8Dequant(1, a[i*lda:], lda, aZeros[i], aScales[i], pb, scs, bb, relu, want[i*n:], n); err != nil {
								t.Fatal(err)
							}
						}
						buf := make([]float32, m*n+gemmGuard)
						for i := range buf {
							buf[i] = 12345
						}
						if err := DequantizeRowsBiasReLU(c, m, n, n, aScales, aZeros, pb, scs, bb, relu, buf[:m*n]); err != nil {
							t.Fatal(err)
						}
						for i := m * n; i < len(buf); i++ {
							if buf[i] != 12345 {
								t.Fatalf("n=%d: cell %d past the output written", n, i)
							}
						}
						for i, w := range want {
							if math.Float32bits(buf[i]) != math.Float32bits(w) {
								t.Fatalf("%v n=%d relu=%v bias=%v scales=%d: out[%d][%d] = %v, want %v", Active(), n, relu, bb != nil, len(scs), i/n, i%n, buf[i], w)
							}
						}
					}
				}
			}
			// Zero points of nil are zeros.
			got, want := make([]float32, m*n), make([]float32, m*n)
			if err := DequantizeRowsBiasReLU(c, m, n, n, aScales, nil, pb, sc, bias, false, got); err != nil {
				t.Fatal(err)
			}
			if err := DequantizeRowsBiasReLU(c, m, n, n, aScales, make([]uint8, m), pb, sc, bias, false, want); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("n=%d: nil zero points differ from zeros", n)
			}
		}
	})
	pb := PackB(make([]int8, 4*8), 4, 8)
	c, out := make([]int32, 16), make([]float32, 16)
	for _, tc := range []struct {
		name    string
		pb      *PackedB
		n       int
		scales  []float32
		zeros   []uint8
		wantErr string
	}{
		{"nil B", nil, 8, []float32{1, 1}, nil, "nil PackedB"},
		{"n not B's", pb, 7, []float32{1, 1}, nil, "want B's 8 columns"},
		{"short scales", pb, 8, []float32{1}, nil, "len(aScales)=1"},
		{"short zeros", pb, 8, []float32{1, 1}, []uint8{0}, "len(aZeros)=1"},
	} {
		err := DequantizeRowsBiasReLU(c, 2, tc.n, 8, tc.scales, tc.zeros, tc.pb, []float32{1}, nil, false, out)
		if !errors.Is(err, ErrShape) || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: error %v, want ErrShape saying %q", tc.name, err, tc.wantErr)
		}
	}
}
