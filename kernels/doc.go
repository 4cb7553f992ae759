// Package kernels holds Corvid's compute kernels: int8 and fp32 matrix
// products and the quantization helpers around them, as plain functions over
// slices. It knows nothing of Gorgonia, ONNX or gRPC; the runtime calls it.
//
// Every kernel has a pure-Go reference whose doc comment says exactly what it
// computes; the SIMD tiers (AVX-512 VNNI, AVX2) are tested against it,
// bit-exact for integer results. The tier is chosen once from the CPU's
// features; CORVID_KERNELS=generic|avx2|avx512vnni forces one (for tests and
// benchmarks), and the purego build tag compiles the references alone.
package kernels
