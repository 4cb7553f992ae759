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
