//go:build amd64 && !purego

package kernels

// The SIMD loops (gemm_amd64.s) take the prefix that fills whole vectors;
// the reference finishes the tail.

func quantizeU8(t Tier, dst []uint8, src []float32, scale float32, zero uint8) {
	n := 0
	switch {
	case t >= AVX512VNNI && len(src) >= 16:
		n = len(src) &^ 15
		quantizeU8AVX512(&dst[0], &src[0], n, scale, int32(zero))
	case t >= AVX2 && len(src) >= 8:
		n = len(src) &^ 7
		quantizeU8AVX2(&dst[0], &src[0], n, scale, int32(zero))
	}
	quantizeU8Generic(dst[n:], src[n:], scale, zero)
}

func dequantizeRow(t Tier, out []float32, c []int32, scales []float32, rowScale float32, z int32, cs []int32, bias []float32, relu bool) {
	r := 0
	if relu {
		r = 1
	}
	var csp *int32
	if z != 0 {
		csp = &cs[0]
	}
	n := 0
	switch {
	case t >= AVX512VNNI && len(c) >= 16:
		n = len(c) &^ 15
		dequantRowAVX512(&out[0], &c[0], &scales[0], &bias[0], n, r, rowScale, z, csp)
	case t >= AVX2 && len(c) >= 8:
		n = len(c) &^ 7
		dequantRowAVX2(&out[0], &c[0], &scales[0], &bias[0], n, r, rowScale, z, csp)
	}
	if z != 0 {
		cs = cs[n:]
	}
	dequantizeRowGeneric(out[n:], c[n:], scales[n:], rowScale, z, cs, bias[n:], relu)
}
