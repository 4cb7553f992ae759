package kernels

import "fmt"

// DequantizeBiasReLU turns the int32 result of GemmU8S8 into float32: for
// i < m and j < n,
//
//	v = float32(c[i*ldc+j]) * (aScale * bScales[j]) + bias[j]
//	out[i*n+j] = relu ? max(v, 0) : v
//
// with each float32 operation rounded separately (no fused multiply-add), so
// every tier gives the same bits. bScales holds one scale per column, or a
// single per-tensor scale; bias may be nil (no bias) or hold n values. out is
// m x n, row stride n. ReLU keeps NaN and -0 as they are. It returns an
// error wrapping ErrShape if a slice is too short for the shape.
func DequantizeBiasReLU(c []int32, m, n int, ldc int, aScale float32, bScales []float32, bias []float32, relu bool, out []float32) error {
	if err := checkDequant("DequantizeBiasReLU", c, m, n, ldc, bScales, bias, out); err != nil || m == 0 || n == 0 {
		return err
	}
	s := scratchPool.Get().(*scratch)
	defer scratchPool.Put(s)
	scales, rowScale, bias := s.epilogueParams(aScale, bScales, bias, n)
	for i := range m {
		dequantizeRow(active, out[i*n:][:n], c[i*ldc:][:n], scales, rowScale, 0, nil, bias[:n], relu)
	}
	return nil
}

// DequantizeRowsBiasReLU is DequantizeBiasReLU for rows quantized each
// with its own scale and zero point, multiplied by GemmU8S8 with 0 as A's
// zero point (a GEMM takes one): for i < m and j < n,
//
//	v = float32(c[i*ldc+j] - aZeros[i]*ColSums()[j]) * (aScales[i] * bScales[j]) + bias[j]
//	out[i*n+j] = relu ? max(v, 0) : v
//
// the int32 operations wrapping as GemmU8S8's sums do, so that the first
// term is exactly what GemmU8S8 with aZeros[i] as zero point gives, and
// the float ones as DequantizeBiasReLU does them. pb is the GEMM's B (n
// columns). aZeros nil means zero points of 0. It returns an error wrapping
// ErrShape if a slice is too short for the shape.
func DequantizeRowsBiasReLU(c []int32, m, n, ldc int, aScales []float32, aZeros []uint8, pb *PackedB, bScales, bias []float32, relu bool, out []float32) error {
	switch {
	case pb == nil:
		return fmt.Errorf("%w: DequantizeRowsBiasReLU: nil PackedB", ErrShape)
	case pb.n != n:
		return fmt.Errorf("%w: DequantizeRowsBiasReLU n=%d: want B's %d columns", ErrShape, n, pb.n)
	case m < 0:
		return fmt.Errorf("%w: DequantizeRowsBiasReLU m=%d: want >= 0", ErrShape, m)
	case len(aScales) < m || (aZeros != nil && len(aZeros) < m):
		return fmt.Errorf("%w: DequantizeRowsBiasReLU len(aScales)=%d, len(aZeros)=%d: want >= m=%d (aZeros may be nil)", ErrShape, len(aScales), len(aZeros), m)
	}
	if err := checkDequant("DequantizeRowsBiasReLU", c, m, n, ldc, bScales, bias, out); err != nil || m == 0 || n == 0 {
		return err
	}
	s := scratchPool.Get().(*scratch)
	defer scratchPool.Put(s)
	scales, _, bias := s.epilogueParams(1, bScales, bias, n) // the columns' part, once
	for i := range m {
		rowScale := aScales[i]
		if len(bScales) == 1 {
			rowScale *= bScales[0] // as epilogueParams does: scales are ones
		}
		var z int32
		if aZeros != nil {
			z = int32(aZeros[i])
		}
		dequantizeRow(active, out[i*n:][:n], c[i*ldc:][:n], scales, rowScale, z, pb.colSum[:n], bias[:n], relu)
	}
	return nil
}

// checkDequant checks the arguments of DequantizeBiasReLU (name) and its
// kin.
func checkDequant(name string, c []int32, m, n, ldc int, bScales, bias, out []float32) error {
	switch {
	case m < 0 || n < 0:
		return fmt.Errorf("%w: %s m=%d n=%d: want both >= 0", ErrShape, name, m, n)
	case ldc < n:
		return fmt.Errorf("%w: %s ldc=%d: want >= n=%d", ErrShape, name, ldc, n)
	case m == 0 || n == 0:
		return nil
	case len(c) < (m-1)*ldc+n:
		return fmt.Errorf("%w: %s len(c)=%d: want >= (m-1)*ldc+n = %d", ErrShape, name, len(c), (m-1)*ldc+n)
	case len(bScales) != n && len(bScales) != 1:
		return fmt.Errorf("%w: %s len(bScales)=%d: want n=%d or 1", ErrShape, name, len(bScales), n)
	case bias != nil && len(bias) < n:
		return fmt.Errorf("%w: %s len(bias)=%d: want >= n=%d or nil", ErrShape, name, len(bias), n)
	case len(out) < m*n:
		return fmt.Errorf("%w: %s len(out)=%d: want >= m*n = %d", ErrShape, name, len(out), m*n)
	}
	return nil
}

// dequantizeRowGeneric is the reference for one row of DequantizeBiasReLU:
// out[j] = float32(c[j] - z*cs[j])*(rowScale*scales[j]) + bias[j], then
// max(·, 0) if relu, the int32 operations wrapping (cs is not read when z
// is 0), each float operation rounded to float32.
func dequantizeRowGeneric(out []float32, c []int32, scales []float32, rowScale float32, z int32, cs []int32, bias []float32, relu bool) {
	for j, v := range c {
		if z != 0 {
			v -= z * cs[j]
		}
		x := float32(float32(v)*float32(rowScale*scales[j])) + bias[j]
		if relu && x < 0 {
			x = 0
		}
		out[j] = x
	}
}

// epilogueBytes bounds the int32 rows GemmU8S8Dequant computes before
// dequantizing them, so that they are still in L2 when read back.
const epilogueBytes = 1 << 20

// GemmU8S8Dequant is GemmU8S8 followed by DequantizeBiasReLU, fused so that
// the int32 products stay in cache: for i < m and j < N,
//
//	v = float32(C[i][j]) * (aScale * bScales[j]) + bias[j]
//	out[i*ldo+j] = relu ? max(v, 0) : v
//
// with C[i][j] = Σ_k (A[i][k] - aZero) * B[k][j] as GemmU8S8 computes it and
// the float operations as DequantizeBiasReLU does them: the same bits as
// calling the two, without an m x N int32 buffer. bScales holds N per-column
// scales or one per-tensor scale; bias may be nil. It returns an error
// wrapping ErrShape, and writes nothing, if a slice or stride does not fit.
// Split over cores, each core dequantizes the parts of C it computed.
func GemmU8S8Dequant(m int, a []uint8, lda int, aZero uint8, aScale float32, pb *PackedB, bScales, bias []float32, relu bool, out []float32, ldo int) error {
	if err := checkGemmDequant("GemmU8S8Dequant", m, a, lda, pb, bScales, bias, out, ldo); err != nil || m == 0 || pb.n == 0 {
		return err
	}
	s := scratchPool.Get().(*scratch)
	defer scratchPool.Put(s)
	scales, rowScale, bias := s.epilogueParams(aScale, bScales, bias, pb.n)
	s.epiArgs = epilogue{t: active, out: out, ldo: ldo, scales: scales, rowScale: rowScale, bias: bias[:pb.n], relu: relu}
	s.gemmDequant(m, a, lda, aZero, pb, &s.epiArgs)
	return nil
}

// GemmU8S8DequantRows is GemmU8S8 with aZero as A's zero point followed by
// DequantizeRowsBiasReLU with aScales and aZeros (nil: none), fused as
// GemmU8S8Dequant fuses its two: the same bits as the two calls, without
// an m x N int32 buffer, and split over cores the same way. It is for rows
// quantized each with its own scale and zero point: aZero is theirs if
// they share it (aZeros nil), else 0 with aZeros the rows' own. It returns
// an error wrapping ErrShape, and writes nothing, if a slice or stride does
// not fit.
func GemmU8S8DequantRows(m int, a []uint8, lda int, aZero uint8, aScales []float32, aZeros []uint8, pb *PackedB, bScales, bias []float32, relu bool, out []float32, ldo int) error {
	if err := checkGemmDequant("GemmU8S8DequantRows", m, a, lda, pb, bScales, bias, out, ldo); err != nil {
		return err
	}
	if len(aScales) < m || (aZeros != nil && len(aZeros) < m) {
		return fmt.Errorf("%w: GemmU8S8DequantRows len(aScales)=%d, len(aZeros)=%d: want >= m=%d (aZeros may be nil)", ErrShape, len(aScales), len(aZeros), m)
	}
	if m == 0 || pb.n == 0 {
		return nil
	}
	s := scratchPool.Get().(*scratch)
	defer scratchPool.Put(s)
	// As DequantizeRowsBiasReLU: the row scale is aScales[i], times
	// bScales[0] if per tensor (rowScale here, 1 otherwise: x*1 is x).
	scales, rowScale, bias := s.epilogueParams(1, bScales, bias, pb.n)
	s.epiArgs = epilogue{t: active, out: out, ldo: ldo, scales: scales, rowScale: rowScale, rowScales: aScales,
		zeros: aZeros, colSum: pb.colSum, bias: bias[:pb.n], relu: relu}
	s.gemmDequant(m, a, lda, aZero, pb, &s.epiArgs)
	return nil
}

// checkGemmDequant checks the arguments GemmU8S8Dequant (name) and
// GemmU8S8DequantRows share.
func checkGemmDequant(name string, m int, a []uint8, lda int, pb *PackedB, bScales, bias, out []float32, ldo int) error {
	if pb == nil {
		return fmt.Errorf("%w: %s: nil PackedB", ErrShape, name)
	}
	n, k := pb.n, pb.k
	switch {
	case m < 0:
		return fmt.Errorf("%w: %s m=%d: want >= 0", ErrShape, name, m)
	case lda < k:
		return fmt.Errorf("%w: %s lda=%d: want >= k=%d", ErrShape, name, lda, k)
	case ldo < n:
		return fmt.Errorf("%w: %s ldo=%d: want >= n=%d", ErrShape, name, ldo, n)
	case len(bScales) != n && len(bScales) != 1:
		return fmt.Errorf("%w: %s len(bScales)=%d: want n=%d or 1", ErrShape, name, len(bScales), n)
	case bias != nil && len(bias) < n:
		return fmt.Errorf("%w: %s len(bias)=%d: want >= n=%d or nil", ErrShape, name, len(bias), n)
	case m == 0 || n == 0:
		return nil
	case len(a) < (m-1)*lda+k:
		return fmt.Errorf("%w: %s len(a)=%d: want >= (m-1)*lda+k = %d", ErrShape, name, len(a), (m-1)*lda+k)
	case len(out) < (m-1)*ldo+n:
		return fmt.Errorf("%w: %s len(out)=%d: want >= (m-1)*ldo+n = %d", ErrShape, name, len(out), (m-1)*ldo+n)
	}
	return nil
}

// gemmDequant runs the GEMM of m rows of A over pb in blocks of rows whose
// int32 results fit in epilogueBytes (in s), e applied to each block's parts
// as they are done. e's out, rowScales and zeros are for all m rows; it
// moves them along block by block, and clears e when done, so that the
// pooled scratch keeps none of the caller's data.
func (s *scratch) gemmDequant(m int, a []uint8, lda int, aZero uint8, pb *PackedB, e *epilogue) {
	n := pb.n
	rows := min(m, max(epilogueMinRows, epilogueBytes/(4*n)))
	s.epi = grow(s.epi, rows*n)
	c := s.epi
	out, rowScales, zeros := e.out, e.rowScales, e.zeros
	for i0 := 0; i0 < m; i0 += rows {
		r := min(rows, m-i0)
		e.out = out[i0*e.ldo:]
		if rowScales != nil {
			e.rowScales = rowScales[i0:]
		}
		if zeros != nil {
			e.zeros = zeros[i0:]
		}
		switch {
		case pb.k == 0:
			clear(c[:r*n])
			e.apply(c, n, 0, r, 0, n)
		case Parallelism() <= 1:
			// No split to apply it in: after the GEMM, outside the
			// AMX tier's timed call (adaptTiles), as GemmU8S8Dequant
			// always did before.
			gemmU8S8Par(e.t, r, a[i0*lda:], lda, aZero, pb, c, n, nil)
			e.apply(c, n, 0, r, 0, n)
		default:
			gemmU8S8Par(e.t, r, a[i0*lda:], lda, aZero, pb, c, n, e)
		}
	}
	*e = epilogue{}
}

// epilogue is the dequantization GemmU8S8Dequant and GemmU8S8DequantRows
// apply to C: for row i and column j of the GEMM,
//
//	out[i*ldo+j] = dequantizeRow's value of c[i][j], with the row scale
//	rowScale (times rowScales[i] if set), the row's zero point zeros[i]
//	(if set) taken off with colSum, and scales[j], bias[j], relu.
//
// A split GEMM's participants apply it to the rows and columns of C they
// have just computed, while those are in their cache. Against the GEMM
// followed by the epilogue on the caller alone (which also reads back the
// half of C the other core wrote), on two cores: 8 x 768^2 ran 1.03x as
// fast (avx2) and 1.09-1.10x (avx512vnni); 32 x 3072 x 768 1.15-1.17x,
// 1.27x, and 1.47-1.51x on the tiles; the GEMV of 1 x 3072 x 768 the same
// (BenchmarkGemmU8S8Dequant, two runs).
type epilogue struct {
	t         Tier
	out       []float32
	ldo       int
	scales    []float32 // per column
	rowScale  float32
	rowScales []float32 // per row, or nil
	zeros     []uint8   // per row, or nil
	colSum    []int32
	bias      []float32 // per column
	relu      bool
}

// apply dequantizes rows [r0, r1) and columns [c0, c1) of c (row stride
// ldc) into e.out. Each element's value depends on that element alone, so
// that the parts give, together, the bits of one call over all of C.
func (e *epilogue) apply(c []int32, ldc, r0, r1, c0, c1 int) {
	for i := r0; i < r1; i++ {
		rs := e.rowScale
		if e.rowScales != nil {
			rs = e.rowScales[i] * e.rowScale
		}
		var z int32
		var cs []int32
		if e.zeros != nil && e.zeros[i] != 0 {
			z, cs = int32(e.zeros[i]), e.colSum[c0:c1]
		}
		dequantizeRow(e.t, e.out[i*e.ldo+c0:][:c1-c0], c[i*ldc+c0:][:c1-c0], e.scales[c0:c1], rs, z, cs, e.bias[c0:c1], e.relu)
	}
}

// epilogueMinRows is the smallest row chunk GemmU8S8Dequant uses: enough for
// the GEMM's micro-kernels to run full blocks.
const epilogueMinRows = 48

// epilogueParams returns the per-column scales and the row scale whose
// product is aScale*bScales[j] (bScales of len n, or 1 for all columns):
// bScales itself and aScale, or ones and aScale*bScales[0], since 1*x is x
// exactly; and bias, or zeros (in s) for a nil bias. Building
// aScale*bScales[j] for each call instead cost the 768-3072-768 MLP's int8
// forward at batch 32, which quantizes each row with its own scale, about
// 0.15 ms of 1 ms.
func (s *scratch) epilogueParams(aScale float32, bScales, bias []float32, n int) (scales []float32, rowScale float32, b []float32) {
	scales, rowScale = bScales, aScale
	if len(bScales) == 1 {
		if len(s.ones) < n {
			s.ones = make([]float32, n)
			for j := range s.ones {
				s.ones[j] = 1
			}
		}
		scales, rowScale = s.ones, aScale*bScales[0]
	}
	if bias == nil {
		s.bias32 = grow(s.bias32, n)
		clear(s.bias32)
		bias = s.bias32
	}
	return scales[:n], rowScale, bias
}
