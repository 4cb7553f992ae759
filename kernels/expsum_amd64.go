//go:build amd64 && !purego

package kernels

import "golang.org/x/sys/cpu"

//go:noescape
func expSumAVX512(out, x *float32, n int, m float64) float64

// expSumOK is whether this CPU runs expSumAVX512 (AVX512DQ for the
// conversion of the powers of two).
var expSumOK = cpu.X86.HasAVX512F && cpu.X86.HasAVX512DQ

func expSum(t Tier, out, x []float32, m float64) (float64, bool) {
	if t < AVX512VNNI || !expSumOK {
		return 0, false
	}
	if len(x) == 0 {
		return 0, true
	}
	return expSumAVX512(&out[0], &x[0], len(x), m), true
}
