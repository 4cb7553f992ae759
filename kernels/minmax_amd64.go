//go:build amd64 && !purego

package kernels

import "math"

//go:noescape
func minMaxAVX2(x *float32, n int, lo, hi *float32)

// minMax runs the AVX2 loop over the whole 16-element blocks and the
// reference over the rest; the result is the same whichever runs, since
// min and max do not depend on order.
func minMax(t Tier, x []float32) (lo, hi float32, ok bool) {
	n := len(x) &^ 15
	lo, hi = float32(math.Inf(1)), float32(math.Inf(-1))
	if t >= AVX2 && n > 0 {
		minMaxAVX2(&x[0], n, &lo, &hi)
	} else {
		n = 0
	}
	for _, v := range x[n:] {
		if v < lo {
			lo = v
		}
		if v > hi {
			hi = v
		}
	}
	return lo, hi, lo <= hi
}
