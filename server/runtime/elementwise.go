package runtime

import (
	"fmt"

	gt "gorgonia.org/tensor"

	"github.com/corvidml/corvid/kernels"
)

// number is every element type Corvid computes arithmetic on.
type number interface {
	~float32 | ~float64 | ~int8 | ~uint8 | ~int32 | ~int64
}

// binOp is an elementwise arithmetic operator.
type binOp uint8

const (
	opAdd binOp = iota
	opSub
	opMul
	opDiv
)

func (op binOp) String() string { return [...]string{"Add", "Sub", "Mul", "Div"}[op] }

// broadcastShape returns the numpy-style broadcast of two shapes: aligned
// on the right, each pair of dimensions equal or one of them 1.
func broadcastShape(a, b []int) ([]int, bool) {
	r := max(len(a), len(b))
	out := make([]int, r)
	for i := range r {
		k := r - 1 - i
		da, db := dimFromRight(a, k), dimFromRight(b, k)
		switch {
		case da == db, db == 1:
			out[i] = da
		case da == 1:
			out[i] = db
		default:
			return nil, false
		}
	}
	return out, true
}

// dimFromRight returns the dimension k places from the right of shape, and
// 1 past its left end, as broadcasting pads.
func dimFromRight(shape []int, k int) int {
	if k >= len(shape) {
		return 1
	}
	return shape[len(shape)-1-k]
}

// bcast is a broadcast iteration plan: the output's dimensions, with runs
// merged where each operand either advances through all of them or is
// broadcast along all of them, and each operand's stride per merged
// dimension (0 where it is broadcast). A bias add [N 32] + [1 32] becomes
// dims [N 32], strides a [32 1], b [0 1]; equal shapes become one flat
// dimension, so the inner loop is as long as it can be.
type bcast struct {
	dims, aStr, bStr []int
}

func newBcast(out, a, b []int) bcast {
	var dims []int
	var broadA, broadB []bool
	for i, d := range out {
		if d == 1 {
			continue // a size-1 dimension never moves an index
		}
		k := len(out) - 1 - i
		ba, bb := dimFromRight(a, k) == 1, dimFromRight(b, k) == 1
		if n := len(dims); n > 0 && broadA[n-1] == ba && broadB[n-1] == bb {
			dims[n-1] *= d
			continue
		}
		dims = append(dims, d)
		broadA = append(broadA, ba)
		broadB = append(broadB, bb)
	}
	if len(dims) == 0 { // a single element
		return bcast{dims: []int{1}, aStr: []int{0}, bStr: []int{0}}
	}
	p := bcast{dims: dims, aStr: make([]int, len(dims)), bStr: make([]int, len(dims))}
	sa, sb := 1, 1
	for i := len(dims) - 1; i >= 0; i-- {
		if !broadA[i] {
			p.aStr[i] = sa
			sa *= dims[i]
		}
		if !broadB[i] {
			p.bStr[i] = sb
			sb *= dims[i]
		}
	}
	return p
}

// binaryKernel is Add, Sub, Mul or Div with broadcasting.
type binaryKernel struct {
	op binOp
	p  bcast
}

func (k *binaryKernel) String() string { return k.op.String() }

func (k *binaryKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	a, b := ins[0], ins[1]
	switch out.Dtype() {
	case gt.Float32:
		binaryRun(k.op, &k.p, out.Float32s(), a.Float32s(), b.Float32s())
	case gt.Float64:
		binaryRun(k.op, &k.p, out.Float64s(), a.Float64s(), b.Float64s())
	case gt.Int32:
		binaryRun(k.op, &k.p, out.Int32s(), a.Int32s(), b.Int32s())
	case gt.Int64:
		binaryRun(k.op, &k.p, out.Int64s(), a.Int64s(), b.Int64s())
	default:
		return fmt.Errorf("%v: dtype %v not supported", k.op, out.Dtype())
	}
	return nil
}

// binaryRun walks the plan's outer dimensions with an odometer and hands
// each run of the innermost one to a tight loop.
func binaryRun[T number](op binOp, p *bcast, out, a, b []T) {
	last := len(p.dims) - 1
	n, sa, sb := p.dims[last], p.aStr[last], p.bStr[last]
	var idxBuf [8]int // the odometer, on the stack for up to 9 dimensions
	var idx []int
	if last <= len(idxBuf) {
		idx = idxBuf[:last]
	} else {
		idx = make([]int, last)
	}
	offA, offB := 0, 0
	for o := 0; o < len(out); o += n {
		binaryRow(op, out[o:o+n], a[offA:], b[offB:], sa, sb)
		// Advance the odometer over the outer dimensions.
		for d := last - 1; d >= 0; d-- {
			idx[d]++
			offA += p.aStr[d]
			offB += p.bStr[d]
			if idx[d] < p.dims[d] {
				break
			}
			offA -= p.aStr[d] * p.dims[d]
			offB -= p.bStr[d] * p.dims[d]
			idx[d] = 0
		}
	}
}

// binaryRow computes one innermost run; sa and sb are 1 (the operand
// advances) or 0 (it is broadcast).
func binaryRow[T number](op binOp, out, a, b []T, sa, sb int) {
	switch {
	case sa == 1 && sb == 1:
		a, b = a[:len(out)], b[:len(out)]
		switch op {
		case opAdd:
			for i := range out {
				out[i] = a[i] + b[i]
			}
		case opSub:
			for i := range out {
				out[i] = a[i] - b[i]
			}
		case opMul:
			for i := range out {
				out[i] = a[i] * b[i]
			}
		case opDiv:
			for i := range out {
				out[i] = a[i] / b[i]
			}
		}
	case sa == 1:
		a, s := a[:len(out)], b[0]
		switch op {
		case opAdd:
			for i := range out {
				out[i] = a[i] + s
			}
		case opSub:
			for i := range out {
				out[i] = a[i] - s
			}
		case opMul:
			for i := range out {
				out[i] = a[i] * s
			}
		case opDiv:
			for i := range out {
				out[i] = a[i] / s
			}
		}
	case sb == 1:
		s, b := a[0], b[:len(out)]
		switch op {
		case opAdd:
			for i := range out {
				out[i] = s + b[i]
			}
		case opSub:
			for i := range out {
				out[i] = s - b[i]
			}
		case opMul:
			for i := range out {
				out[i] = s * b[i]
			}
		case opDiv:
			for i := range out {
				out[i] = s / b[i]
			}
		}
	default:
		var v T
		switch op {
		case opAdd:
			v = a[0] + b[0]
		case opSub:
			v = a[0] - b[0]
		case opMul:
			v = a[0] * b[0]
		case opDiv:
			v = a[0] / b[0]
		}
		for i := range out {
			out[i] = v
		}
	}
}

// reluKernel is max(x, 0) in one pass (Gorgonia's Rectify is two ops).
type reluKernel struct{}

func (reluKernel) String() string { return "Relu" }

func (reluKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	switch out.Dtype() {
	case gt.Float32:
		y := out.Float32s()
		kernels.ReLU(y, ins[0].Float32s()[:len(y)])
	case gt.Float64:
		relu(out.Float64s(), ins[0].Float64s())
	case gt.Int8:
		relu(out.Int8s(), ins[0].Int8s())
	case gt.Int32:
		relu(out.Int32s(), ins[0].Int32s())
	case gt.Int64:
		relu(out.Int64s(), ins[0].Int64s())
	default:
		return fmt.Errorf("dtype %v not supported", out.Dtype())
	}
	return nil
}

func relu[T number](out, x []T) {
	x = x[:len(out)]
	for i, v := range x {
		// v > 0 rather than max(v, 0): NaN stays NaN, as in ONNX Runtime.
		// -0 becomes +0 here; float32 runs kernels.ReLU instead, which
		// keeps -0 as ONNX Runtime does.
		if v > 0 || v != v {
			out[i] = v
		} else {
			out[i] = 0
		}
	}
}
