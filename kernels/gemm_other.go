//go:build !amd64 || purego

package kernels

func gemmU8S8(_ Tier, m int, a []uint8, lda int, aZero uint8, pb *PackedB, c []int32, ldc int) {
	gemmGeneric(m, a, lda, aZero, pb, c, ldc)
}

// avx2PathVNNI is false where the AVX2 kernels are not built.
func avx2PathVNNI() bool { return false }
