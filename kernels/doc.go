// Package kernels holds Corvid's compute kernels: int8 and fp32 matrix
// products and the quantization helpers around them, as plain functions over
// slices. It knows nothing of Gorgonia, ONNX or gRPC; the runtime calls it.
//
// Every kernel has a pure-Go reference whose doc comment says exactly what it
// computes; the SIMD tiers (AMX tiles, AVX-512 VNNI, AVX2) are tested against
// it, bit-exact for integer results. The tier is chosen once from the CPU's
// features (AMX also needs the OS to grant the tile state);
// CORVID_KERNELS=generic|avx2|avx512vnni|amx forces one (for tests and
// benchmarks), and the purego build tag compiles the references alone. On
// the AMX tier chosen by default, each weight matrix keeps the recent times
// of the tiles and the VNNI kernels on it and runs the faster (adapt.go):
// on a shared host the tiles' rate moves by up to 3.5x. One kernel has no
// reference here: ExpSum (softmax's exponentials, AVX-512) reports when it
// does not run, and its caller, the runtime, computes them with its own
// scalar exp32, against which it is tested bit for bit.
//
// Large GEMMs are split across cores by a persistent worker pool (pool.go,
// parallel.go); small ones, and GEMMs that find the pool busy, stay on the
// caller's core. CORVID_KERNEL_THREADS bounds the threads (default
// GOMAXPROCS). After a job, the workers keep looking for the next one for
// CORVID_KERNEL_LINGER (default 2ms; 0 parks them at once), yielding to
// other goroutines, unless the cores lately had other work.
package kernels
