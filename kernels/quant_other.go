//go:build !amd64 || purego

package kernels

func quantizeU8(_ Tier, dst []uint8, src []float32, scale float32, zero uint8) {
	quantizeU8Generic(dst, src, scale, zero)
}

func dequantizeRow(_ Tier, out []float32, c []int32, scales []float32, rowScale float32, z int32, cs []int32, bias []float32, relu bool) {
	dequantizeRowGeneric(out, c, scales, rowScale, z, cs, bias, relu)
}

func minMax(_ Tier, x []float32) (lo, hi float32, ok bool) { return minMaxGeneric(x) }
