package runtime

import (
	"fmt"
	"math"
	"slices"

	gt "gorgonia.org/tensor"

	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/tensor"
)

// Pooling: MaxPool (with its optional Indices), AveragePool and the two
// global pools. The window geometry is Conv's (ops_conv.go); padding never
// contributes a value, and counts toward an average only with
// count_include_pad.

func init() {
	registerBuilders(onnx.DomainDefault, map[string]buildFunc{
		"MaxPool":           buildMaxPool,
		"AveragePool":       buildAveragePool,
		"GlobalAveragePool": buildGlobalPool(false),
		"GlobalMaxPool":     buildGlobalPool(true),
	})
}

// poolTaps is, per spatial dimension and output position, which taps of
// the window land on real input: taps [lo, hi) read input start + tap *
// dilation. counted is how many taps count toward an average with
// count_include_pad: those inside the input or its explicit padding, not
// in the extra room ceil_mode adds past the end padding.
type poolTaps struct {
	start, lo, hi, counted [maxSpatial][]int
}

func newPoolTaps(w *window) *poolTaps {
	t := &poolTaps{}
	for d := range maxSpatial {
		n := w.out[d]
		t.start[d], t.lo[d], t.hi[d], t.counted[d] = make([]int, n), make([]int, n), make([]int, n), make([]int, n)
		for o := range n {
			start := o*w.stride[d] - w.padBegin[d]
			t.start[d][o] = start
			t.lo[d][o], t.hi[d][o] = tapRange(w.kernel[d], w.dilation[d], start, w.in[d])
			// In padded coordinates the window starts at start+padBegin
			// >= 0; the padded input ends at in+padBegin+padEnd.
			lo, hi := tapRange(w.kernel[d], w.dilation[d], start+w.padBegin[d], w.in[d]+w.padBegin[d]+w.padEnd[d])
			t.counted[d][o] = hi - lo
		}
	}
	return t
}

// poolOperands checks X and reads the window for MaxPool and AveragePool.
func (b *builder) poolOperands(n *onnx.Node, x *value, dtypes []tensor.DType) (*window, error) {
	if err := b.checkDType(x, "input X", dtypes); err != nil {
		return nil, err
	}
	nsp, err := b.spatialRank(x, "input X")
	if err != nil {
		return nil, err
	}
	if !n.Has("kernel_shape") {
		return nil, b.errInvalid("attribute kernel_shape is required")
	}
	kernel, err := b.spatialInts(n, "kernel_shape", nsp, 1, 1, x.shape)
	if err != nil {
		return nil, err
	}
	a, err := b.readWindowAttrs(n, nsp, x.shape)
	if err != nil {
		return nil, err
	}
	ceil := n.Int("ceil_mode", 0)
	if ceil != 0 && ceil != 1 {
		return nil, b.errInvalid("ceil_mode is %d, want 0 or 1", ceil)
	}
	if a.pads != nil {
		// As ONNX Runtime: a pad as wide as the kernel would make windows
		// of padding alone.
		for i, p := range a.pads {
			if k := kernel[i%nsp]; p >= k {
				return nil, b.errInvalid("pads[%d] is %d, want less than the kernel's %d along that axis", i, p, k)
			}
		}
	}
	return b.forwardWindow(a, x.shape[2:], kernel, ceil == 1)
}

func poolShape(x []int, w *window) []int {
	nsp := len(x) - 2
	return append([]int{x[0], x[1]}, w.out[maxSpatial-nsp:]...)
}

func buildMaxPool(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	x := in[0]
	w, err := b.poolOperands(n, x, []tensor.DType{tensor.Float32, tensor.Float64, tensor.Int8, tensor.Uint8})
	if err != nil {
		return nil, err
	}
	order := n.Int("storage_order", 0)
	if order != 0 && order != 1 {
		return nil, b.errInvalid("storage_order is %d, want 0 (row major) or 1 (column major)", order)
	}
	k := &maxPoolKernel{w: *w, taps: newPoolTaps(w), planes: x.shape[0] * x.shape[1], colMajor: order == 1}
	out := poolShape(x.shape, w)
	y, err := b.apply(k, x.dt, out, x)
	if err != nil {
		return nil, err
	}
	if len(n.Outputs) < 2 {
		return []*value{y}, nil
	}
	if n.Outputs[1] == "" {
		return []*value{y, y}, nil // an omitted output is never read
	}
	// Indices is a second kernel: each op has one output, and a model
	// asking for indices (to unpool) is rare enough to pay the second
	// pass.
	ik := *k
	ik.indices = true
	idx, err := b.apply(&ik, tensor.Int64, out, x)
	if err != nil {
		return nil, err
	}
	return []*value{y, idx}, nil
}

// maxPoolKernel writes the largest real input element of each window, or
// (indices) its position in X flattened: row-major, or with colMajor
// column-major within each [N C] plane, as ONNX Runtime numbers them.
type maxPoolKernel struct {
	w        window
	taps     *poolTaps
	planes   int // N*C
	colMajor bool
	indices  bool
}

func (k *maxPoolKernel) String() string {
	s := fmt.Sprintf("MaxPool(%v)", &k.w)
	if k.indices {
		s += fmt.Sprintf(".Indices(colMajor=%v)", k.colMajor)
	}
	return s
}

func (k *maxPoolKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	var idx []int64
	if k.indices {
		idx = out.Int64s()
	}
	x := ins[0]
	switch x.Dtype() {
	case gt.Float32:
		maxPool(k, x.Float32s(), poolOutData[float32](out, k.indices), idx)
	case gt.Float64:
		maxPool(k, x.Float64s(), poolOutData[float64](out, k.indices), idx)
	case gt.Int8:
		maxPool(k, x.Int8s(), poolOutData[int8](out, k.indices), idx)
	case gt.Uint8:
		maxPool(k, x.Uint8s(), poolOutData[uint8](out, k.indices), idx)
	default:
		return fmt.Errorf("dtype %v not supported", x.Dtype())
	}
	return nil
}

// poolOutData is out's data as T, or nil when out holds indices instead.
func poolOutData[T number](out *gt.Dense, indices bool) []T {
	if indices {
		return nil
	}
	return out.Data().([]T)
}

// maxPool fills y (values) or idx (positions), whichever is not nil.
func maxPool[T number](k *maxPoolKernel, x, y []T, idx []int64) {
	w, t := &k.w, k.taps
	inPlane, outPlane := w.inSize(), w.outSize()
	// Strides of X's spatial dimensions in the numbering of Indices.
	st := [maxSpatial]int{w.in[1] * w.in[2], w.in[2], 1}
	if k.colMajor {
		st = [maxSpatial]int{1, w.in[0], w.in[0] * w.in[1]}
	}
	for p := range k.planes {
		xp := x[p*inPlane : (p+1)*inPlane]
		o := p * outPlane
		for o0 := range w.out[0] {
			for o1 := range w.out[1] {
				for o2 := range w.out[2] {
					best, at := lowestOf[T](), -1
					for t0 := t.lo[0][o0]; t0 < t.hi[0][o0]; t0++ {
						i0 := t.start[0][o0] + t0*w.dilation[0]
						for t1 := t.lo[1][o1]; t1 < t.hi[1][o1]; t1++ {
							i1 := t.start[1][o1] + t1*w.dilation[1]
							row := (i0*w.in[1] + i1) * w.in[2]
							for t2 := t.lo[2][o2]; t2 < t.hi[2][o2]; t2++ {
								i2 := t.start[2][o2] + t2*w.dilation[2]
								if v := xp[row+i2]; at < 0 || v > best {
									best, at = v, i0*st[0]+i1*st[1]+i2*st[2]
								}
							}
						}
					}
					if y != nil {
						y[o] = best
					} else if at >= 0 {
						idx[o] = int64(p*inPlane + at)
					} else {
						idx[o] = -1 // a window of padding alone (only with dilations)
					}
					o++
				}
			}
		}
	}
}

// lowestOf is T's smallest value: the max of a window with no real input,
// as in ONNX Runtime.
func lowestOf[T number]() T {
	var v any
	switch any(T(0)).(type) {
	case float32:
		v = float32(-math.MaxFloat32)
	case float64:
		v = -math.MaxFloat64
	case int8:
		v = int8(math.MinInt8)
	case int32:
		v = int32(math.MinInt32)
	case int64:
		v = int64(math.MinInt64)
	default:
		return 0 // uint8
	}
	return v.(T)
}

func buildAveragePool(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	x := in[0]
	w, err := b.poolOperands(n, x, floats)
	if err != nil {
		return nil, err
	}
	inc := n.Int("count_include_pad", 0)
	if inc != 0 && inc != 1 {
		return nil, b.errInvalid("count_include_pad is %d, want 0 or 1", inc)
	}
	k := &avgPoolKernel{w: *w, taps: newPoolTaps(w), planes: x.shape[0] * x.shape[1], includePad: inc == 1}
	return one(b.apply(k, x.dt, poolShape(x.shape, w), x))
}

// avgPoolKernel averages each window's real input elements, dividing by
// their count or, with includePad, by the count of taps inside the input
// and its explicit padding (as ONNX Runtime and the ONNX reference do:
// the room ceil_mode adds past the padding is never counted).
type avgPoolKernel struct {
	w          window
	taps       *poolTaps
	planes     int
	includePad bool
}

func (k *avgPoolKernel) String() string {
	return fmt.Sprintf("AveragePool(%v, count_include_pad=%v)", &k.w, k.includePad)
}

func (k *avgPoolKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	switch out.Dtype() {
	case gt.Float32:
		avgPool(k, ins[0].Float32s(), out.Float32s())
	case gt.Float64:
		avgPool(k, ins[0].Float64s(), out.Float64s())
	default:
		return fmt.Errorf("dtype %v not supported", out.Dtype())
	}
	return nil
}

func avgPool[T float32 | float64](k *avgPoolKernel, x, y []T) {
	w, t := &k.w, k.taps
	inPlane, outPlane := w.inSize(), w.outSize()
	for p := range k.planes {
		xp := x[p*inPlane : (p+1)*inPlane]
		o := p * outPlane
		for o0 := range w.out[0] {
			for o1 := range w.out[1] {
				for o2 := range w.out[2] {
					var sum float64
					n0, n1, n2 := t.hi[0][o0]-t.lo[0][o0], t.hi[1][o1]-t.lo[1][o1], t.hi[2][o2]-t.lo[2][o2]
					for t0 := t.lo[0][o0]; t0 < t.hi[0][o0]; t0++ {
						i0 := t.start[0][o0] + t0*w.dilation[0]
						for t1 := t.lo[1][o1]; t1 < t.hi[1][o1]; t1++ {
							i1 := t.start[1][o1] + t1*w.dilation[1]
							row := xp[(i0*w.in[1]+i1)*w.in[2]:]
							for t2 := t.lo[2][o2]; t2 < t.hi[2][o2]; t2++ {
								sum += float64(row[t.start[2][o2]+t2*w.dilation[2]])
							}
						}
					}
					count := n0 * n1 * n2
					if k.includePad {
						count = t.counted[0][o0] * t.counted[1][o1] * t.counted[2][o2]
					}
					// count is 0 only for a window of padding alone,
					// which gives NaN as in ONNX Runtime.
					y[o] = T(sum / float64(count))
					o++
				}
			}
		}
	}
}

// buildGlobalPool reduces every spatial dimension to 1: the max or the
// mean of each [N C] plane.
func buildGlobalPool(isMax bool) buildFunc {
	return func(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
		x := in[0]
		if err := b.checkDType(x, "input X", floats); err != nil {
			return nil, err
		}
		if len(x.shape) < 2 {
			return nil, b.errInvalid("input X has shape %v, want [N C D1 ... Dk]", x.shape)
		}
		size := prod(x.shape[2:])
		if size == 0 {
			return nil, b.errInvalid("input X %v has no spatial elements to pool", x.shape)
		}
		out := slices.Clone(x.shape)
		for i := 2; i < len(out); i++ {
			out[i] = 1
		}
		k := &globalPoolKernel{planes: x.shape[0] * x.shape[1], size: size, isMax: isMax}
		return one(b.apply(k, x.dt, out, x))
	}
}

type globalPoolKernel struct {
	planes, size int
	isMax        bool
}

func (k *globalPoolKernel) String() string {
	if k.isMax {
		return "GlobalMaxPool"
	}
	return "GlobalAveragePool"
}

func (k *globalPoolKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	x := ins[0]
	switch x.Dtype() {
	case gt.Float32:
		globalPool(k, x.Float32s(), out.Float32s())
	case gt.Float64:
		globalPool(k, x.Float64s(), out.Float64s())
	default:
		return fmt.Errorf("dtype %v not supported", x.Dtype())
	}
	return nil
}

func globalPool[T float32 | float64](k *globalPoolKernel, x, y []T) {
	for p := range k.planes {
		plane := x[p*k.size : (p+1)*k.size]
		if k.isMax {
			y[p] = slices.Max(plane)
			continue
		}
		var sum float64
		for _, v := range plane {
			sum += float64(v)
		}
		y[p] = T(sum / float64(k.size))
	}
}
