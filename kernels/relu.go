package kernels

import "math"

// ReLU sets dst[i] to 0 where x[i] < 0 and to x[i] elsewhere, for i <
// len(x): NaNs and negative zeros pass as they are, bits and all, as they
// do through ONNX Runtime's Relu (1.31.1, checked on -0 and NaNs of both
// signs). dst must be at least as long as x, and may be x itself. On the
// outputs of a 32 x 3072 layer, half of them negative, a loop that
// branches on the sign took 706 us (the branch mispredicts half the time),
// the vector loop, which does not branch, 9-14 us over the 13-14 us of a
// copy (BenchmarkReLU).
func ReLU(dst, x []float32) {
	dst = dst[:len(x)]
	n := relu(active, dst, x)
	reluGeneric(dst[n:], x[n:])
}

// reluGeneric is ReLU's scalar loop. It selects the bits, which the
// compiler does with a conditional move, not a branch: 120-174 us in
// BenchmarkReLU.
func reluGeneric(dst, x []float32) {
	for i, v := range x {
		b := math.Float32bits(v)
		if v < 0 {
			b = 0
		}
		dst[i] = math.Float32frombits(b)
	}
}
