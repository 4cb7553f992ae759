package runtime

import (
	"fmt"
	"math"
	"slices"
	"unsafe"

	gt "gorgonia.org/tensor"

	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/tensor"
)

// The shape operators: those that rearrange, join, split, repeat or make
// tensors whose shapes they compute (Slice, Gather, GatherElements and Pad
// are in ops_index.go).
//
// Graphs are compiled with static shapes, so every input that decides an
// output's shape (Reshape's shape, Unsqueeze's axes, Tile's repeats...)
// must be known when the graph is built: an initializer, a Constant, or a
// value folded from them and from shapes. Shape and Size of any value are
// constants here, which is what lets the Shape -> Gather -> Concat ->
// Reshape chains of PyTorch exports fold away. An input that is only known
// at run time is refused with ErrUnsupported (see constInts).
func init() {
	registerBuilders(onnx.DomainDefault, map[string]buildFunc{
		"Transpose":       buildTranspose,
		"Squeeze":         buildSqueeze,
		"Unsqueeze":       buildUnsqueeze,
		"Concat":          buildConcat,
		"Split":           buildSplit,
		"Shape":           buildShape,
		"Size":            buildSize,
		"Expand":          buildExpand,
		"Tile":            buildTile,
		"ConstantOfShape": buildConstantOfShape,
		"Range":           buildRange,
	})
}

// constInts returns input i as integers. It is an input that decides the
// shape of the node's output, so it must be a constant: a value computed
// at run time would give each run its own output shape, and graphs are
// compiled with static shapes. what names the input for messages.
func (b *builder) constInts(in []*value, i int, what string) ([]int64, error) {
	v := in[i]
	if v.konst == nil {
		return nil, b.errNotConstant(i, what, "shape")
	}
	if len(v.shape) > 1 {
		return nil, b.errInvalid("input %q (%s) must be 1-D, got shape %v", b.node.Inputs[i], what, v.shape)
	}
	switch d := v.konst.Data.(type) {
	case []int64:
		return slices.Clone(d), nil
	case []int32:
		out := make([]int64, len(d))
		for j, x := range d {
			out[j] = int64(x)
		}
		return out, nil
	}
	return nil, b.errInvalid("input %q (%s) must be int32 or int64, got %v", b.node.Inputs[i], what, v.dt)
}

// errNotConstant refuses input i, which is computed at run time but
// decides the output's shape (or length).
func (b *builder) errNotConstant(i int, what, decides string) error {
	return b.errNeedsConstant(i, "input %q (%s) must be a constant (an initializer, a Constant, or computed from them and from shapes): it decides the output's %s, which must be known when the graph is compiled", b.node.Inputs[i], what, decides)
}

// attrOrInput reads a list that an operator took as an attribute before
// opset `since` and as input i from then on (Unsqueeze's axes, Split's
// split...). It refuses the form the node's opset does not define, so a
// model is read as its opset says. ok is false when the node gives
// neither.
func (b *builder) attrOrInput(n *onnx.Node, in []*value, attr string, i int, since int64) (vals []int64, ok bool, err error) {
	given := optional(in, i) != nil
	if b.opset < since {
		if given {
			return nil, false, b.errInvalid("input %d (%s) is defined from opset %d; in opset %d %s is an attribute", i, attr, since, b.opset, attr)
		}
		if !n.Has(attr) {
			return nil, false, nil
		}
		return n.Ints(attr, nil), true, nil
	}
	if n.Has(attr) {
		return nil, false, b.errInvalid("attribute %q was replaced by input %d in opset %d (the model imports opset %d)", attr, i, since, b.opset)
	}
	if !given {
		return nil, false, nil
	}
	vals, err = b.constInts(in, i, attr)
	return vals, err == nil, err
}

// normAxes maps axes into [0, rank), refusing repeated ones.
func (b *builder) normAxes(axes []int64, rank int) ([]int, error) {
	out := make([]int, len(axes))
	for i, a := range axes {
		ax, err := b.normAxis(a, rank, false)
		if err != nil {
			return nil, err
		}
		if slices.Contains(out[:i], ax) {
			return nil, b.errInvalid("axes %v name axis %d twice", axes, ax)
		}
		out[i] = ax
	}
	return out, nil
}

// attrFromOpset refuses an attribute the node's opset does not define yet.
func (b *builder) attrFromOpset(n *onnx.Node, attr string, since int64) error {
	if n.Has(attr) && b.opset < since {
		return b.errInvalid("attribute %q is defined from opset %d; the model imports opset %d", attr, since, b.opset)
	}
	return nil
}

// stridesOf returns the row-major element strides of shape.
func stridesOf(shape []int) []int {
	s := make([]int, len(shape))
	acc := 1
	for i := len(shape) - 1; i >= 0; i-- {
		s[i] = acc
		acc *= shape[i]
	}
	return s
}

// ---- moving elements ---------------------------------------------------------

// moveWord is an unsigned integer as wide as an element. The kernels of this
// file and ops_index.go only move elements, never reading their values, so
// they copy them as words of the elements' width: one instantiation per
// width (1, 4 or 8 bytes) serves every dtype, bool included.
type moveWord interface{ uint8 | uint32 | uint64 }

// wordsOf returns d's elements as words. W must be as wide as d's dtype:
// kernels pick W from the dtype they were built for (see byWidth), so a
// mismatch is a bug, and panics (customOp.Do recovers it).
func wordsOf[W moveWord](d *gt.Dense) []W {
	switch d.Dtype() {
	case gt.Float32:
		return asWords[W](d.Float32s())
	case gt.Float64:
		return asWords[W](d.Float64s())
	case gt.Int8:
		return asWords[W](d.Int8s())
	case gt.Uint8:
		return asWords[W](d.Uint8s())
	case gt.Int32:
		return asWords[W](d.Int32s())
	case gt.Int64:
		return asWords[W](d.Int64s())
	case gt.Bool:
		return asWords[W](d.Bools())
	}
	panic(fmt.Sprintf("runtime: dtype %v has no word type", d.Dtype()))
}

func asWords[W moveWord, T any](s []T) []W {
	var w W
	var t T
	if unsafe.Sizeof(w) != unsafe.Sizeof(t) {
		panic(fmt.Sprintf("runtime: %T elements read as %T words", t, w))
	}
	return unsafe.Slice((*W)(unsafe.Pointer(unsafe.SliceData(s))), len(s))
}

// byWidth runs the instantiation of a move for dt's element width.
func byWidth(dt gt.Dtype, w1, w4, w8 func()) error {
	switch dt.Size() {
	case 1:
		w1()
	case 4:
		w4()
	case 8:
		w8()
	default:
		return fmt.Errorf("dtype %v not supported", dt)
	}
	return nil
}

// stridedView is a strided read of a tensor: output element i, at index
// (i_0 ... i_r-1) over dims in row-major order, reads source element
// base + Σ i_d*strides[d]. A stride is 0 along an axis the output repeats
// (Expand, Tile) and negative along one it reverses (Slice with a negative
// step). Transpose, Slice, Expand, Tile and Split are all views.
type stridedView struct {
	dims, strides []int
	base          int
}

// compact drops size-1 axes and merges each axis into the one before it
// when together they step through the source as one axis (the outer
// stride is the inner stride times the inner size), so that the innermost
// loop is as long as possible: a Slice of whole rows becomes one copy.
func (v stridedView) compact() stridedView {
	out := stridedView{base: v.base}
	for d, n := range v.dims {
		if n == 1 {
			continue
		}
		if k := len(out.dims) - 1; k >= 0 && out.strides[k] == v.strides[d]*n {
			out.dims[k] *= n
			out.strides[k] = v.strides[d]
			continue
		}
		out.dims = append(out.dims, n)
		out.strides = append(out.strides, v.strides[d])
	}
	if len(out.dims) == 0 { // one element
		out.dims, out.strides = []int{1}, []int{0}
	}
	return out
}

// stridedKernel copies a strided view of its input.
type stridedKernel struct {
	v    stridedView
	desc string
}

func (k *stridedKernel) String() string { return k.desc }

func (k *stridedKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	return byWidth(out.Dtype(),
		func() { stridedCopy(&k.v, wordsOf[uint8](out), wordsOf[uint8](ins[0])) },
		func() { stridedCopy(&k.v, wordsOf[uint32](out), wordsOf[uint32](ins[0])) },
		func() { stridedCopy(&k.v, wordsOf[uint64](out), wordsOf[uint64](ins[0])) })
}

// stridedCopy walks the view's outer axes with an odometer and copies each
// run of the innermost axis in the tightest loop its stride allows.
func stridedCopy[W moveWord](v *stridedView, out, src []W) {
	last := len(v.dims) - 1
	n, s := v.dims[last], v.strides[last]
	var idxBuf [8]int // the odometer, on the stack for up to 9 axes
	var idx []int
	if last <= len(idxBuf) {
		idx = idxBuf[:last]
	} else {
		idx = make([]int, last)
	}
	off := v.base
	for o := 0; o < len(out); o += n {
		row := out[o : o+n]
		switch s {
		case 1:
			copy(row, src[off:off+n])
		case 0:
			x := src[off]
			for j := range row {
				row[j] = x
			}
		default:
			for j := range row {
				row[j] = src[off+j*s]
			}
		}
		for d := last - 1; d >= 0; d-- {
			idx[d]++
			off += v.strides[d]
			if idx[d] < v.dims[d] {
				break
			}
			off -= v.strides[d] * v.dims[d]
			idx[d] = 0
		}
	}
}

// applyView adds a strided copy of x as a value of shape out, or folds it
// when x is a constant.
func (b *builder) applyView(x *value, out []int, v stridedView, desc string) (*value, error) {
	return b.apply(&stridedKernel{v: v.compact(), desc: desc}, x.dt, out, x)
}

// ---- Transpose, Squeeze, Unsqueeze -------------------------------------------

func buildTranspose(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	x := in[0]
	r := len(x.shape)
	perm := make([]int, r)
	if n.Has("perm") {
		p := n.Ints("perm", nil)
		if len(p) != r {
			return nil, b.errInvalid("perm %v has %d entries, want the input's rank %d", p, len(p), r)
		}
		seen := make([]bool, r)
		for i, a := range p {
			if a < 0 || a >= int64(r) || seen[a] {
				return nil, b.errInvalid("perm %v is not a permutation of 0..%d", p, r-1)
			}
			seen[a] = true
			perm[i] = int(a)
		}
	} else {
		for i := range perm {
			perm[i] = r - 1 - i // the default reverses the axes
		}
	}
	shape, strides := make([]int, r), make([]int, r)
	in0 := stridesOf(x.shape)
	for i, a := range perm {
		shape[i], strides[i] = x.shape[a], in0[a]
	}
	if slices.IsSorted(perm) {
		return []*value{x}, nil // the identity permutation
	}
	return one(b.applyView(x, shape, stridedView{dims: shape, strides: strides}, fmt.Sprintf("Transpose(perm=%v)", perm)))
}

// buildSqueeze removes the given axes, which must have size 1, or every
// size-1 axis when none are given. The data does not change, but the
// result is still a copy of its own (see copyKernel).
func buildSqueeze(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	x := in[0]
	axes, given, err := b.attrOrInput(n, in, "axes", 1, 13)
	if err != nil {
		return nil, err
	}
	drop := make([]bool, len(x.shape))
	if given {
		ax, err := b.normAxes(axes, len(x.shape))
		if err != nil {
			return nil, err
		}
		for _, a := range ax {
			if x.shape[a] != 1 {
				return nil, b.errInvalid("cannot squeeze axis %d of shape %v: its size is %d, want 1", a, x.shape, x.shape[a])
			}
			drop[a] = true
		}
	} else {
		for a, d := range x.shape {
			drop[a] = d == 1
		}
	}
	out := make([]int, 0, len(x.shape))
	for a, d := range x.shape {
		if !drop[a] {
			out = append(out, d)
		}
	}
	return one(b.reshaped(x, out, "Squeeze"))
}

// buildUnsqueeze inserts size-1 axes at the given positions of the output.
func buildUnsqueeze(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	x := in[0]
	axes, given, err := b.attrOrInput(n, in, "axes", 1, 13)
	if err != nil {
		return nil, err
	}
	if !given {
		return nil, b.errInvalid("axes are required")
	}
	r := len(x.shape) + len(axes)
	ax, err := b.normAxes(axes, r)
	if err != nil {
		return nil, err
	}
	inserted := make([]bool, r)
	for _, a := range ax {
		inserted[a] = true
	}
	out, rest := make([]int, r), x.shape
	for i := range out {
		if inserted[i] {
			out[i] = 1
		} else {
			out[i], rest = rest[0], rest[1:]
		}
	}
	return one(b.reshaped(x, out, "Unsqueeze"))
}

// reshaped gives x a new shape with the same elements in the same order.
// It copies rather than aliasing x (see copyKernel), unless nothing
// changes at all.
func (b *builder) reshaped(x *value, shape []int, desc string) (*value, error) {
	if slices.Equal(shape, x.shape) {
		return x, nil
	}
	return b.apply(copyKernel{desc: desc}, x.dt, shape, x)
}

// ---- Concat and Split --------------------------------------------------------------

func buildConcat(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	if !n.Has("axis") {
		return nil, b.errInvalid("attribute \"axis\" is required")
	}
	first := in[0]
	if first == nil {
		return nil, b.errInvalid("input 0 is empty")
	}
	if len(first.shape) == 0 {
		return nil, b.errInvalid("input 0 is a scalar, want rank >= 1")
	}
	axis, err := b.normAxis(n.Int("axis", 0), len(first.shape), false)
	if err != nil {
		return nil, err
	}
	out := slices.Clone(first.shape)
	out[axis] = 0
	inner := prod(first.shape[axis+1:])
	k := &concatKernel{outer: prod(first.shape[:axis])}
	for i, v := range in {
		if v == nil {
			return nil, b.errInvalid("input %d is empty", i)
		}
		if v.dt != first.dt {
			return nil, b.errInvalid("input %d has dtype %v, want %v (the dtype of input 0)", i, v.dt, first.dt)
		}
		if len(v.shape) != len(first.shape) || !slices.Equal(v.shape[:axis], first.shape[:axis]) || !slices.Equal(v.shape[axis+1:], first.shape[axis+1:]) {
			return nil, b.errInvalid("input %d has shape %v, want %v except along axis %d", i, v.shape, first.shape, axis)
		}
		out[axis] += v.shape[axis]
		k.blocks = append(k.blocks, v.shape[axis]*inner)
	}
	if len(in) == 1 {
		return []*value{first}, nil
	}
	k.desc = fmt.Sprintf("Concat(axis=%d)", axis)
	return one(b.apply(k, first.dt, out, in...))
}

// concatKernel joins its inputs along an axis. Viewed around that axis as
// [outer, rest], each output row is the inputs' rows one after the other.
type concatKernel struct {
	outer  int
	blocks []int // per input: the elements of one of its rows
	desc   string
}

func (k *concatKernel) String() string { return k.desc }

func (k *concatKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	return byWidth(out.Dtype(),
		func() { concatRows(k, wordsOf[uint8](out), ins, wordsOf[uint8]) },
		func() { concatRows(k, wordsOf[uint32](out), ins, wordsOf[uint32]) },
		func() { concatRows(k, wordsOf[uint64](out), ins, wordsOf[uint64]) })
}

func concatRows[W moveWord](k *concatKernel, out []W, ins []*gt.Dense, words func(*gt.Dense) []W) {
	row := len(out) / max(k.outer, 1)
	at := 0 // where the current input's block starts in each output row
	for i, in := range ins {
		src, n := words(in), k.blocks[i]
		for o := range k.outer {
			copy(out[o*row+at:o*row+at+n], src[o*n:(o+1)*n])
		}
		at += n
	}
}

// buildSplit makes one strided copy per output. The sizes come from the
// split attribute (before opset 13) or input (from 13), from num_outputs
// (opset 18: equal parts, the last smaller), or else are equal parts, one
// per output.
func buildSplit(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	x := in[0]
	if len(x.shape) == 0 {
		return nil, b.errInvalid("input is a scalar, want rank >= 1")
	}
	if err := b.attrFromOpset(n, "num_outputs", 18); err != nil {
		return nil, err
	}
	axis, err := b.normAxis(n.Int("axis", 0), len(x.shape), false)
	if err != nil {
		return nil, err
	}
	dim, outs := x.shape[axis], len(n.Outputs)
	sizes, given, err := b.attrOrInput(n, in, "split", 1, 13)
	if err != nil {
		return nil, err
	}
	switch {
	case given && n.Has("num_outputs"):
		return nil, b.errInvalid("both the split input and the num_outputs attribute are set; want one")
	case given:
		if len(sizes) != outs {
			return nil, b.errInvalid("split %v has %d sizes for %d outputs", sizes, len(sizes), outs)
		}
		total := int64(0)
		for _, s := range sizes {
			if s < 0 || s > int64(dim) {
				return nil, b.errInvalid("split %v has a size outside [0, %d], the size of axis %d", sizes, dim, axis)
			}
			total += s
		}
		if total != int64(dim) {
			return nil, b.errInvalid("split %v adds up to %d, want the size %d of axis %d", sizes, total, dim, axis)
		}
	case n.Has("num_outputs"):
		num := n.Int("num_outputs", 0)
		if num != int64(outs) {
			return nil, b.errInvalid("num_outputs is %d but the node has %d outputs", num, outs)
		}
		// Parts of ceil(dim/num), the last one smaller. ONNX Runtime
		// refuses a split that leaves the last part nothing.
		part := (int64(dim) + num - 1) / num
		if last := int64(dim) - part*(num-1); last <= 0 {
			return nil, b.errInvalid("cannot split size %d of axis %d into %d parts: parts of %d leave %d for the last", dim, axis, num, part, last)
		}
		sizes = make([]int64, num)
		for i := range sizes {
			sizes[i] = min(part, int64(dim)-part*int64(i))
		}
	default:
		if dim%outs != 0 {
			return nil, b.errInvalid("cannot split size %d of axis %d into %d equal parts", dim, axis, outs)
		}
		sizes = make([]int64, outs)
		for i := range sizes {
			sizes[i] = int64(dim / outs)
		}
	}
	if outs == 1 {
		return []*value{x}, nil
	}
	strides := stridesOf(x.shape)
	res := make([]*value, outs)
	at := 0
	for i, s := range sizes {
		shape := slices.Clone(x.shape)
		shape[axis] = int(s)
		v := stridedView{dims: shape, strides: strides, base: at * strides[axis]}
		if res[i], err = b.applyView(x, shape, v, fmt.Sprintf("Split(axis=%d, part %d)", axis, i)); err != nil {
			return nil, err
		}
		at += int(s)
	}
	return res, nil
}

// ---- Shape and Size ---------------------------------------------------------------

// buildShape is a constant: every value's shape is static in a compiled
// graph. start and end (opset 15) slice the shape, clamped to [0, rank].
func buildShape(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	for _, attr := range []string{"start", "end"} {
		if err := b.attrFromOpset(n, attr, 15); err != nil {
			return nil, err
		}
	}
	x := in[0]
	r := int64(len(x.shape))
	clampAxis := func(a int64) int64 {
		if a < 0 {
			a += r
		}
		return min(max(a, 0), r)
	}
	start, end := clampAxis(n.Int("start", 0)), clampAxis(n.Int("end", r))
	dims := []int64{}
	if start < end {
		dims = int64Shape(x.shape[start:end])
	}
	t := &tensor.Tensor{DType: tensor.Int64, Shape: []int64{int64(len(dims))}, Data: dims}
	return []*value{constValue(t)}, nil
}

func buildSize(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	t := &tensor.Tensor{DType: tensor.Int64, Shape: []int64{}, Data: []int64{int64(prod(in[0].shape))}}
	return []*value{constValue(t)}, nil
}

// ---- Expand, Tile, ConstantOfShape ----------------------------------------------

// buildExpand broadcasts the input to a shape both ways, as numpy's
// x * ones(shape) does: the output may be larger than shape where the
// input is.
func buildExpand(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	x := in[0]
	spec, err := b.constInts(in, 1, "shape")
	if err != nil {
		return nil, err
	}
	shape, err := b.shapeDims(spec, "shape")
	if err != nil {
		return nil, err
	}
	out, ok := broadcastShape(x.shape, shape)
	if !ok {
		return nil, b.errInvalid("input shape %v does not broadcast to %v", x.shape, shape)
	}
	return one(b.expandTo(x, out))
}

// expandTo broadcasts x to out, a shape broadcastShape made from x's.
func (b *builder) expandTo(x *value, out []int) (*value, error) {
	if slices.Equal(out, x.shape) {
		return x, nil
	}
	in := stridesOf(x.shape)
	strides := make([]int, len(out))
	for i := range out {
		k := len(out) - 1 - i // axes align on the right
		if j := len(x.shape) - 1 - k; j >= 0 && x.shape[j] != 1 {
			strides[i] = in[j]
		}
	}
	return b.applyView(x, out, stridedView{dims: out, strides: strides}, fmt.Sprintf("Expand(%v)", out))
}

// shapeDims checks integers read from a constant as the dimensions of a shape.
func (b *builder) shapeDims(spec []int64, what string) ([]int, error) {
	if _, err := tensor.NumElements(spec); err != nil {
		return nil, b.errInvalid("%s %v: %v", what, spec, err)
	}
	return intShape(spec), nil
}

// buildTile repeats the input along each axis: output axis d has
// repeats[d] copies of input axis d, one after the other. As a strided
// view, each output axis is two: the repeat (stride 0), then the input
// axis.
func buildTile(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	x := in[0]
	reps, err := b.constInts(in, 1, "repeats")
	if err != nil {
		return nil, err
	}
	if len(reps) != len(x.shape) {
		return nil, b.errInvalid("repeats %v has %d entries, want the input's rank %d", reps, len(reps), len(x.shape))
	}
	out := make([]int64, len(x.shape))
	for i, r := range reps {
		if r < 0 {
			return nil, b.errInvalid("repeats %v has a negative entry", reps)
		}
		if r > 0 && int64(x.shape[i]) > math.MaxInt32/r {
			return nil, b.errInvalid("repeats %v of shape %v: too many elements", reps, x.shape)
		}
		out[i] = int64(x.shape[i]) * r
	}
	shape, err := b.shapeDims(out, "output shape")
	if err != nil {
		return nil, err
	}
	if slices.Equal(shape, x.shape) {
		return []*value{x}, nil
	}
	strides := stridesOf(x.shape)
	var v stridedView
	for i, r := range reps {
		v.dims = append(v.dims, int(r), x.shape[i])
		v.strides = append(v.strides, 0, strides[i])
	}
	return one(b.applyView(x, shape, v, fmt.Sprintf("Tile(%v)", reps)))
}

// buildConstantOfShape is a constant: the value attribute (a one-element
// tensor, float32 zero by default) expanded to the shape.
func buildConstantOfShape(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	spec, err := b.constInts(in, 0, "shape")
	if err != nil {
		return nil, err
	}
	if in[0].dt != tensor.Int64 {
		return nil, b.errInvalid("input %q (shape) must be int64, got %v", n.Inputs[0], in[0].dt)
	}
	shape, err := b.shapeDims(spec, "shape")
	if err != nil {
		return nil, err
	}
	fill := &tensor.Tensor{DType: tensor.Float32, Shape: []int64{}, Data: []float32{0}}
	if t := n.Tensor("value"); t != nil {
		if c, err := tensor.NumElements(t.Shape); err != nil || c != 1 {
			return nil, b.errInvalid("attribute \"value\" has shape %v, want one element", t.Shape)
		}
		fill = &tensor.Tensor{DType: t.DType, Shape: []int64{}, Data: t.Data}
	}
	return one(b.expandTo(constValue(fill), shape))
}

// ---- Range -----------------------------------------------------------------------

// buildRange is a constant: start, limit and delta must be, as they decide
// how many elements the output has.
func buildRange(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	names := [3]string{"start", "limit", "delta"}
	dt := in[0].dt
	if err := b.checkDType(in[0], "input start", numerics); err != nil {
		return nil, err
	}
	for i, v := range in {
		if v.konst == nil {
			return nil, b.errNotConstant(i, names[i], "length")
		}
		if v.dt != dt {
			return nil, b.errInvalid("input %q (%s) has dtype %v, want %v (the dtype of start)", n.Inputs[i], names[i], v.dt, dt)
		}
		if prod(v.shape) != 1 {
			return nil, b.errInvalid("input %q (%s) has shape %v, want a scalar", n.Inputs[i], names[i], v.shape)
		}
	}
	var k *rangeKernel
	var count int64
	var err error
	switch dt {
	case tensor.Float32, tensor.Float64:
		k, count, err = floatRange(scalarFloat(in[0].konst), scalarFloat(in[1].konst), scalarFloat(in[2].konst))
	default:
		k, count, err = intRange(scalarInt(in[0].konst), scalarInt(in[1].konst), scalarInt(in[2].konst))
	}
	if err != nil {
		return nil, b.errInvalid("%v", err)
	}
	return one(b.apply(k, dt, []int{int(count)}))
}

// scalarFloat and scalarInt read a one-element constant of a numeric dtype.
func scalarFloat(t *tensor.Tensor) float64 {
	switch d := t.Data.(type) {
	case []float32:
		return float64(d[0])
	case []float64:
		return d[0]
	}
	return float64(scalarInt(t))
}

func scalarInt(t *tensor.Tensor) int64 {
	switch d := t.Data.(type) {
	case []int32:
		return int64(d[0])
	case []int64:
		return d[0]
	case []int8:
		return int64(d[0])
	case []uint8:
		return int64(d[0])
	}
	return int64(scalarFloat(t))
}

// floatRange counts max(ceil((limit-start)/delta), 0) elements.
func floatRange(start, limit, delta float64) (*rangeKernel, int64, error) {
	if delta == 0 || math.IsNaN(delta) || math.IsNaN(start) || math.IsNaN(limit) {
		return nil, 0, fmt.Errorf("range start %v, limit %v, delta %v has no length", start, limit, delta)
	}
	c := math.Max(math.Ceil((limit-start)/delta), 0)
	if c > tensor.MaxElements {
		return nil, 0, fmt.Errorf("range start %v, limit %v, delta %v has more than %d elements", start, limit, delta, tensor.MaxElements)
	}
	return &rangeKernel{fstart: start, fdelta: delta}, int64(c), nil
}

// intRange counts exactly, without going through floats, which would
// round large int64 bounds.
func intRange(start, limit, delta int64) (*rangeKernel, int64, error) {
	if delta == 0 {
		return nil, 0, fmt.Errorf("range delta is 0")
	}
	// Work in float64 first, only to refuse absurd lengths before the
	// exact arithmetic below could overflow.
	if c := math.Ceil((float64(limit) - float64(start)) / float64(delta)); c > tensor.MaxElements {
		return nil, 0, fmt.Errorf("range start %d, limit %d, delta %d has more than %d elements", start, limit, delta, tensor.MaxElements)
	}
	// The distance between the bounds is taken as a uint64, which holds it
	// even when it overflows an int64 (start -2^63, limit 2^63-1).
	var dist, step uint64
	switch {
	case delta > 0 && limit > start:
		dist, step = uint64(limit)-uint64(start), uint64(delta)
	case delta < 0 && limit < start:
		dist, step = uint64(start)-uint64(limit), -uint64(delta)
	default:
		return &rangeKernel{istart: start, idelta: delta, ints: true}, 0, nil
	}
	count := dist / step
	if dist%step != 0 {
		count++
	}
	return &rangeKernel{istart: start, idelta: delta, ints: true}, int64(count), nil
}

// rangeKernel writes start + i*delta; it only ever runs at compile time.
type rangeKernel struct {
	fstart, fdelta float64
	istart, idelta int64
	ints           bool
}

func (k *rangeKernel) String() string {
	if k.ints {
		return fmt.Sprintf("Range(start=%d, delta=%d)", k.istart, k.idelta)
	}
	return fmt.Sprintf("Range(start=%v, delta=%v)", k.fstart, k.fdelta)
}

func (k *rangeKernel) run(out *gt.Dense, _ []*gt.Dense) error {
	switch out.Dtype() {
	case gt.Float32:
		fillRange(out.Float32s(), k.fstart, k.fdelta)
	case gt.Float64:
		fillRange(out.Float64s(), k.fstart, k.fdelta)
	case gt.Int32:
		fillRange(out.Int32s(), k.istart, k.idelta)
	case gt.Int64:
		fillRange(out.Int64s(), k.istart, k.idelta)
	default:
		return fmt.Errorf("dtype %v not supported", out.Dtype())
	}
	return nil
}

// fillRange computes each element from start rather than accumulating
// delta, so that float rounding does not build up along the range.
func fillRange[T number, S float64 | int64](out []T, start, delta S) {
	for i := range out {
		out[i] = T(start + S(i)*delta)
	}
}

// ---- batching -----------------------------------------------------------------

// checkShapeOpsBatch is plan.checkBatchSafe's part for the shape and index
// operators, whose relation to the batch their shapes do not show. deps
// tells which axes of each value follow the batch.
//
// Shape and Size read no item's data, only shapes, so the generic rule (a
// node that reads a batched value but makes none mixes items) does not
// apply to them: they are returned in shapeOnly for checkBatchSafe to
// skip. The batch size they report is the padded bucket's, which is right
// where it decides a shape (PyTorch's x.view(x.size(0), -1) becomes Shape
// -> Gather -> Concat -> Reshape and reshapes the padded batch
// consistently) and wrong where it is data (x / x.size(0)), so the values
// carrying it are followed (see batchSize) and refused where they are
// computed with or returned.
//
// It also refuses nodes that move data along a batched axis, which shapes
// alone would let through: concatenating, splitting, slicing, tiling or
// padding along the batch, or gathering rows of it, makes an output whose
// rows are no longer the items in order.
func (p *plan) checkShapeOpsBatch(deps batchAxes) (shapeOnly map[*onnx.Node]bool, err error) {
	shapeOnly = make(map[*onnx.Node]bool)
	sizes := batchSize{p: p, deps: deps, taint: make(map[string]batchTaint)}
	for _, n := range p.steps {
		if n.Domain != onnx.DomainDefault {
			continue
		}
		if n.OpType == "Shape" || n.OpType == "Size" {
			shapeOnly[n] = true
		}
		for _, ax := range movedAxes(n, p.consts) {
			dep := deps[n.Input(ax.input)]
			a := ax.axis
			if a < 0 {
				a += int64(len(dep))
			}
			if a >= 0 && a < int64(len(dep)) && dep[a] {
				return nil, fmt.Errorf("%w: %s moves data along axis %d of input %q, which follows the batch%s", onnx.ErrUnsupported, n.Describe(), a, n.Input(ax.input), unbatchedHint)
			}
		}
	}
	for _, n := range p.steps {
		if err := sizes.follow(n); err != nil {
			return nil, err
		}
	}
	for _, out := range p.g.Outputs {
		if sizes.taint[out.Name].any() {
			return nil, fmt.Errorf("%w: output %q is computed from the batch size, which is the padded bucket's rather than the request's%s", onnx.ErrUnsupported, out.Name, unbatchedHint)
		}
	}
	return shapeOnly, nil
}

// shapeInputs lists, per operator, the inputs that decide its output's
// shape: a batch size read there is used as a shape.
var shapeInputs = map[string][]int{
	"Reshape":         {1},
	"Expand":          {1},
	"Tile":            {1},
	"Squeeze":         {1},
	"Unsqueeze":       {1},
	"Split":           {1},
	"Slice":           {1, 2, 3, 4},
	"Pad":             {1, 3},
	"ConstantOfShape": {0},
	"Range":           {0, 1, 2},
}

// batchTaint marks the elements of a small integer value that hold the batch
// size (or a number computed from it): all of them, or those mask marks.
type batchTaint struct {
	all  bool
	mask []bool
}

func (t batchTaint) any() bool { return t.all || slices.Contains(t.mask, true) }

// batchSize follows the batch size from Shape and Size through the shape
// arithmetic exporters write (Gather, Concat, Unsqueeze, Slice, Cast,
// Add...), element by element where the arithmetic is simple enough to
// follow, so that Shape(x)[-1] (a feature size) is not mistaken for the
// batch size in Shape(x). Where it cannot follow, it assumes every element
// is tainted.
type batchSize struct {
	p     *plan
	deps  batchAxes
	taint map[string]batchTaint
}

func (s *batchSize) follow(n *onnx.Node) error {
	if n.Domain != onnx.DomainDefault {
		return s.consume(n)
	}
	switch n.OpType {
	case "Shape":
		dep := s.deps[n.Input(0)]
		r := int64(len(dep))
		clampAxis := func(a int64) int64 {
			if a < 0 {
				a += r
			}
			return min(max(a, 0), r)
		}
		start, end := clampAxis(n.Int("start", 0)), clampAxis(n.Int("end", r))
		if start < end {
			s.taint[n.Outputs[0]] = batchTaint{mask: slices.Clone(dep[start:end])}
		}
		return nil
	case "Size":
		if s.deps.any(n.Input(0)) {
			s.taint[n.Outputs[0]] = batchTaint{all: true}
		}
		return nil
	}
	return s.consume(n)
}

// consume handles any other node: a tainted input that decides a shape is
// fine; one that enters a computation on the batch's data is refused; one
// that enters shape arithmetic taints the result.
func (s *batchSize) consume(n *onnx.Node) error {
	var tainted []int
	for i, name := range n.Inputs {
		if name != "" && s.taint[name].any() && (n.Domain != onnx.DomainDefault || !slices.Contains(shapeInputs[n.OpType], i)) {
			tainted = append(tainted, i)
		}
	}
	if len(tainted) == 0 {
		return nil
	}
	batched := slices.ContainsFunc(n.Inputs, func(name string) bool { return name != "" && s.deps.any(name) }) ||
		slices.ContainsFunc(n.Outputs, func(name string) bool { return name != "" && s.deps.any(name) })
	if batched {
		return fmt.Errorf("%w: %s computes with the batch size (input %q), which is the padded bucket's rather than the request's%s", onnx.ErrUnsupported, n.Describe(), n.Inputs[tainted[0]], unbatchedHint)
	}
	t := s.propagate(n)
	for _, out := range n.Outputs {
		if out != "" {
			s.taint[out] = t
		}
	}
	return nil
}

// propagate works out which elements of n's output hold the batch size,
// for the operators whose arithmetic it can follow.
func (s *batchSize) propagate(n *onnx.Node) batchTaint {
	all := batchTaint{all: true}
	in := func(i int) batchTaint { return s.taint[n.Input(i)] }
	switch n.OpType {
	case "Identity", "Cast", "Unsqueeze", "Squeeze", "Reshape", "Flatten", "Neg", "Abs":
		return in(0) // the same elements in the same order
	case "Gather":
		src, idx := in(0), s.p.consts[n.Input(1)]
		if src.all || idx == nil || n.Int("axis", 0) != 0 {
			return all
		}
		out := batchTaint{}
		for _, i := range constIndices(idx) {
			if i < 0 {
				i += int64(len(src.mask))
			}
			if i < 0 || i >= int64(len(src.mask)) {
				return all
			}
			out.mask = append(out.mask, src.mask[i])
		}
		return out
	case "Concat":
		out := batchTaint{}
		for i, name := range n.Inputs {
			t := in(i)
			if !t.any() {
				c := s.p.consts[name]
				if c == nil || len(c.Shape) != 1 {
					return all // an input of unknown length
				}
				t = batchTaint{mask: make([]bool, c.Shape[0])}
			}
			if t.all {
				return all
			}
			out.mask = append(out.mask, t.mask...)
		}
		return out
	case "Add", "Sub", "Mul", "Div", "Mod", "Max", "Min", "Pow":
		a, b := in(0), in(1)
		switch {
		case a.all || b.all:
			return all
		case !b.any():
			return a
		case !a.any():
			return b
		case len(a.mask) == len(b.mask):
			out := batchTaint{mask: make([]bool, len(a.mask))}
			for i := range out.mask {
				out.mask[i] = a.mask[i] || b.mask[i]
			}
			return out
		}
	}
	return all
}

// constIndices reads Gather's constant indices.
func constIndices(t *tensor.Tensor) []int64 {
	switch d := t.Data.(type) {
	case []int64:
		return d
	case []int32:
		out := make([]int64, len(d))
		for i, x := range d {
			out[i] = int64(x)
		}
		return out
	}
	return nil
}

// movedAxis is an axis of one of a node's inputs that the node moves data
// along (as given in the model: it may be negative).
type movedAxis struct {
	input int
	axis  int64
}

// movedAxes lists the axes along which a node moves data between
// positions, so that rows along them do not stay where they were. Inputs
// the node reads as integers (Tile's repeats, Pad's pads, Slice's starts)
// are looked up in consts; when they are not there (they are computed from
// shapes in each graph), the node is assumed to keep its rows.
func movedAxes(n *onnx.Node, consts map[string]*tensor.Tensor) []movedAxis {
	ints := func(i int, attr string) []int64 {
		if attr != "" && n.Has(attr) {
			return n.Ints(attr, nil)
		}
		if t := consts[n.Input(i)]; t != nil {
			return constIndices(t)
		}
		return nil
	}
	var moved []movedAxis
	switch n.OpType {
	case "Concat":
		for i := range n.Inputs {
			moved = append(moved, movedAxis{i, n.Int("axis", 0)})
		}
	case "Split", "Gather", "GatherElements":
		moved = append(moved, movedAxis{0, n.Int("axis", 0)})
	case "Tile":
		for ax, r := range ints(1, "") {
			if r != 1 {
				moved = append(moved, movedAxis{0, int64(ax)})
			}
		}
	case "Pad":
		pads, axes := ints(1, "pads"), ints(3, "")
		half := len(pads) / 2
		for i := range half {
			if pads[i] == 0 && pads[half+i] == 0 {
				continue
			}
			ax := int64(i)
			if len(axes) == half {
				ax = axes[i]
			}
			moved = append(moved, movedAxis{0, ax})
		}
	case "Slice":
		starts, ends, axes, steps := ints(1, "starts"), ints(2, "ends"), ints(3, "axes"), ints(4, "")
		for i := range starts {
			whole := starts[i] == 0 && i < len(ends) && ends[i] >= math.MaxInt32 && (len(steps) <= i || steps[i] == 1)
			if whole {
				continue
			}
			ax := int64(i)
			if i < len(axes) {
				ax = axes[i]
			}
			moved = append(moved, movedAxis{0, ax})
		}
	}
	return moved
}
