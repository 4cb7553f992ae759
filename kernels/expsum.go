package kernels

import "math"

// ExpSum sets out[i] = float32(e^(x[i]-m)) for every i and returns the sum
// of those exponentials in float64: the middle pass of a softmax, m being
// the row's largest value. The caller must pass no x[i] NaN or above m
// (so that every x[i]-m is in [-Inf, 0]): that is not checked. It reports
// false, doing nothing, if m is NaN or infinite, or if the active tier has
// no vector exponential (below AVX512VNNI): the caller then computes the
// row itself.
//
// Each exponential takes the operations of the runtime's scalar one
// (exp32: 2^n times a Taylor polynomial of degree 8, each multiply and add
// rounded on its own), eight at a time in float64, so out is the same bit
// for bit; below e^-700 it is 0, as it is in float32. The sum adds eight
// lanes, then the lanes, so it may differ from a sum in order in its last
// bits.
func ExpSum(out, x []float32, m float64) (float64, bool) {
	if len(out) < len(x) {
		panic("kernels: ExpSum: out shorter than x")
	}
	if math.IsNaN(m) || math.IsInf(m, 0) {
		return 0, false
	}
	return expSum(active, out[:len(x)], x, m)
}

// MaxNaN returns the largest of x and whether any of x is NaN (the largest
// of the others then), -Inf for no x: the first pass of a softmax, whose
// ExpSum wants no NaN. Of equal zeros of both signs it may return either.
func MaxNaN(x []float32) (max float32, nan bool) { return maxNaN(active, x) }

// maxNaNTail folds x into the running maximum m and NaN flag nan.
func maxNaNTail(m float32, nan bool, x []float32) (float32, bool) {
	for _, v := range x {
		switch {
		case v != v:
			nan = true
		case v > m:
			m = v
		}
	}
	return m, nan
}

// DivRound sets x[i] = float32(float64(x[i]) / d) for every i, the same
// bits as that expression: the last pass of a softmax, d the sum ExpSum
// returned.
func DivRound(x []float32, d float64) { divRound(active, x, d) }

func divRoundGeneric(x []float32, d float64) {
	for i, v := range x {
		x[i] = float32(float64(v) / d)
	}
}
