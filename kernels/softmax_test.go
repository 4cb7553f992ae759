package kernels

import (
	"math"
	"testing"
)

// TestMaxNaN checks MaxNaN on every tier against the scalar loop, for
// every length up to five of its 16-lane steps: rows without NaN, with one
// NaN at each place, all NaN, with infinities, and empty.
func TestMaxNaN(t *testing.T) {
	gemmForEachTier(t, func(t *testing.T) {
		r := newTestRand(51)
		for n := 0; n <= 80; n++ {
			x := make([]float32, n)
			for i := range x {
				x[i] = float32(r.NormFloat64() * 5)
			}
			if n > 3 {
				x[n/3] = float32(math.Inf(-1))
			}
			check := func(what string, x []float32) {
				t.Helper()
				wantM, wantNaN := float32(math.Inf(-1)), false
				for _, v := range x {
					if v != v {
						wantNaN = true
					} else if v > wantM {
						wantM = v
					}
				}
				m, nan := MaxNaN(x)
				if m != wantM || nan != wantNaN {
					t.Fatalf("%v n=%d %s: MaxNaN = %v, %v; want %v, %v", Active(), len(x), what, m, nan, wantM, wantNaN)
				}
			}
			check("no NaN", x)
			for p := range n {
				y := append([]float32(nil), x...)
				y[p] = float32(math.NaN())
				check("one NaN", y)
			}
			if n > 0 {
				y := append([]float32(nil), x...)
				y[r.IntN(n)] = float32(math.Inf(1))
				check("+Inf", y)
				for i := range y {
					y[i] = float32(math.NaN())
				}
				check("all NaN", y)
			}
		}
	})
}

// TestDivRound checks DivRound on every tier against the scalar
// expression, bit for bit, for every length up to ten of its 8-lane steps,
// on values and divisors whose quotients are subnormal, zero, large or
// infinite in float32.
func TestDivRound(t *testing.T) {
	gemmForEachTier(t, func(t *testing.T) {
		r := newTestRand(52)
		for _, d := range []float64{1, 3.7, 1e-30, 1e30, 6e-39} {
			for n := 0; n <= 80; n++ {
				x := make([]float32, n)
				for i := range x {
					x[i] = float32(r.Float64())
				}
				if n > 4 {
					x[0], x[1], x[2] = 0, 1e-38, 3e38
				}
				want := make([]float32, n)
				for i, v := range x {
					want[i] = float32(float64(v) / d)
				}
				DivRound(x, d)
				for i := range x {
					if math.Float32bits(x[i]) != math.Float32bits(want[i]) {
						t.Fatalf("%v n=%d d=%v: x[%d] = %v, want %v", Active(), n, d, i, x[i], want[i])
					}
				}
			}
		}
	})
}
