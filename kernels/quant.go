package kernels

import (
	"fmt"
	"math"
)

// QuantParamsU8 returns the scale and zero point that map the float range
// [lo, hi] onto uint8 as ONNX's DynamicQuantizeLinear does: the range is
// first widened to include 0 (so 0 is exact), then
//
//	scale = (hi - lo) / 255,  zero = RoundToEven(clamp(-lo/scale, 0, 255))
//
// A degenerate range (hi == lo == 0, or non-finite bounds) gives scale 1,
// zero 0.
func QuantParamsU8(lo, hi float32) (scale float32, zero uint8) {
	lo, hi = min(lo, 0), max(hi, 0)
	scale = (hi - lo) / 255
	if scale == 0 || math.IsInf(float64(scale), 0) || math.IsNaN(float64(scale)) {
		return 1, 0
	}
	z := -lo / scale
	z = min(max(z, 0), 255)
	return scale, uint8(math.RoundToEven(float64(z)))
}

// MinMax returns the smallest and largest values of x, ignoring NaNs (0, 0
// for an empty or all-NaN x). Infinities count as values.
func MinMax(x []float32) (lo, hi float32) {
	lo, hi, ok := minMax(active, x)
	if !ok {
		return 0, 0
	}
	return lo, hi
}

// minMaxGeneric is the reference for minMax: comparisons with NaN are false,
// so NaNs never become the minimum or maximum. ok is false when x holds no
// number.
func minMaxGeneric(x []float32) (lo, hi float32, ok bool) {
	lo, hi = float32(math.Inf(1)), float32(math.Inf(-1))
	seen := false
	for _, v := range x {
		if v != v {
			continue
		}
		seen = true
		if v < lo {
			lo = v
		}
		if v > hi {
			hi = v
		}
	}
	return lo, hi, seen
}

// quantClamp bounds x/scale before the conversion to int32: anything beyond
// ±512 saturates to 0 or 255 whatever the zero point, and the bound keeps
// the conversion in range (the SIMD tiers clamp the same way).
const quantClamp = 512

// quantizeU8Generic is the reference for QuantizeU8. For each i:
//
//	v = float32(src[i] / scale)            (IEEE float32 division)
//	v = clamp(v, -512, 512)                (NaN becomes -512)
//	dst[i] = clamp(RoundToEven(v) + zero, 0, 255)
func quantizeU8Generic(dst []uint8, src []float32, scale float32, zero uint8) {
	z := int32(zero)
	for i, x := range src {
		v := x / scale
		if !(v >= -quantClamp) { // also NaN
			v = -quantClamp
		}
		v = min(v, quantClamp)
		q := int32(math.RoundToEven(float64(v))) + z
		dst[i] = uint8(min(max(q, 0), 255))
	}
}

// QuantizeU8 quantizes src into dst (len(dst) >= len(src)) with a per-tensor
// scale and zero point, as ONNX's QuantizeLinear does for uint8:
// q = saturate(RoundToEven(x/scale) + zero). NaN quantizes to 0. It returns
// an error wrapping ErrShape if dst is too short or scale is not a positive
// finite number.
func QuantizeU8(dst []uint8, src []float32, scale float32, zero uint8) error {
	if len(dst) < len(src) {
		return fmt.Errorf("%w: QuantizeU8 len(dst)=%d: want >= len(src)=%d", ErrShape, len(dst), len(src))
	}
	if !(scale > 0) || math.IsInf(float64(scale), 0) {
		return fmt.Errorf("%w: QuantizeU8 scale=%v: want a positive finite number", ErrShape, scale)
	}
	quantizeU8(active, dst[:len(src)], src, scale, zero)
	return nil
}

// QuantizeDynamicU8 picks the scale and zero point from src's range
// (MinMax, then QuantParamsU8) and quantizes src into dst with them.
func QuantizeDynamicU8(dst []uint8, src []float32) (scale float32, zero uint8, err error) {
	scale, zero = QuantParamsU8(MinMax(src))
	return scale, zero, QuantizeU8(dst, src, scale, zero)
}

// DequantizeU8 sets dst[i] = float32(int32(src[i]) - int32(zero)) * scale.
func DequantizeU8(dst []float32, src []uint8, scale float32, zero uint8) error {
	if len(dst) < len(src) {
		return fmt.Errorf("%w: DequantizeU8 len(dst)=%d: want >= len(src)=%d", ErrShape, len(dst), len(src))
	}
	z := int32(zero)
	for i, q := range src {
		dst[i] = float32(int32(q)-z) * scale
	}
	return nil
}

// QuantizeWeightsS8 quantizes a float weight matrix w [k][n] (row-major,
// stride n) to int8 symmetrically per output column, the layout PackB takes:
//
//	scales[j] = max_k |w[k][j]| / 127   (1 if the column is all zero)
//	q[k][j]   = clamp(RoundToEven(w[k][j] / scales[j]), -127, 127)
//
// so w[k][j] ≈ q[k][j] * scales[j]. NaN weights quantize to 0. It returns
// q (len k*n) and scales (len n).
func QuantizeWeightsS8(w []float32, k, n int) (q []int8, scales []float32, err error) {
	if k < 0 || n < 0 || len(w) < k*n {
		return nil, nil, fmt.Errorf("%w: QuantizeWeightsS8 len(w)=%d k=%d n=%d: want k, n >= 0 and len(w) >= k*n", ErrShape, len(w), k, n)
	}
	scales = make([]float32, n)
	for kk := range k {
		for j, v := range w[kk*n : kk*n+n] {
			scales[j] = max(scales[j], float32(math.Abs(float64(v))))
		}
	}
	for j, s := range scales {
		if s == 0 || math.IsInf(float64(s), 0) || s != s {
			scales[j] = 1
		} else {
			scales[j] = s / 127
		}
	}
	q = make([]int8, k*n)
	for kk := range k {
		for j, v := range w[kk*n : kk*n+n] {
			r := math.RoundToEven(float64(v / scales[j]))
			if r != r {
				r = 0
			}
			q[kk*n+j] = int8(min(max(r, -127), 127))
		}
	}
	return q, scales, nil
}
