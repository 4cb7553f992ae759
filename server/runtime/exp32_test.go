package runtime

import (
	"math"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"testing"

	"github.com/corvidml/corvid/kernels"
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

// fusedBuild reports whether this binary was built for GOAMD64 v3 or
// above, where Go may fuse exp32's multiplies and adds: kernels.ExpSum
// then matches it to within a float32 step rather than bit for bit.
func fusedBuild() bool {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "GOAMD64" {
				return s.Value >= "v3"
			}
		}
	}
	return false
}

// TestExpSum checks kernels.ExpSum against exp32, on every tier: each
// exponential bit for bit (GOAMD64 v1), the sum to 1e-14 of exp32's summed
// in order, on rows of every length up to 40 and of 768, some with -Inf or
// values far below the largest; it must run on a tier with AVX-512.
func TestExpSum(t *testing.T) {
	r := rand.New(rand.NewPCG(10, 10))
	var rows [][]float32
	for n := 0; n <= 40; n++ {
		rows = append(rows, make([]float32, n))
	}
	for _, scale := range []float64{1, 30, 300, 3000} {
		rows = append(rows, make([]float32, 768))
		for _, row := range rows[len(rows)-41:] {
			for i := range row {
				row[i] = float32(r.NormFloat64() * scale)
			}
		}
	}
	rows = append(rows, []float32{0, float32(math.Inf(-1)), -699, -700, -701, -745, -746, 1, -1e30, 0.5})
	for tier := kernels.Generic; tier <= kernels.Best; tier++ {
		prev, err := kernels.SetTier(tier)
		if err != nil {
			t.Fatal(err)
		}
		for _, row := range rows {
			m := math.Inf(-1)
			for _, v := range row {
				m = max(m, float64(v))
			}
			if len(row) == 0 {
				m = 0
			}
			out := make([]float32, len(row)+1)
			out[len(row)] = 42 // must not be written
			sum, ok := kernels.ExpSum(out, row, m)
			if !ok {
				if tier >= kernels.AVX512VNNI {
					t.Fatalf("%v: ExpSum did not run", tier)
				}
				continue
			}
			var want float64
			for i, v := range row {
				e := exp32(float64(v) - m)
				want += e
				if got := out[i]; got != float32(e) && (!fusedBuild() || math.Abs(float64(got-float32(e))) > float64(math.Nextafter32(float32(e), 2)-float32(e))) {
					t.Fatalf("%v n=%d: out[%d] = %v (x=%v, m=%v), exp32 gives %v", tier, len(row), i, got, v, m, float32(e))
				}
			}
			if out[len(row)] != 42 {
				t.Fatalf("%v n=%d: wrote past the row", tier, len(row))
			}
			if math.Abs(sum-want) > 1e-14*want {
				t.Fatalf("%v n=%d: sum %v, exp32's %v", tier, len(row), sum, want)
			}
		}
		kernels.SetTier(prev)
	}
}

// TestSoftmaxRows32 checks the float32 row path against softmax with
// exp32 (to within a float32 step: the sums are added in another order) on
// every tier, on random rows and on rows with NaN or infinities.
func TestSoftmaxRows32(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 11))
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	rows := [][]float32{{nan, 1, 2}, {1, inf, 2}, {-inf, -inf}, {nan, inf}, {3}, {-inf, 0, inf}, {-inf, 0, 1}}
	for _, n := range []int{5, 17, 768} {
		row := make([]float32, n)
		for i := range row {
			row[i] = float32(r.NormFloat64() * 30)
		}
		rows = append(rows, row)
	}
	for tier := kernels.Generic; tier <= kernels.Best; tier++ {
		prev, err := kernels.SetTier(tier)
		if err != nil {
			t.Fatal(err)
		}
		for _, row := range rows {
			x := slices.Concat(row, row, row)
			l := axisLayout{outer: 3, n: len(row), inner: 1}
			got, want := make([]float32, len(x)), make([]float32, len(x))
			softmaxRows32(l, got, x)
			softmax(l, want, x, exp32)
			for i := range got {
				g, w := got[i], want[i]
				if g != g || w != w {
					if g == g || w == w {
						t.Fatalf("%v row %v: out[%d] = %v, softmax gives %v", tier, row[:min(len(row), 8)], i, g, w)
					}
					continue
				}
				if math.Abs(float64(g-w)) > float64(math.Nextafter32(w, 2)-w) {
					t.Fatalf("%v row %v: out[%d] = %v, softmax gives %v", tier, row[:min(len(row), 8)], i, g, w)
				}
			}
		}
		kernels.SetTier(prev)
	}
}

// BenchmarkSoftmax32 times float32 softmax over the 768-3072-768 MLP's
// output at batch 32, by rows (kernels.ExpSum where it runs) and by the
// scalar loop, and reports ns per element.
func BenchmarkSoftmax32(b *testing.B) {
	r := rand.New(rand.NewPCG(12, 12))
	x := make([]float32, 32*768)
	for i := range x {
		x[i] = float32(r.NormFloat64() * 5)
	}
	out := make([]float32, len(x))
	l := axisLayout{outer: 32, n: 768, inner: 1}
	for _, v := range []struct {
		name string
		f    func()
	}{
		{"rows", func() { softmaxRows32(l, out, x) }},
		{"scalar", func() { softmax(l, out, x, exp32) }},
	} {
		b.Run(v.name, func(b *testing.B) {
			for b.Loop() {
				v.f()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(x)), "ns/element")
		})
	}
}
