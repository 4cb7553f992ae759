package runtime

import (
	"fmt"
	"math"
	"slices"

	gt "gorgonia.org/tensor"

	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/tensor"
)

// The indexing operators: Slice, Gather, GatherElements and Pad. Like the
// shape operators (ops_shape.go) they only move elements, so their kernels
// copy words of the elements' width and serve every dtype.
func init() {
	registerBuilders(onnx.DomainDefault, map[string]buildFunc{
		"Slice":          buildSlice,
		"Gather":         buildGather,
		"GatherElements": buildGatherElements,
		"Pad":            buildPad,
	})
}

// ---- Slice -------------------------------------------------------------------------

// buildSlice reads starts, ends and axes from attributes before opset 10,
// and starts, ends, axes and steps from inputs 1 to 4 from then on.
func buildSlice(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	x := in[0]
	var starts, ends, axes, steps []int64
	var err error
	if b.opset < 10 {
		if len(in) > 1 {
			return nil, b.errInvalid("has %d inputs; before opset 10 starts, ends and axes are attributes and Slice has one input (the model imports opset %d)", len(in), b.opset)
		}
		if !n.Has("starts") || !n.Has("ends") {
			return nil, b.errInvalid("attributes \"starts\" and \"ends\" are required before opset 10")
		}
		starts, ends, axes = n.Ints("starts", nil), n.Ints("ends", nil), n.Ints("axes", nil)
	} else {
		for _, attr := range []string{"starts", "ends", "axes"} {
			if n.Has(attr) {
				return nil, b.errInvalid("attribute %q was replaced by an input in opset 10 (the model imports opset %d)", attr, b.opset)
			}
		}
		if optional(in, 1) == nil || optional(in, 2) == nil {
			return nil, b.errInvalid("inputs 1 (starts) and 2 (ends) are required from opset 10")
		}
		if starts, err = b.constInts(in, 1, "starts"); err != nil {
			return nil, err
		}
		if ends, err = b.constInts(in, 2, "ends"); err != nil {
			return nil, err
		}
		if optional(in, 3) != nil {
			if axes, err = b.constInts(in, 3, "axes"); err != nil {
				return nil, err
			}
		}
		if optional(in, 4) != nil {
			if steps, err = b.constInts(in, 4, "steps"); err != nil {
				return nil, err
			}
		}
	}
	if len(ends) != len(starts) {
		return nil, b.errInvalid("starts %v and ends %v differ in length", starts, ends)
	}
	if axes == nil {
		if len(starts) > len(x.shape) {
			return nil, b.errInvalid("starts %v has more entries than the input's rank %d", starts, len(x.shape))
		}
		axes = make([]int64, len(starts))
		for i := range axes {
			axes[i] = int64(i)
		}
	}
	if steps == nil {
		steps = slices.Repeat([]int64{1}, len(starts))
	}
	if len(axes) != len(starts) || len(steps) != len(starts) {
		return nil, b.errInvalid("starts %v, ends %v, axes %v and steps %v differ in length", starts, ends, axes, steps)
	}
	ax, err := b.normAxes(axes, len(x.shape))
	if err != nil {
		return nil, err
	}

	in0 := stridesOf(x.shape)
	v := stridedView{dims: slices.Clone(x.shape), strides: slices.Clone(in0)}
	for i, a := range ax {
		if steps[i] == 0 {
			return nil, b.errInvalid("steps %v has a 0", steps)
		}
		start, count := sliceRange(starts[i], ends[i], steps[i], int64(x.shape[a]))
		v.dims[a] = int(count)
		v.base += int(start) * in0[a]
		if count > 1 {
			v.strides[a] = int(steps[i]) * in0[a] // |step| < the axis size here: no overflow
		}
	}
	if slices.Equal(v.dims, x.shape) && v.base == 0 && slices.Equal(v.strides, in0) {
		return []*value{x}, nil // the whole input
	}
	desc := fmt.Sprintf("Slice(starts=%v, ends=%v, axes=%v, steps=%v)", starts, ends, ax, steps)
	return one(b.applyView(x, v.dims, v, desc))
}

// sliceRange resolves one axis of a Slice as ONNX does: negative starts and
// ends count from the end, then both are clamped to [0, dim] for a positive
// step and to [0, dim-1] (start) and [-1, dim-1] (end) for a negative one.
// It returns the first index taken and how many are. Steps may be as
// large as int64 allows: the counts are worked out so as not to overflow.
func sliceRange(start, end, step, dim int64) (first, count int64) {
	if start < 0 {
		start += dim
	}
	if end < 0 {
		end += dim
	}
	if step > 0 {
		start, end = min(max(start, 0), dim), min(max(end, 0), dim)
		if end > start {
			count = (end-start-1)/step + 1
		}
	} else {
		start, end = min(max(start, 0), dim-1), min(max(end, -1), dim-1)
		if start > end {
			count = (start-end-1)/-max(step, -math.MaxInt64) + 1
		}
	}
	return start, count
}

// ---- Gather ------------------------------------------------------------------------

// buildGather takes, for every index, the slice of data at that index
// along axis: out has shape data[:axis] + indices + data[axis+1:].
func buildGather(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	data, idx := in[0], in[1]
	if err := b.checkDType(idx, "input indices", []tensor.DType{tensor.Int32, tensor.Int64}); err != nil {
		return nil, err
	}
	if len(data.shape) == 0 {
		return nil, b.errInvalid("input data is a scalar, want rank >= 1")
	}
	axis, err := b.normAxis(n.Int("axis", 0), len(data.shape), false)
	if err != nil {
		return nil, err
	}
	l := layoutAround(data.shape, axis)
	k := &gatherKernel{axisLayout: l, count: prod(idx.shape), desc: fmt.Sprintf("Gather(axis=%d)", axis)}
	if err := b.checkConstIndices(idx, l.n); err != nil {
		return nil, err
	}
	k.idx = make([]int, k.count)
	out := slices.Concat(data.shape[:axis], idx.shape, data.shape[axis+1:])
	return one(b.apply(k, data.dt, out, data, idx))
}

// checkConstIndices refuses, at load, constant indices that the kernel
// would refuse on every run.
func (b *builder) checkConstIndices(idx *value, n int) error {
	if idx.konst == nil {
		return nil
	}
	if err := readIndices(make([]int, prod(idx.shape)), denseOf(idx.konst), n); err != nil {
		return b.errInvalid("input indices: %v", err)
	}
	return nil
}

// readIndices copies int32 or int64 indices into dst, adding n to the
// negative ones, and refuses any outside [-n, n): data-dependent indices
// are checked on every run, before any element moves.
func readIndices(dst []int, src *gt.Dense, n int) error {
	switch src.Dtype() {
	case gt.Int64:
		return normIndices(dst, src.Int64s(), n)
	case gt.Int32:
		return normIndices(dst, src.Int32s(), n)
	}
	return fmt.Errorf("indices have dtype %v, want int32 or int64", src.Dtype())
}

func normIndices[T int32 | int64](dst []int, src []T, n int) error {
	for i, x := range src[:len(dst)] {
		j := int64(x)
		if j < 0 {
			j += int64(n)
		}
		if j < 0 || j >= int64(n) {
			return fmt.Errorf("index %d is out of range [%d, %d)", x, -n, n)
		}
		dst[i] = int(j)
	}
	return nil
}

// gatherKernel views data as [outer, n, inner] around the axis and copies,
// for each outer row and each index, the inner block at that index.
type gatherKernel struct {
	axisLayout
	count int
	idx   []int // the checked indices of the current run
	desc  string
}

func (k *gatherKernel) String() string { return k.desc }

func (k *gatherKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	if err := readIndices(k.idx, ins[1], k.n); err != nil {
		return err
	}
	return byWidth(out.Dtype(),
		func() { gatherRows(k, wordsOf[uint8](out), wordsOf[uint8](ins[0])) },
		func() { gatherRows(k, wordsOf[uint32](out), wordsOf[uint32](ins[0])) },
		func() { gatherRows(k, wordsOf[uint64](out), wordsOf[uint64](ins[0])) })
}

func gatherRows[W moveWord](k *gatherKernel, out, data []W) {
	in := k.inner
	for o := range k.outer {
		src := data[o*k.n*in : (o+1)*k.n*in]
		dst := out[o*k.count*in : (o+1)*k.count*in]
		for j, i := range k.idx {
			copy(dst[j*in:(j+1)*in], src[i*in:(i+1)*in])
		}
	}
}

// ---- GatherElements ----------------------------------------------------------

// buildGatherElements picks one element of data per index: the output has
// the indices' shape, and out[i_0..i_r-1] = data[i_0..idx..i_r-1] with
// idx = indices[i_0..i_r-1] in place of the axis.
func buildGatherElements(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	data, idx := in[0], in[1]
	if err := b.checkDType(idx, "input indices", []tensor.DType{tensor.Int32, tensor.Int64}); err != nil {
		return nil, err
	}
	if len(data.shape) == 0 {
		return nil, b.errInvalid("input data is a scalar, want rank >= 1")
	}
	if len(idx.shape) != len(data.shape) {
		return nil, b.errInvalid("indices have rank %d (shape %v), want the data's rank %d (shape %v)", len(idx.shape), idx.shape, len(data.shape), data.shape)
	}
	axis, err := b.normAxis(n.Int("axis", 0), len(data.shape), false)
	if err != nil {
		return nil, err
	}
	for d := range idx.shape {
		if d != axis && idx.shape[d] > data.shape[d] {
			return nil, b.errInvalid("indices of shape %v do not fit data of shape %v along axis %d", idx.shape, data.shape, d)
		}
	}
	if err := b.checkConstIndices(idx, data.shape[axis]); err != nil {
		return nil, err
	}
	strides := stridesOf(data.shape)
	k := &gatherElementsKernel{
		dims:     slices.Clone(idx.shape),
		strides:  slices.Clone(strides),
		axisStep: strides[axis],
		n:        data.shape[axis],
		idx:      make([]int, prod(idx.shape)),
		pos:      make([]int, len(idx.shape)),
		desc:     fmt.Sprintf("GatherElements(axis=%d)", axis),
	}
	k.strides[axis] = 0 // the index, not the position, moves along the axis
	return one(b.apply(k, data.dt, idx.shape, data, idx))
}

// gatherElementsKernel walks the indices' shape with an odometer over the
// data's strides, the axis's stride replaced by the index read there.
type gatherElementsKernel struct {
	dims     []int // the indices' (and output's) shape
	strides  []int // the data's strides, 0 along the axis
	axisStep int   // the data's stride along the axis
	n        int   // the data's size along the axis
	idx      []int // the checked indices of the current run
	pos      []int // the odometer
	desc     string
}

func (k *gatherElementsKernel) String() string { return k.desc }

func (k *gatherElementsKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	if err := readIndices(k.idx, ins[1], k.n); err != nil {
		return err
	}
	return byWidth(out.Dtype(),
		func() { gatherElems(k, wordsOf[uint8](out), wordsOf[uint8](ins[0])) },
		func() { gatherElems(k, wordsOf[uint32](out), wordsOf[uint32](ins[0])) },
		func() { gatherElems(k, wordsOf[uint64](out), wordsOf[uint64](ins[0])) })
}

func gatherElems[W moveWord](k *gatherElementsKernel, out, data []W) {
	pos := k.pos
	clear(pos)
	off := 0 // the data offset of pos, without the axis
	for i := range out {
		out[i] = data[off+k.idx[i]*k.axisStep]
		for d := len(pos) - 1; d >= 0; d-- {
			pos[d]++
			off += k.strides[d]
			if pos[d] < k.dims[d] {
				break
			}
			off -= k.strides[d] * k.dims[d]
			pos[d] = 0
		}
	}
}

// ---- Pad ---------------------------------------------------------------------------

// The Pad modes: numpy.pad's, which ONNX follows.
const (
	padConstant = "constant"
	padReflect  = "reflect"
	padEdge     = "edge"
	padWrap     = "wrap" // from opset 19
)

// buildPad reads pads and the constant from attributes before opset 11,
// from inputs 1 and 2 from then on, and takes axes (input 3) from opset
// 18. Negative pads remove elements; ONNX Runtime removes them before it
// pads, so a reflection or an edge is of what is left.
func buildPad(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	x := in[0]
	mode := n.String("mode", padConstant)
	switch mode {
	case padConstant, padReflect, padEdge:
	case padWrap:
		if b.opset < 19 {
			return nil, b.errInvalid("mode %q is defined from opset 19; the model imports opset %d", mode, b.opset)
		}
	default:
		return nil, b.errInvalid("mode %q is not one of constant, reflect, edge, wrap", mode)
	}

	var pads, axes []int64
	var fill *value // the constant, a scalar of x's dtype
	var err error
	if b.opset < 11 {
		if len(in) > 1 {
			return nil, b.errInvalid("has %d inputs; before opset 11 pads and value are attributes and Pad has one input (the model imports opset %d)", len(in), b.opset)
		}
		if !n.Has("pads") {
			return nil, b.errInvalid("attribute \"pads\" is required before opset 11")
		}
		pads = n.Ints("pads", nil)
		if fill, err = b.scalarOf(x.dt, float64(n.Float("value", 0))); err != nil {
			return nil, err
		}
	} else {
		for _, attr := range []string{"pads", "value"} {
			if n.Has(attr) {
				return nil, b.errInvalid("attribute %q was replaced by an input in opset 11 (the model imports opset %d)", attr, b.opset)
			}
		}
		if optional(in, 1) == nil {
			return nil, b.errInvalid("input 1 (pads) is required from opset 11")
		}
		if pads, err = b.constInts(in, 1, "pads"); err != nil {
			return nil, err
		}
		if fill = optional(in, 2); fill != nil {
			if fill.dt != x.dt || prod(fill.shape) != 1 {
				return nil, b.errInvalid("input %q (constant_value) is %v%v, want a %v scalar", n.Inputs[2], fill.dt, fill.shape, x.dt)
			}
		} else if fill, err = b.scalarOf(x.dt, 0); err != nil {
			return nil, err
		}
		if optional(in, 3) != nil {
			if b.opset < 18 {
				return nil, b.errInvalid("input 3 (axes) is defined from opset 18; the model imports opset %d", b.opset)
			}
			if axes, err = b.constInts(in, 3, "axes"); err != nil {
				return nil, err
			}
		}
	}

	r := len(x.shape)
	ax := make([]int, r)
	for i := range ax {
		ax[i] = i
	}
	if axes != nil {
		if ax, err = b.normAxes(axes, r); err != nil {
			return nil, err
		}
	}
	if len(pads) != 2*len(ax) {
		return nil, b.errInvalid("pads %v has %d entries, want 2 per axis: %d", pads, len(pads), 2*len(ax))
	}
	before, after := make([]int64, r), make([]int64, r)
	for i, a := range ax {
		before[a], after[a] = pads[i], pads[len(ax)+i]
	}
	k, out, err := padPlan(x.shape, before, after, mode)
	if err != nil {
		return nil, b.errInvalid("%v", err)
	}
	if slices.Equal(out, x.shape) && !slices.ContainsFunc(before, func(p int64) bool { return p != 0 }) {
		return []*value{x}, nil // all pads are 0
	}
	k.desc = fmt.Sprintf("Pad(mode=%s, before=%v, after=%v)", mode, before, after)
	return one(b.apply(k, x.dt, out, x, fill))
}

// scalarOf makes a constant scalar of dtype dt from a float attribute.
func (b *builder) scalarOf(dt tensor.DType, f float64) (*value, error) {
	t := &tensor.Tensor{DType: dt, Shape: []int64{}}
	switch dt {
	case tensor.Float32:
		t.Data = []float32{float32(f)}
	case tensor.Float64:
		t.Data = []float64{f}
	// Integers go through int64: Go leaves a float converted straight to
	// a narrower integer it does not fit undefined.
	case tensor.Int8:
		t.Data = []int8{int8(int64(f))}
	case tensor.Uint8:
		t.Data = []uint8{uint8(int64(f))}
	case tensor.Int32:
		t.Data = []int32{int32(int64(f))}
	case tensor.Int64:
		t.Data = []int64{int64(f)}
	case tensor.Bool:
		t.Data = []bool{f != 0}
	default:
		return nil, b.errUnsupported("dtype %v", dt)
	}
	return constValue(t), nil
}

// padPlan works out the output shape and, for every output axis, which
// element of the input each position reads.
func padPlan(shape []int, before, after []int64, mode string) (*padKernel, []int, error) {
	r := len(shape)
	k := &padKernel{offs: make([][]int, r), pos: make([]int, max(r-1, 0))}
	out := make([]int64, r)
	strides := stridesOf(shape)
	for d, n := range shape {
		m := int64(n) + before[d] + after[d]
		if m < 0 || max(before[d], after[d]) > math.MaxInt32 || min(before[d], after[d]) < -math.MaxInt32 {
			return nil, nil, fmt.Errorf("pads %d and %d on axis %d of size %d: output size %d", before[d], after[d], d, n, m)
		}
		out[d] = m
	}
	if _, err := tensor.NumElements(out); err != nil {
		return nil, nil, fmt.Errorf("padded shape %v: %w", out, err)
	}
	for d, n := range shape {
		// The part of the axis that negative pads leave, [lo, lo+kept).
		lo := int(max(-before[d], 0))
		kept := n - lo - int(max(-after[d], 0))
		if kept <= 0 && mode != padConstant && (before[d] > 0 || after[d] > 0) {
			return nil, nil, fmt.Errorf("mode %s cannot pad axis %d: it has no elements left to repeat", mode, d)
		}
		lead := int(max(before[d], 0))
		offs := make([]int, out[d])
		for o := range offs {
			i := o - lead // the position in the kept part
			if i < 0 || i >= kept {
				i = padSource(i, kept, mode)
			}
			if i < 0 {
				offs[o] = -1
			} else {
				offs[o] = (lo + i) * strides[d]
			}
		}
		k.offs[d] = offs
	}
	return k, intShape(out), nil
}

// padSource maps a position i outside [0, n) to the position it copies,
// or -1 for the constant.
func padSource(i, n int, mode string) int {
	switch mode {
	case padEdge:
		return min(max(i, 0), n-1)
	case padWrap:
		return ((i % n) + n) % n
	case padReflect:
		if n == 1 {
			return 0
		}
		// Mirror images without the edge repeat with period 2(n-1).
		p := 2 * (n - 1)
		j := ((i % p) + p) % p
		if j >= n {
			j = p - j
		}
		return j
	}
	return -1
}

// padKernel reads, at each output position, the input element its axes'
// tables name, or the constant (input 1) where any table says -1.
type padKernel struct {
	offs [][]int // per output axis: the input offset each position reads, or -1
	pos  []int   // the odometer over all axes but the last
	desc string
}

func (k *padKernel) String() string { return k.desc }

func (k *padKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	return byWidth(out.Dtype(),
		func() { padCopy(k, wordsOf[uint8](out), wordsOf[uint8](ins[0]), wordsOf[uint8](ins[1])[0]) },
		func() { padCopy(k, wordsOf[uint32](out), wordsOf[uint32](ins[0]), wordsOf[uint32](ins[1])[0]) },
		func() { padCopy(k, wordsOf[uint64](out), wordsOf[uint64](ins[0]), wordsOf[uint64](ins[1])[0]) })
}

func padCopy[W moveWord](k *padKernel, out, src []W, fill W) {
	if len(k.offs) == 0 { // a scalar: nothing to pad
		copy(out, src)
		return
	}
	last := k.offs[len(k.offs)-1]
	n := len(last)
	pos := k.pos
	clear(pos)
	for o := 0; o < len(out); o += n {
		row := out[o : o+n]
		base, inside := 0, true
		for d, i := range pos {
			off := k.offs[d][i]
			inside = inside && off >= 0
			base += off
		}
		for j, off := range last {
			if inside && off >= 0 {
				row[j] = src[base+off]
			} else {
				row[j] = fill
			}
		}
		for d := len(pos) - 1; d >= 0; d-- {
			if pos[d]++; pos[d] < len(k.offs[d]) {
				break
			}
			pos[d] = 0
		}
	}
}
