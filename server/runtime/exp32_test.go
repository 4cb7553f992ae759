package runtime

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestExp32 checks exp32 against math.Exp: relative error under 1e-9 (a
// sixtieth of float32's precision) over [-700, 700], densely near 0 where
// softmax's largest terms are, and exactly math.Exp's result outside that
// range and for NaN and infinities.
func TestExp32(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	check := func(x float64) {
		got, want := exp32(x), math.Exp(x)
		if rel := math.Abs(got-want) / want; !(rel < 1e-9) {
			t.Fatalf("exp32(%v) = %v, math.Exp %v: relative error %g", x, got, want, rel)
		}
	}
	for range 200000 {
		check((r.Float64()*2 - 1) * 700)
		check(-r.Float64() * 20)
	}
	for _, x := range []float64{0, -0.5 * math.Ln2, 0.5 * math.Ln2, -700, 700, -1e-300, 1e-300} {
		check(x)
	}
	for _, x := range []float64{math.Inf(-1), math.Inf(1), math.NaN(), -700.5, 700.5, -1e4, 1e4, -745.1332191019411, -745.1332191019412, -745.14, -746} {
		got, want := exp32(x), math.Exp(x)
		if got != want && !(math.IsNaN(got) && math.IsNaN(want)) {
			t.Errorf("exp32(%v) = %v, want math.Exp's %v", x, got, want)
		}
	}
}

// TestSoftmaxFloat32Exp checks that float32 softmax with exp32 gives, on
// random rows of several lengths and ranges, the values of softmax with
// math.Exp to within one float32 step (they differ only where exp32's tiny
// error crosses a rounding boundary).
func TestSoftmaxFloat32Exp(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 8))
	for _, n := range []int{1, 2, 10, 768, 4096} {
		for _, scale := range []float64{1, 30, 300, 3000} {
			x := make([]float32, 3*n)
			for i := range x {
				x[i] = float32(r.NormFloat64() * scale)
			}
			l := axisLayout{outer: 3, n: n, inner: 1}
			got, want := make([]float32, len(x)), make([]float32, len(x))
			softmax(l, got, x, exp32)
			softmax(l, want, x, math.Exp)
			for i := range got {
				if d := math.Abs(float64(got[i]) - float64(want[i])); d > float64(math.Nextafter32(want[i], 2)-want[i]) {
					t.Fatalf("n=%d scale=%v [%d]: %v with exp32, %v with math.Exp", n, scale, i, got[i], want[i])
				}
			}
		}
	}
}
