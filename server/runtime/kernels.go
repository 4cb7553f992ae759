package runtime

import (
	"fmt"
	"math"

	gt "gorgonia.org/tensor"

	"github.com/corvidml/corvid/kernels"
)

// axisLayout views a tensor as [outer, n, inner] around one axis (or, for
// Softmax before opset 13, around a coerced 2-D split with inner = 1):
// element (o, i, j) is at o*n*inner + i*inner + j.
type axisLayout struct {
	outer, n, inner int
}

func layoutAround(shape []int, axis int) axisLayout {
	l := axisLayout{outer: 1, n: shape[axis], inner: 1}
	for _, d := range shape[:axis] {
		l.outer *= d
	}
	for _, d := range shape[axis+1:] {
		l.inner *= d
	}
	return l
}

// softmaxKernel normalises exp(x - max) along the layout's middle
// dimension, or takes its logarithm (LogSoftmax) when log.
type softmaxKernel struct {
	axisLayout
	log  bool
	desc string
}

func (k *softmaxKernel) String() string { return k.desc }

func (k *softmaxKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	switch out.Dtype() {
	case gt.Float32:
		if !k.log && k.inner == 1 {
			softmaxRows32(k.axisLayout, out.Float32s(), ins[0].Float32s())
			break
		}
		softmaxRun(k, out.Float32s(), ins[0].Float32s())
	case gt.Float64:
		softmaxRun(k, out.Float64s(), ins[0].Float64s())
	default:
		return fmt.Errorf("dtype %v not supported", out.Dtype())
	}
	return nil
}

func softmaxRun[T float32 | float64](k *softmaxKernel, out, x []T) {
	switch {
	case k.log:
		logSoftmax(k.axisLayout, out, x)
	default:
		softmax(k.axisLayout, out, x, expFor[T]())
	}
}

// expFor is the exponential softmax takes for T: math.Exp for float64,
// exp32 for float32, whose results are rounded to float32 anyway.
func expFor[T float32 | float64]() func(float64) float64 {
	var t T
	if _, ok := any(t).(float32); ok {
		return exp32
	}
	return math.Exp
}

// exp32 returns e^x accurate to a small fraction of float32's precision:
// e^x = 2^n e^r, n = round(x/ln2), |r| <= ln2/2 (r reduced with ln2 split
// in two parts, fdlibm's ln2_hi and ln2_lo, so that n*ln2hi is exact), e^r
// by its Taylor series to degree 8 (relative error under 2e-10; float32
// resolves 6e-8), 2^n written into the exponent. Below math.Exp's
// underflow bound it is 0, as math.Exp is; elsewhere outside [-700, 700],
// and for NaN, it is math.Exp. On the 768-3072-768 MLP's output (32 x 768)
// softmax took 0.83 ms with math.Exp, about half of the whole int8 forward.
func exp32(x float64) float64 {
	const underflow = -7.45133219101941108420e+02 // math.Exp(x) is 0 below
	if !(x >= -700 && x <= 700) {
		if x < underflow {
			return 0
		}
		return math.Exp(x)
	}
	const (
		log2e = 1.44269504088896338700e+00
		ln2hi = 6.93147180369123816490e-01
		ln2lo = 1.90821492927058770002e-10
	)
	n := math.RoundToEven(x * log2e)
	r := x - n*ln2hi - n*ln2lo
	p := 1 + r*(1+r*(1.0/2+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720+r*(1.0/5040+r*(1.0/40320))))))))
	return p * math.Float64frombits(uint64(int64(n)+1023)<<52)
}

// softmax accumulates in float64 whatever T is: float32 sums of exps lose
// digits on long axes. exp is math.Exp or, for float32, exp32.
func softmax[T float32 | float64](l axisLayout, out, x []T, exp func(float64) float64) {
	for o := 0; o < l.outer; o++ {
		for j := 0; j < l.inner; j++ {
			base := o*l.n*l.inner + j
			// The largest value, or NaN if there is one (math.Max would
			// prefer +Inf to NaN; either way every output is NaN).
			m := math.Inf(-1)
			for i := 0; i < l.n; i++ {
				if v := float64(x[base+i*l.inner]); v > m || v != v {
					m = v
				}
			}
			var sum float64
			for i := 0; i < l.n; i++ {
				p := base + i*l.inner
				e := exp(float64(x[p]) - m)
				out[p] = T(e)
				sum += e
			}
			for i := 0; i < l.n; i++ {
				p := base + i*l.inner
				out[p] = T(float64(out[p]) / sum)
			}
		}
	}
}

// softmaxRows32 is softmax for float32 over contiguous rows (inner == 1):
// the exponentials and their sum from kernels.ExpSum (eight at a time, the
// same bits as exp32), or, where it does not run (a row holding NaN or
// +Inf, a CPU without AVX-512), softmax's own loop. On the 768-3072-768
// MLP's 32 x 768 output, softmax's scalar exp32 took 0.27 ms, about half
// of the int8 forward (BenchmarkSoftmax32 compares the two). The row's
// maximum and the division by the sum are vector loops too (kernels.MaxNaN
// and DivRound, the same bits): as scalar loops they took 142-154 us of
// the 32 x 768 rows, now 69-72 in all (three alternating runs).
func softmaxRows32(l axisLayout, out, x []float32) {
	for o := 0; o < l.outer; o++ {
		row, dst := x[o*l.n:][:l.n], out[o*l.n:][:l.n]
		m, nan := kernels.MaxNaN(row)
		var sum float64
		ok := !nan
		if ok {
			sum, ok = kernels.ExpSum(dst, row, float64(m))
		}
		if !ok {
			softmax(axisLayout{outer: 1, n: l.n, inner: 1}, dst, row, exp32)
			continue
		}
		kernels.DivRound(dst, sum)
	}
}

// copyKernel copies its input unchanged: Reshape and Flatten. It copies
// rather than returning a view because a view would alias a value another
// op may still read, or a weight shared between workers.
type copyKernel struct{ desc string }

func (k copyKernel) String() string { return k.desc }

func (k copyKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	return copyDense(out, ins[0])
}

func copyDense(dst, src *gt.Dense) error {
	switch dst.Dtype() {
	case gt.Float32:
		copy(dst.Float32s(), src.Float32s())
	case gt.Float64:
		copy(dst.Float64s(), src.Float64s())
	case gt.Int8:
		copy(dst.Int8s(), src.Int8s())
	case gt.Uint8:
		copy(dst.Uint8s(), src.Uint8s())
	case gt.Int32:
		copy(dst.Int32s(), src.Int32s())
	case gt.Int64:
		copy(dst.Int64s(), src.Int64s())
	case gt.Bool:
		copy(dst.Bools(), src.Bools())
	default:
		return fmt.Errorf("dtype %v not supported", dst.Dtype())
	}
	return nil
}

// transposeKernel transposes a matrix [r c] into [c r] (Gemm's transA and
// transB on values that are not constants).
type transposeKernel struct{ rows, cols int }

func (k *transposeKernel) String() string { return "Transpose" }

func (k *transposeKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	switch out.Dtype() {
	case gt.Float32:
		transpose(k.rows, k.cols, out.Float32s(), ins[0].Float32s())
	case gt.Float64:
		transpose(k.rows, k.cols, out.Float64s(), ins[0].Float64s())
	case gt.Int32:
		transpose(k.rows, k.cols, out.Int32s(), ins[0].Int32s())
	case gt.Int64:
		transpose(k.rows, k.cols, out.Int64s(), ins[0].Int64s())
	default:
		return fmt.Errorf("dtype %v not supported", out.Dtype())
	}
	return nil
}

func transpose[T number](rows, cols int, out, x []T) {
	for i := 0; i < rows; i++ {
		for j := 0; j < cols; j++ {
			out[j*rows+i] = x[i*cols+j]
		}
	}
}

// matmulKernel is numpy's matmul for the cases Gorgonia's own Mul does not
// cover: integer types, 1-D operands, and stacks of matrices with
// broadcast batch dimensions. aOff and bOff hold each output matrix's
// operand offsets, computed once at build.
type matmulKernel struct {
	m, k, n    int
	aOff, bOff []int
}

func (k *matmulKernel) String() string { return fmt.Sprintf("MatMul(%dx%dx%d)", k.m, k.k, k.n) }

func (k *matmulKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	switch out.Dtype() {
	case gt.Float32:
		matmul(k, out.Float32s(), ins[0].Float32s(), ins[1].Float32s())
	case gt.Float64:
		matmul(k, out.Float64s(), ins[0].Float64s(), ins[1].Float64s())
	case gt.Int32:
		matmul(k, out.Int32s(), ins[0].Int32s(), ins[1].Int32s())
	case gt.Int64:
		matmul(k, out.Int64s(), ins[0].Int64s(), ins[1].Int64s())
	default:
		return fmt.Errorf("dtype %v not supported", out.Dtype())
	}
	return nil
}

func matmul[T number](k *matmulKernel, out, a, b []T) {
	mn := k.m * k.n
	for bi := range k.aOff {
		o := out[bi*mn : (bi+1)*mn]
		clear(o)
		am, bm := a[k.aOff[bi]:], b[k.bOff[bi]:]
		// i-k-j order: the inner loop runs along rows of b and o.
		for i := 0; i < k.m; i++ {
			row := o[i*k.n : (i+1)*k.n]
			for p := 0; p < k.k; p++ {
				v := am[i*k.k+p]
				brow := bm[p*k.n : (p+1)*k.n]
				for j := range row {
					row[j] += v * brow[j]
				}
			}
		}
	}
}

// gatherLastKernel is ai.onnx.ml ArrayFeatureExtractor: out[r, j] =
// x[r, y[j]] over the last axis of x, for every index in y (flattened).
type gatherLastKernel struct {
	rows, stride, count int
}

func (k *gatherLastKernel) String() string { return "ArrayFeatureExtractor" }

func (k *gatherLastKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	idx := ins[1].Int64s()
	for _, i := range idx[:k.count] {
		if i < 0 || i >= int64(k.stride) {
			return fmt.Errorf("index %d is out of range [0, %d)", i, k.stride)
		}
	}
	switch out.Dtype() {
	case gt.Float32:
		gatherLast(k, out.Float32s(), ins[0].Float32s(), idx)
	case gt.Float64:
		gatherLast(k, out.Float64s(), ins[0].Float64s(), idx)
	case gt.Int32:
		gatherLast(k, out.Int32s(), ins[0].Int32s(), idx)
	case gt.Int64:
		gatherLast(k, out.Int64s(), ins[0].Int64s(), idx)
	default:
		return fmt.Errorf("dtype %v not supported", out.Dtype())
	}
	return nil
}

func gatherLast[T number](k *gatherLastKernel, out, x []T, idx []int64) {
	for r := 0; r < k.rows; r++ {
		row, o := x[r*k.stride:(r+1)*k.stride], out[r*k.count:(r+1)*k.count]
		for j := range o {
			o[j] = row[idx[j]]
		}
	}
}

// castKernel converts between any two of Corvid's dtypes with C's
// conversion rules, as ONNX Runtime does: floats truncate toward zero into
// integers, and anything non-zero is true.
type castKernel struct{ desc string }

func (k castKernel) String() string { return k.desc }

func (k castKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	in := ins[0]
	switch in.Dtype() {
	case gt.Float32:
		return castFrom(out, in.Float32s())
	case gt.Float64:
		return castFrom(out, in.Float64s())
	case gt.Int8:
		return castFrom(out, in.Int8s())
	case gt.Uint8:
		return castFrom(out, in.Uint8s())
	case gt.Int32:
		return castFrom(out, in.Int32s())
	case gt.Int64:
		return castFrom(out, in.Int64s())
	case gt.Bool:
		return castFrom(out, boolsAsBytes(in.Bools()))
	}
	return fmt.Errorf("dtype %v not supported", in.Dtype())
}

// boolsAsBytes lets bools go through the numeric conversions as 0 and 1.
// It allocates; casts from bool are rare in the models Corvid serves.
func boolsAsBytes(b []bool) []uint8 {
	out := make([]uint8, len(b))
	for i, v := range b {
		if v {
			out[i] = 1
		}
	}
	return out
}

func castFrom[S number](out *gt.Dense, src []S) error {
	switch out.Dtype() {
	case gt.Float32:
		convert(out.Float32s(), src)
	case gt.Float64:
		convert(out.Float64s(), src)
	case gt.Int8:
		convert(out.Int8s(), src)
	case gt.Uint8:
		convert(out.Uint8s(), src)
	case gt.Int32:
		convert(out.Int32s(), src)
	case gt.Int64:
		convert(out.Int64s(), src)
	case gt.Bool:
		o := out.Bools()
		for i, v := range src[:len(o)] {
			o[i] = v != 0
		}
	default:
		return fmt.Errorf("dtype %v not supported", out.Dtype())
	}
	return nil
}

func convert[D, S number](dst []D, src []S) {
	src = src[:len(dst)]
	for i, v := range src {
		dst[i] = D(v)
	}
}
