package kernels

// sgemmGeneric is the reference for Sgemm. For each i < m and j < n it sets
//
//	C[i*ldc+j] = alpha*s + beta*C[i*ldc+j]   (just alpha*s when beta == 0)
//
// where s = Σ_{p<k} op(A)[i][p]·op(B)[p][j] is summed in float32 in order of
// increasing p, op(A)[i][p] is A[i*lda+p] (A[p*lda+i] if transA) and
// op(B)[p][j] is B[p*ldb+j] (B[j*ldb+p] if transB). Arguments are checked.
// The SIMD tiers sum in another order (split over accumulators, blocked in
// k) and round differently; they are tested within K·eps of a float64 sum.
func sgemmGeneric(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float32
			for p := 0; p < k; p++ {
				var av, bv float32
				if transA {
					av = a[p*lda+i]
				} else {
					av = a[i*lda+p]
				}
				if transB {
					bv = b[j*ldb+p]
				} else {
					bv = b[p*ldb+j]
				}
				s += av * bv
			}
			ci := i*ldc + j
			if beta == 0 {
				c[ci] = alpha * s
			} else {
				c[ci] = alpha*s + beta*c[ci]
			}
		}
	}
}
