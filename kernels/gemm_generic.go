package kernels

// gemmGeneric is the reference for every tier. For i < m and j < N it sets
//
//	C[i*ldc+j] = -int32(aZero)*colSum(B)[j] + Σ_{k<K} int32(A[i*lda+k]) * int32(B[k][j])
//
// in int32 arithmetic that wraps modulo 2^32, which equals
// Σ_k (int32(A[i*lda+k]) - int32(aZero)) * int32(B[k][j]) (mod 2^32) and is
// that sum exactly when K <= 65535. B is read from pb's packed layout.
// Nothing outside the m x N block of C is written.
func gemmGeneric(m int, a []uint8, lda int, aZero uint8, pb *PackedB, c []int32, ldc int) {
	k, n, kp := pb.k, pb.n, pb.kp
	z := int32(aZero)
	for j0 := 0; j0 < n; j0 += panelN {
		panel := pb.data[(j0/panelN)*kp*panelN:][:kp*panelN]
		for i := range m {
			arow := a[i*lda:][:k]
			crow := c[i*ldc+j0:][:min(panelN, n-j0)]
			for jj := range crow {
				acc := -z * pb.colSum[j0+jj]
				for kk, av := range arow {
					acc += int32(av) * int32(panel[(kk/4)*panelN*4+jj*4+kk%4])
				}
				crow[jj] = acc
			}
		}
	}
}
