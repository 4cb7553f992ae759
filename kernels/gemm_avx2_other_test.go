//go:build !amd64 || purego

package kernels

// avx2Paths: without the assembly the AVX2 tier has no variants.
func avx2Paths() []avx2Path { return nil }
