//go:build amd64 && !purego

package kernels

//go:noescape
func reluAVX2(dst, x *float32, n int)

// relu runs the vector loop of tier t on the first values of x it can,
// and returns how many.
func relu(t Tier, dst, x []float32) int {
	if t < AVX2 || len(x) < 8 {
		return 0
	}
	n := len(x) &^ 7
	reluAVX2(&dst[0], &x[0], n)
	return n
}
