//go:build !amd64 || purego

package kernels

import "math"

func expSum(Tier, []float32, []float32, float64) (float64, bool) { return 0, false }

func maxNaN(_ Tier, x []float32) (float32, bool) {
	return maxNaNTail(float32(math.Inf(-1)), false, x)
}

func divRound(_ Tier, x []float32, d float64) { divRoundGeneric(x, d) }
