//go:build amd64 && !purego

package kernels

import (
	"math"

	"golang.org/x/sys/cpu"
)

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

//go:noescape
func maxNaNAVX512(x *float32, n int) (max float32, nan bool)

//go:noescape
func divAVX512(x *float32, n int, d float64)

func maxNaN(t Tier, x []float32) (m float32, nan bool) {
	n := 0
	m = float32(math.Inf(-1))
	if t >= AVX512VNNI && len(x) >= 16 {
		n = len(x) &^ 15
		m, nan = maxNaNAVX512(&x[0], n)
	}
	return maxNaNTail(m, nan, x[n:])
}

func divRound(t Tier, x []float32, d float64) {
	n := 0
	if t >= AVX512VNNI && len(x) >= 8 {
		n = len(x) &^ 7
		divAVX512(&x[0], n, d)
	}
	divRoundGeneric(x[n:], d)
}
