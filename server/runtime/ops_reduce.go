package runtime

import (
	"fmt"
	"math"
	"slices"

	gt "gorgonia.org/tensor"

	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/tensor"
)

// Reductions: ReduceSum ReduceMean ReduceProd ReduceL2 ReduceMax ReduceMin,
// ArgMin, TopK.

func init() {
	registerBuilders(onnx.DomainDefault, map[string]buildFunc{
		// ReduceSum took its axes as an input in opset 13, the others in 18.
		"ReduceSum":  buildReduce(redSum, 13),
		"ReduceMean": buildReduce(redMean, 18),
		"ReduceProd": buildReduce(redProd, 18),
		"ReduceL2":   buildReduce(redL2, 18),
		"ReduceMax":  buildReduce(redMax, 18),
		"ReduceMin":  buildReduce(redMin, 18),
		"ArgMin":     buildArgExtreme(true),
		"ArgMax":     buildArgExtreme(false),
		"TopK":       buildTopK,
	})
}

type reduceOp uint8

const (
	redSum reduceOp = iota
	redMean
	redProd
	redL2
	redMax
	redMin
)

func (op reduceOp) String() string {
	return [...]string{"ReduceSum", "ReduceMean", "ReduceProd", "ReduceL2", "ReduceMax", "ReduceMin"}[op]
}

// buildReduce builds a reduction whose axes are the "axes" attribute before
// opset axesInput and the optional input 1 from it. No axes reduce every
// axis, unless noop_with_empty_axes (from axesInput) makes the node an
// identity. The axes input must be a constant: it decides the output's
// shape, which Corvid fixes when it compiles.
func buildReduce(op reduceOp, axesInput int64) buildFunc {
	return func(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
		x := in[0]
		allowed := numerics
		if op == redMax || op == redMin {
			allowed = numbersBool
		}
		if err := b.checkDType(x, "input", allowed); err != nil {
			return nil, err
		}
		if err := b.checkAttrOpsets("axes", 0, axesInput); err != nil {
			return nil, err
		}
		if err := b.checkAttrOpsets("noop_with_empty_axes", axesInput, 0); err != nil {
			return nil, err
		}
		var axes []int64
		if b.opset < axesInput {
			if len(in) > 1 {
				return nil, b.errInvalid("has %d inputs; before opset %d the axes are an attribute", len(in), axesInput)
			}
			axes = n.Ints("axes", nil)
		} else if a := optional(in, 1); a != nil {
			if a.konst == nil {
				return nil, b.errNeedsConstant(1, "the axes (input %q) must be a constant: an initializer or a Constant", n.Inputs[1])
			}
			if a.dt != tensor.Int64 || len(a.shape) > 1 {
				return nil, b.errInvalid("the axes must be a 1-D int64 tensor, got %v%v", a.dt, a.shape)
			}
			axes, _ = a.konst.Data.([]int64)
		}
		if len(axes) == 0 && n.Int("noop_with_empty_axes", 0) != 0 {
			return []*value{x}, nil
		}
		reduced := make([]bool, len(x.shape))
		if len(axes) == 0 {
			for i := range reduced {
				reduced[i] = true
			}
		}
		for _, a := range axes {
			ax, err := b.normAxis(a, len(x.shape), false)
			if err != nil {
				return nil, err
			}
			if reduced[ax] {
				return nil, b.errInvalid("axes %v name axis %d twice", axes, ax)
			}
			reduced[ax] = true
		}
		keep := n.Int("keepdims", 1) != 0
		var out []int
		for i, d := range x.shape {
			switch {
			case !reduced[i]:
				out = append(out, d)
			case keep:
				out = append(out, 1)
			}
		}
		if out == nil {
			out = []int{} // a scalar
		}
		k := &reduceKernel{op: op, p: newReducePlan(x.shape, reduced), desc: fmt.Sprintf("%v(axes=%v, keepdims=%t)", op, axes, keep)}
		return one(b.apply(k, x.dt, out, x))
	}
}

// reducePlan walks a reduction output by output: the kept and the reduced
// dimensions of the input, each with runs of adjacent dimensions merged and
// size-1 dimensions dropped, and their strides in the input. The output
// holds the kept dimensions in order, so walking them row-major visits the
// output contiguously.
type reducePlan struct {
	kept, keptStr []int
	red, redStr   []int
	count         int // input elements reduced into each output
}

func newReducePlan(shape []int, reduced []bool) reducePlan {
	var p reducePlan
	stride := 1
	// From the innermost dimension out, so strides are known as we go;
	// the lists are reversed at the end.
	lastRed := -1 // the kind of the previous kept dimension: 0 kept, 1 reduced
	for i := len(shape) - 1; i >= 0; i-- {
		d := shape[i]
		if d == 1 {
			continue
		}
		kind := 0
		if reduced[i] {
			kind = 1
		}
		dims, strs := &p.kept, &p.keptStr
		if kind == 1 {
			dims, strs = &p.red, &p.redStr
		}
		if kind == lastRed {
			(*dims)[len(*dims)-1] *= d // contiguous with the previous one: merge
		} else {
			*dims = append(*dims, d)
			*strs = append(*strs, stride)
		}
		lastRed = kind
		stride *= d
	}
	slices.Reverse(p.kept)
	slices.Reverse(p.keptStr)
	slices.Reverse(p.red)
	slices.Reverse(p.redStr)
	// A walk needs at least one dimension.
	if len(p.kept) == 0 {
		p.kept, p.keptStr = []int{1}, []int{0}
	}
	if len(p.red) == 0 {
		p.red, p.redStr = []int{1}, []int{0}
	}
	p.count = prod(p.red)
	return p
}

// run returns the length of the innermost reduced run and its stride.
func (p *reducePlan) run() (n, stride int) { return p.red[len(p.red)-1], p.redStr[len(p.red)-1] }

// eachOutput calls fn for every output element in order, with the input
// offset its reduction starts from.
func (p *reducePlan) eachOutput(fn func(o, base int)) {
	odometer(p.kept, p.keptStr, fn)
}

// eachRun calls fn with the input offset of every innermost run of the
// elements reduced into the output starting at base; the caller walks the
// run (see run).
func (p *reducePlan) eachRun(base int, fn func(off int)) {
	last := len(p.red) - 1
	odometer(p.red[:last], p.redStr[:last], func(_, off int) { fn(base + off) })
}

// odometer walks dims row-major, calling fn(i, off) for every position i
// with its offset under strides. A zero dimension makes no call; no
// dimensions make one.
func odometer(dims, strides []int, fn func(i, off int)) {
	var idxBuf [8]int // on the stack for up to 8 merged dimensions
	idx := idxBuf[:0]
	if len(dims) <= len(idxBuf) {
		idx = idxBuf[:len(dims)]
	} else {
		idx = make([]int, len(dims))
	}
	total, off := prod(dims), 0
	for i := range total {
		fn(i, off)
		for d := len(dims) - 1; d >= 0; d-- {
			idx[d]++
			off += strides[d]
			if idx[d] < dims[d] {
				break
			}
			off -= strides[d] * dims[d]
			idx[d] = 0
		}
	}
}

type reduceKernel struct {
	op   reduceOp
	p    reducePlan
	desc string
}

func (k *reduceKernel) String() string { return k.desc }

func (k *reduceKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	x := ins[0]
	minMax := k.op == redMax || k.op == redMin
	switch out.Dtype() {
	case gt.Float32:
		if minMax {
			reduceMinMax(k.op, &k.p, out.Float32s(), x.Float32s(), float32(math.Inf(-1)), float32(math.Inf(1)))
		} else {
			reduceFloat(k.op, &k.p, out.Float32s(), x.Float32s())
		}
	case gt.Float64:
		if minMax {
			reduceMinMax(k.op, &k.p, out.Float64s(), x.Float64s(), math.Inf(-1), math.Inf(1))
		} else {
			reduceFloat(k.op, &k.p, out.Float64s(), x.Float64s())
		}
	case gt.Int8:
		if !minMax {
			return fmt.Errorf("dtype %v not supported", out.Dtype())
		}
		reduceMinMax(k.op, &k.p, out.Int8s(), x.Int8s(), math.MinInt8, math.MaxInt8)
	case gt.Uint8:
		if !minMax {
			return fmt.Errorf("dtype %v not supported", out.Dtype())
		}
		reduceMinMax(k.op, &k.p, out.Uint8s(), x.Uint8s(), 0, math.MaxUint8)
	case gt.Int32:
		if minMax {
			reduceMinMax(k.op, &k.p, out.Int32s(), x.Int32s(), math.MinInt32, math.MaxInt32)
		} else {
			reduceInt(k.op, &k.p, out.Int32s(), x.Int32s())
		}
	case gt.Int64:
		if minMax {
			reduceMinMax(k.op, &k.p, out.Int64s(), x.Int64s(), math.MinInt64, math.MaxInt64)
		} else {
			reduceInt(k.op, &k.p, out.Int64s(), x.Int64s())
		}
	case gt.Bool:
		if !minMax {
			return fmt.Errorf("dtype %v not supported", out.Dtype())
		}
		reduceBool(k.op, &k.p, out.Bools(), x.Bools())
	default:
		return fmt.Errorf("dtype %v not supported", out.Dtype())
	}
	return nil
}

// reduceFloat accumulates Sum, Mean, Prod and L2 in float64: float32 sums
// over long axes lose digits. An empty reduction gives 0 (Sum, L2), 1
// (Prod) or NaN (Mean, 0/0), as numpy does.
func reduceFloat[T float32 | float64](op reduceOp, p *reducePlan, out, x []T) {
	n, s := p.run()
	p.eachOutput(func(o, base int) {
		acc := 0.0
		if op == redProd {
			acc = 1
		}
		p.eachRun(base, func(off int) {
			switch op {
			case redSum, redMean:
				for i := range n {
					acc += float64(x[off+i*s])
				}
			case redProd:
				for i := range n {
					acc *= float64(x[off+i*s])
				}
			case redL2:
				for i := range n {
					v := float64(x[off+i*s])
					acc += v * v
				}
			}
		})
		switch op {
		case redMean:
			acc /= float64(p.count)
		case redL2:
			acc = math.Sqrt(acc)
		}
		out[o] = T(acc)
	})
}

// reduceInt accumulates in int64 and wraps into T, as C++ does. L2 takes
// the square root in float64 and truncates; an empty Mean gives 0.
func reduceInt[T int32 | int64](op reduceOp, p *reducePlan, out, x []T) {
	n, s := p.run()
	p.eachOutput(func(o, base int) {
		acc := int64(0)
		if op == redProd {
			acc = 1
		}
		p.eachRun(base, func(off int) {
			switch op {
			case redSum, redMean:
				for i := range n {
					acc += int64(x[off+i*s])
				}
			case redProd:
				for i := range n {
					acc *= int64(x[off+i*s])
				}
			case redL2:
				for i := range n {
					v := int64(x[off+i*s])
					acc += v * v
				}
			}
		})
		switch {
		case op == redMean && p.count > 0:
			acc /= int64(p.count)
		case op == redMean:
			acc = 0
		case op == redL2:
			acc = int64(math.Sqrt(float64(acc)))
		}
		out[o] = T(acc)
	})
}

// reduceMinMax starts from lowest (Max) or highest (Min), which is what an
// empty reduction gives (ONNX: the dtype's minimum or maximum, ±Inf for
// floats). NaN propagates, as in numpy.
func reduceMinMax[T number](op reduceOp, p *reducePlan, out, x []T, lowest, highest T) {
	n, s := p.run()
	p.eachOutput(func(o, base int) {
		acc := highest
		if op == redMax {
			acc = lowest
		}
		p.eachRun(base, func(off int) {
			if op == redMax {
				for i := range n {
					acc = greater(acc, x[off+i*s])
				}
			} else {
				for i := range n {
					acc = lesser(acc, x[off+i*s])
				}
			}
		})
		out[o] = acc
	})
}

// reduceBool: Max is any, Min is all (false and true when empty).
func reduceBool(op reduceOp, p *reducePlan, out, x []bool) {
	n, s := p.run()
	p.eachOutput(func(o, base int) {
		empty := op == redMin // the result unless some element differs from it
		acc := empty
		p.eachRun(base, func(off int) {
			if acc != empty {
				return // decided
			}
			for i := range n {
				if x[off+i*s] != empty {
					acc = !empty
					return
				}
			}
		})
		out[o] = acc
	})
}

// ---- ArgMin ----------------------------------------------------------------

// buildArgExtreme builds ArgMax, or ArgMin when smallest: the int64 index of
// the largest (smallest) element along an axis.
func buildArgExtreme(smallest bool) buildFunc {
	op := "ArgMax"
	if smallest {
		op = "ArgMin"
	}
	return func(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
		x := in[0]
		if err := b.checkDType(x, "input", anyNumber); err != nil {
			return nil, err
		}
		if err := b.checkAttrOpsets("select_last_index", 12, 0); err != nil {
			return nil, err
		}
		if len(x.shape) == 0 {
			return nil, b.errInvalid("input is a scalar, want rank >= 1")
		}
		axis, err := b.normAxis(n.Int("axis", 0), len(x.shape), false)
		if err != nil {
			return nil, err
		}
		if x.shape[axis] == 0 {
			return nil, b.errInvalid("axis %d of shape %v is empty", axis, x.shape)
		}
		out := slices.Clone(x.shape)
		if n.Int("keepdims", 1) != 0 {
			out[axis] = 1
		} else {
			out = slices.Delete(out, axis, axis+1)
		}
		last := n.Int("select_last_index", 0) != 0
		k := &argKernel{axisLayout: layoutAround(x.shape, axis), min: smallest, last: last,
			desc: fmt.Sprintf("%s(axis=%d, last=%t)", op, axis, last)}
		return one(b.apply(k, tensor.Int64, out, x))
	}
}

// argKernel writes the int64 index of the largest (min: smallest) element
// along the layout's middle dimension; out has outer*inner elements whether
// or not the reduced axis is kept.
type argKernel struct {
	axisLayout
	min  bool
	last bool // select_last_index: the last of equal extremes, not the first
	desc string
}

func (k *argKernel) String() string { return k.desc }

func (k *argKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	o, x := out.Int64s(), ins[0]
	switch x.Dtype() {
	case gt.Float32:
		argExtreme(k, o, x.Float32s())
	case gt.Float64:
		argExtreme(k, o, x.Float64s())
	case gt.Int8:
		argExtreme(k, o, x.Int8s())
	case gt.Uint8:
		argExtreme(k, o, x.Uint8s())
	case gt.Int32:
		argExtreme(k, o, x.Int32s())
	case gt.Int64:
		argExtreme(k, o, x.Int64s())
	default:
		return fmt.Errorf("dtype %v not supported", x.Dtype())
	}
	return nil
}

func argExtreme[T number](k *argKernel, out []int64, x []T) {
	l := k.axisLayout
	for o := 0; o < l.outer; o++ {
		for j := 0; j < l.inner; j++ {
			base := o*l.n*l.inner + j
			best, bi := x[base], 0
			for i := 1; i < l.n; i++ {
				v := x[base+i*l.inner]
				better := v > best
				if k.min {
					better = v < best
				}
				if better || (k.last && v == best) {
					best, bi = v, i
				}
			}
			out[o*l.inner+j] = int64(bi)
		}
	}
}

// ---- TopK ------------------------------------------------------------------

// buildTopK finds the k largest (or smallest) elements along an axis: the
// values, and their int64 indices. k is an attribute before opset 10 and
// input 1 from it, which must be a constant since it sets the outputs'
// shape. Equal values rank by lower index first, as ONNX specifies; the
// results are always sorted, which sorted=0 (order unspecified) allows.
func buildTopK(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	x := in[0]
	if err := b.checkDType(x, "input", anyNumber); err != nil {
		return nil, err
	}
	if err := b.checkAttrOpsets("k", 0, 10); err != nil {
		return nil, err
	}
	for _, a := range []string{"largest", "sorted"} {
		if err := b.checkAttrOpsets(a, 11, 0); err != nil {
			return nil, err
		}
	}
	if len(x.shape) == 0 {
		return nil, b.errInvalid("input is a scalar, want rank >= 1")
	}
	axis, err := b.normAxis(n.Int("axis", -1), len(x.shape), false)
	if err != nil {
		return nil, err
	}
	var k int64
	if b.opset < 10 {
		if len(in) > 1 {
			return nil, b.errInvalid("has %d inputs; before opset 10 k is an attribute", len(in))
		}
		if !n.Has("k") {
			return nil, b.errInvalid("attribute \"k\" is required")
		}
		k = n.Int("k", 0)
	} else {
		kv := optional(in, 1)
		switch {
		case kv == nil:
			return nil, b.errInvalid("input 1 (K) is required")
		case kv.konst == nil:
			return nil, b.errNeedsConstant(1, "K (input %q) must be a constant: an initializer or a Constant", n.Inputs[1])
		case kv.dt != tensor.Int64 || prod(kv.shape) != 1 || len(kv.shape) > 1:
			return nil, b.errInvalid("K must be a 1-D int64 tensor of one element, got %v%v", kv.dt, kv.shape)
		}
		k = kv.konst.Data.([]int64)[0]
	}
	if k < 0 || k > int64(x.shape[axis]) {
		return nil, b.errInvalid("k = %d is out of range [0, %d] for axis %d of shape %v", k, x.shape[axis], axis, x.shape)
	}
	largest := n.Int("largest", 1) != 0
	out := slices.Clone(x.shape)
	out[axis] = int(k)
	l := layoutAround(x.shape, axis)
	desc := fmt.Sprintf("TopK(axis=%d, k=%d, largest=%t)", axis, k, largest)
	tk := &topkKernel{axisLayout: l, k: int(k), largest: largest, desc: desc, heap: make([]int, k)}
	idx, err := b.apply(tk, tensor.Int64, out, x)
	if err != nil {
		return nil, err
	}
	vals, err := b.apply(&takeAlongKernel{axisLayout: l, k: int(k)}, x.dt, out, x, idx)
	if err != nil {
		return nil, err
	}
	return []*value{vals, idx}, nil
}

// topkKernel writes the indices of the k best elements of every row along
// the axis, best first. It keeps a heap of the best k seen so far (O(n log
// k) per row) in heap, a buffer of k made with the kernel: a kernel belongs
// to one graph, which one worker runs at a time.
type topkKernel struct {
	axisLayout
	k       int
	largest bool
	desc    string
	heap    []int
}

func (k *topkKernel) String() string { return k.desc }

func (k *topkKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	o, x := out.Int64s(), ins[0]
	switch x.Dtype() {
	case gt.Float32:
		topk(k, o, x.Float32s())
	case gt.Float64:
		topk(k, o, x.Float64s())
	case gt.Int8:
		topk(k, o, x.Int8s())
	case gt.Uint8:
		topk(k, o, x.Uint8s())
	case gt.Int32:
		topk(k, o, x.Int32s())
	case gt.Int64:
		topk(k, o, x.Int64s())
	default:
		return fmt.Errorf("dtype %v not supported", x.Dtype())
	}
	return nil
}

func topk[T number](k *topkKernel, out []int64, x []T) {
	if k.k == 0 {
		return
	}
	h := heapOf[T]{idx: k.heap, largest: k.largest}
	for o := 0; o < k.outer; o++ {
		for j := 0; j < k.inner; j++ {
			base := o*k.n*k.inner + j
			h.row, h.stride = x[base:], k.inner
			h.idx = h.idx[:0]
			for i := 0; i < k.n; i++ {
				if len(h.idx) < k.k {
					h.idx = append(h.idx, i)
					h.up(len(h.idx) - 1)
				} else if h.before(i, h.idx[0]) {
					h.idx[0] = i
					h.down(0, k.k)
				}
			}
			// Heap sort: the worst goes last, leaving the best first.
			for end := k.k - 1; end > 0; end-- {
				h.idx[0], h.idx[end] = h.idx[end], h.idx[0]
				h.down(0, end)
			}
			for r, i := range h.idx {
				out[(o*k.k+r)*k.inner+j] = int64(i)
			}
		}
	}
}

// heapOf is a heap of indices into one row (elements row[i*stride]) with
// the worst-ranked at the root, so the root is what a better element
// replaces.
type heapOf[T number] struct {
	idx     []int
	row     []T
	stride  int
	largest bool
}

// before reports whether element a ranks before element b: larger (or
// smaller) first, NaN above every number as numpy sorts it, equal values
// by lower index.
func (h *heapOf[T]) before(a, b int) bool {
	va, vb := h.row[a*h.stride], h.row[b*h.stride]
	nanA, nanB := va != va, vb != vb
	switch {
	case nanA || nanB:
		if nanA != nanB {
			return nanA == h.largest
		}
	case va != vb:
		return (va > vb) == h.largest
	}
	return a < b
}

func (h *heapOf[T]) up(i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if !h.before(h.idx[parent], h.idx[i]) {
			return
		}
		h.idx[parent], h.idx[i] = h.idx[i], h.idx[parent]
		i = parent
	}
}

func (h *heapOf[T]) down(i, n int) {
	for {
		worst := i
		if c := 2*i + 1; c < n && h.before(h.idx[worst], h.idx[c]) {
			worst = c
		}
		if c := 2*i + 2; c < n && h.before(h.idx[worst], h.idx[c]) {
			worst = c
		}
		if worst == i {
			return
		}
		h.idx[i], h.idx[worst] = h.idx[worst], h.idx[i]
		i = worst
	}
}

// takeAlongKernel gathers TopK's values: out[o, r, j] = x[o, idx[o, r, j],
// j] in the [outer, n, inner] layout of x.
type takeAlongKernel struct {
	axisLayout
	k int
}

func (k *takeAlongKernel) String() string { return "TopK values" }

func (k *takeAlongKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	idx := ins[1].Int64s()
	switch out.Dtype() {
	case gt.Float32:
		takeAlong(k, out.Float32s(), ins[0].Float32s(), idx)
	case gt.Float64:
		takeAlong(k, out.Float64s(), ins[0].Float64s(), idx)
	case gt.Int8:
		takeAlong(k, out.Int8s(), ins[0].Int8s(), idx)
	case gt.Uint8:
		takeAlong(k, out.Uint8s(), ins[0].Uint8s(), idx)
	case gt.Int32:
		takeAlong(k, out.Int32s(), ins[0].Int32s(), idx)
	case gt.Int64:
		takeAlong(k, out.Int64s(), ins[0].Int64s(), idx)
	default:
		return fmt.Errorf("dtype %v not supported", out.Dtype())
	}
	return nil
}

func takeAlong[T number](k *takeAlongKernel, out, x []T, idx []int64) {
	for o := 0; o < k.outer; o++ {
		for r := 0; r < k.k; r++ {
			dst := (o*k.k + r) * k.inner
			for j := 0; j < k.inner; j++ {
				out[dst+j] = x[(o*k.n+int(idx[dst+j]))*k.inner+j]
			}
		}
	}
}
