package runtime

import (
	"fmt"
	"math"
	"slices"

	gt "gorgonia.org/tensor"

	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/tensor"
)

// Elementwise math: Sqrt Exp Log Reciprocal Erf Floor Ceil Round Abs Neg
// Sign, Pow, Clip, and the variadic Min Max Sum Mean. This file also holds
// what the activation, reduction and logic families share: mapKernel (one
// element in, one out) and naryBcast (numpy broadcasting over up to three
// operands).
//
// Operators accept the union of the dtypes their opsets allow: a superset
// never refuses a valid model. Attributes, whose meaning changes between
// opsets, are checked against the model's opset.

func init() {
	registerBuilders(onnx.DomainDefault, map[string]buildFunc{
		"Sqrt":       buildFloatMap(7, math.Sqrt),
		"Exp":        buildFloatMap(7, math.Exp),
		"Log":        buildFloatMap(7, math.Log),
		"Reciprocal": buildFloatMap(7, func(x float64) float64 { return 1 / x }),
		"Erf":        buildFloatMap(9, math.Erf),
		"Floor":      buildFloatMap(7, math.Floor),
		"Ceil":       buildFloatMap(7, math.Ceil),
		"Round":      buildFloatMap(11, math.RoundToEven), // halves to even, as ONNX specifies
		"Abs":        buildMap(7, anyNumber, math.Abs, absInt),
		"Neg":        buildMap(7, signedNumber, func(x float64) float64 { return -x }, func(x int64) int64 { return -x }),
		"Sign":       buildMap(9, anyNumber, signFloat, signInt),
		"Pow":        buildPow,
		"Clip":       buildClip,
		"Min":        buildVariadic(varMin),
		"Max":        buildVariadic(varMax),
		"Sum":        buildVariadic(varSum),
		"Mean":       buildVariadic(varMean),
	})
}

var (
	// anyNumber is every numeric dtype Corvid holds.
	anyNumber = []tensor.DType{tensor.Float32, tensor.Float64, tensor.Int8, tensor.Uint8, tensor.Int32, tensor.Int64}
	// signedNumber leaves out uint8, which Neg does not take.
	signedNumber = []tensor.DType{tensor.Float32, tensor.Float64, tensor.Int8, tensor.Int32, tensor.Int64}
)

// requireOpset refuses an operator used in a model whose opset predates it.
func (b *builder) requireOpset(since int64) error {
	if b.opset < since {
		return b.errInvalid("%s is defined from opset %d; the model imports opset %d", b.node.OpType, since, b.opset)
	}
	return nil
}

// checkAttrOpsets refuses an attribute that the model's opset does not
// define for the operator: it exists in opsets [from, until), until 0
// meaning it still does. Ignoring it would silently change the result
// (Clip's bounds moved from attributes to inputs, for one).
func (b *builder) checkAttrOpsets(name string, from, until int64) error {
	if !b.node.Has(name) {
		return nil
	}
	if b.opset < from {
		return b.errInvalid("attribute %q is defined from opset %d; the model imports opset %d", name, from, b.opset)
	}
	if until > 0 && b.opset >= until {
		return b.errInvalid("attribute %q is defined before opset %d only; the model imports opset %d", name, until, b.opset)
	}
	return nil
}

// ---- one element in, one out ------------------------------------------------

// mapKernel applies a function to every element. Floats go through float64:
// Go's math works in float64, and rounding once at the end gives float32
// results as exact as float32 holds. Integers go through int64.
type mapKernel struct {
	desc string
	f    func(float64) float64 // for float dtypes
	i    func(int64) int64     // for integer dtypes; nil when the op takes floats only
}

func (k *mapKernel) String() string { return k.desc }

func (k *mapKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	x := ins[0]
	switch out.Dtype() {
	case gt.Float32:
		mapFloats(k.f, out.Float32s(), x.Float32s())
		return nil
	case gt.Float64:
		mapFloats(k.f, out.Float64s(), x.Float64s())
		return nil
	}
	if k.i == nil {
		return fmt.Errorf("dtype %v not supported", out.Dtype())
	}
	switch out.Dtype() {
	case gt.Int8:
		mapInts(k.i, out.Int8s(), x.Int8s())
	case gt.Uint8:
		mapInts(k.i, out.Uint8s(), x.Uint8s())
	case gt.Int32:
		mapInts(k.i, out.Int32s(), x.Int32s())
	case gt.Int64:
		mapInts(k.i, out.Int64s(), x.Int64s())
	default:
		return fmt.Errorf("dtype %v not supported", out.Dtype())
	}
	return nil
}

func mapFloats[T float32 | float64](f func(float64) float64, out, x []T) {
	x = x[:len(out)]
	for i, v := range x {
		out[i] = T(f(float64(v)))
	}
}

// mapInts converts back with Go's (and C's) wrapping: Abs(-128) of an int8
// stays -128, as in ONNX Runtime.
func mapInts[T int8 | uint8 | int32 | int64](f func(int64) int64, out, x []T) {
	x = x[:len(out)]
	for i, v := range x {
		out[i] = T(f(int64(v)))
	}
}

// buildFloatMap builds a float-only elementwise operator defined from
// opset since.
func buildFloatMap(since int64, f func(float64) float64) buildFunc {
	return buildMap(since, floats, f, nil)
}

// buildMap builds an elementwise operator taking the allowed dtypes; i
// computes the integer ones.
func buildMap(since int64, allowed []tensor.DType, f func(float64) float64, i func(int64) int64) buildFunc {
	return func(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
		if err := b.requireOpset(since); err != nil {
			return nil, err
		}
		x := in[0]
		if err := b.checkDType(x, "input", allowed); err != nil {
			return nil, err
		}
		return one(b.apply(&mapKernel{desc: n.OpType, f: f, i: i}, x.dt, x.shape, x))
	}
}

func absInt(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// signFloat keeps NaN, as numpy (ONNX's reference) does.
func signFloat(x float64) float64 {
	switch {
	case x > 0:
		return 1
	case x < 0:
		return -1
	}
	return x // 0, -0 or NaN
}

func signInt(x int64) int64 {
	switch {
	case x > 0:
		return 1
	case x < 0:
		return -1
	}
	return 0
}

// ---- broadcasting over several operands -----------------------------------

// maxOperands is the most operands a naryBcast walks (Where's three).
const maxOperands = 3

// offsets holds each operand's offset at the start of a run. It is an array
// passed by value so that the walk allocates nothing.
type offsets [maxOperands]int

// naryBcast is bcast generalised to up to maxOperands operands: the
// output's dimensions, merged where every operand either advances through
// all of them or is broadcast along all of them, and each operand's stride
// per merged dimension (0 where it is broadcast). The innermost dimension
// is a run: within it every operand's stride is 0 or 1.
type naryBcast struct {
	dims []int
	str  [][]int // str[k][d] is operand k's stride along merged dimension d
}

func newNaryBcast(out []int, operands ...[]int) naryBcast {
	var dims []int
	var broad [][]bool // per merged dimension: which operands are broadcast along it
	for i, d := range out {
		if d == 1 {
			continue // a size-1 dimension never moves an index
		}
		k := len(out) - 1 - i
		bs := make([]bool, len(operands))
		for j, s := range operands {
			bs[j] = dimFromRight(s, k) == 1
		}
		if n := len(dims); n > 0 && slices.Equal(broad[n-1], bs) {
			dims[n-1] *= d
			continue
		}
		dims = append(dims, d)
		broad = append(broad, bs)
	}
	if len(dims) == 0 { // a single element: every stride 0, as in newBcast
		dims = []int{1}
		all := make([]bool, len(operands))
		for j := range all {
			all[j] = true
		}
		broad = [][]bool{all}
	}
	p := naryBcast{dims: dims, str: make([][]int, len(operands))}
	for j := range operands {
		p.str[j] = make([]int, len(dims))
		s := 1
		for d := len(dims) - 1; d >= 0; d-- {
			if !broad[d][j] {
				p.str[j][d] = s
				s *= dims[d]
			}
		}
	}
	return p
}

// run returns the length of the innermost run.
func (p *naryBcast) run() int { return p.dims[len(p.dims)-1] }

// step returns operand k's stride along the innermost run: 1, or 0 where
// the operand is broadcast.
func (p *naryBcast) step(k int) int { return p.str[k][len(p.dims)-1] }

// eachRun calls fn for every innermost run with the run's output offset
// and each operand's offset, walking the outer dimensions with an odometer.
func (p *naryBcast) eachRun(fn func(o int, off offsets)) {
	last := len(p.dims) - 1
	n := p.dims[last]
	total := prod(p.dims)
	var idxBuf [8]int // the odometer, on the stack for up to 9 merged dimensions
	idx := idxBuf[:0]
	if last <= len(idxBuf) {
		idx = idxBuf[:last]
	} else {
		idx = make([]int, last)
	}
	var off offsets
	for o := 0; o < total; o += n {
		fn(o, off)
		for d := last - 1; d >= 0; d-- {
			idx[d]++
			for k := range p.str {
				off[k] += p.str[k][d]
			}
			if idx[d] < p.dims[d] {
				break
			}
			for k := range p.str {
				off[k] -= p.str[k][d] * p.dims[d]
			}
			idx[d] = 0
		}
	}
}

// broadcastAll is broadcastShape over any number of shapes; the result is
// a new slice.
func broadcastAll(shapes ...[]int) ([]int, bool) {
	out := slices.Clone(shapes[0])
	for _, s := range shapes[1:] {
		var ok bool
		if out, ok = broadcastShape(out, s); !ok {
			return nil, false
		}
	}
	return out, true
}

// shapesOf lists the values' shapes, for broadcasting and messages.
func shapesOf(vs ...*value) [][]int {
	s := make([][]int, len(vs))
	for i, v := range vs {
		s[i] = v.shape
	}
	return s
}

// ---- Pow -------------------------------------------------------------------

// buildPow computes x**y with broadcasting. From opset 12 the exponent may
// have another dtype than the base; the result has the base's.
func buildPow(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	x, y := in[0], in[1]
	if err := b.checkDType(x, "base (input 0)", numerics); err != nil {
		return nil, err
	}
	if err := b.checkDType(y, "exponent (input 1)", anyNumber); err != nil {
		return nil, err
	}
	out, ok := broadcastShape(x.shape, y.shape)
	if !ok {
		return nil, b.errInvalid("shapes %v and %v do not broadcast", x.shape, y.shape)
	}
	return one(b.apply(&powKernel{p: newNaryBcast(out, x.shape, y.shape)}, x.dt, out, x, y))
}

type powKernel struct{ p naryBcast }

func (k *powKernel) String() string { return "Pow" }

func (k *powKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	x, y := ins[0], ins[1]
	switch out.Dtype() {
	case gt.Float32:
		return powBase(&k.p, out.Float32s(), x.Float32s(), y)
	case gt.Float64:
		return powBase(&k.p, out.Float64s(), x.Float64s(), y)
	case gt.Int32:
		return powBase(&k.p, out.Int32s(), x.Int32s(), y)
	case gt.Int64:
		return powBase(&k.p, out.Int64s(), x.Int64s(), y)
	}
	return fmt.Errorf("base dtype %v not supported", out.Dtype())
}

func powBase[X number](p *naryBcast, out, x []X, y *gt.Dense) error {
	switch y.Dtype() {
	case gt.Float32:
		pow(p, out, x, y.Float32s())
	case gt.Float64:
		pow(p, out, x, y.Float64s())
	case gt.Int8:
		pow(p, out, x, y.Int8s())
	case gt.Uint8:
		pow(p, out, x, y.Uint8s())
	case gt.Int32:
		pow(p, out, x, y.Int32s())
	case gt.Int64:
		pow(p, out, x, y.Int64s())
	default:
		return fmt.Errorf("exponent dtype %v not supported", y.Dtype())
	}
	return nil
}

// pow computes in float64 and converts to the base's type, as ONNX
// Runtime's std::pow does: integer results are exact up to 2^53.
func pow[X, Y number](p *naryBcast, out []X, x []X, y []Y) {
	n, sx, sy := p.run(), p.step(0), p.step(1)
	p.eachRun(func(o int, off offsets) {
		xs, ys, row := x[off[0]:], y[off[1]:], out[o:o+n]
		for i := range row {
			row[i] = X(math.Pow(float64(xs[i*sx]), float64(ys[i*sy])))
		}
	})
}

// ---- Clip --------------------------------------------------------------------

// buildClip bounds x to [min, max]. Before opset 11 the bounds are float
// attributes defaulting to ∓FLT_MAX; from 11 they are optional scalar
// inputs, computed or constant, and an omitted one does not bound.
func buildClip(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	x := in[0]
	for _, a := range []string{"min", "max"} {
		if err := b.checkAttrOpsets(a, 0, 11); err != nil {
			return nil, err
		}
	}
	var lo, hi *value
	if b.opset < 11 {
		if len(in) > 1 {
			return nil, b.errInvalid("has %d inputs; before opset 11 Clip takes 1 and its bounds as attributes", len(in))
		}
		if err := b.checkDType(x, "input", floats); err != nil {
			return nil, err
		}
		lo = floatScalar(x.dt, n.Float("min", -math.MaxFloat32))
		hi = floatScalar(x.dt, n.Float("max", math.MaxFloat32))
	} else {
		if err := b.checkDType(x, "input", anyNumber); err != nil {
			return nil, err
		}
		lo, hi = optional(in, 1), optional(in, 2)
		for i, v := range []*value{lo, hi} {
			if v == nil {
				continue
			}
			if v.dt != x.dt {
				return nil, b.errInvalid("bound (input %d) has dtype %v, want %v like the input", i+1, v.dt, x.dt)
			}
			if prod(v.shape) != 1 {
				return nil, b.errInvalid("bound (input %d) has shape %v, want a scalar", i+1, v.shape)
			}
		}
	}
	k := &clipKernel{hasLo: lo != nil, hasHi: hi != nil}
	args := []*value{x}
	for _, v := range []*value{lo, hi} {
		if v != nil {
			args = append(args, v)
		}
	}
	return one(b.apply(k, x.dt, x.shape, args...))
}

// floatScalar makes a constant scalar of a float dtype.
func floatScalar(dt tensor.DType, f float32) *value {
	t := &tensor.Tensor{DType: dt, Shape: []int64{}}
	if dt == tensor.Float64 {
		t.Data = []float64{float64(f)}
	} else {
		t.Data = []float32{f}
	}
	return constValue(t)
}

// clipKernel takes x, then the lower bound if hasLo, then the upper if
// hasHi. When min > max every element becomes max, as ONNX specifies; NaN
// stays NaN.
type clipKernel struct{ hasLo, hasHi bool }

func (k *clipKernel) String() string { return fmt.Sprintf("Clip(min=%t, max=%t)", k.hasLo, k.hasHi) }

func (k *clipKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	switch out.Dtype() {
	case gt.Float32:
		clipRun(k, out.Float32s(), ins, (*gt.Dense).Float32s)
	case gt.Float64:
		clipRun(k, out.Float64s(), ins, (*gt.Dense).Float64s)
	case gt.Int8:
		clipRun(k, out.Int8s(), ins, (*gt.Dense).Int8s)
	case gt.Uint8:
		clipRun(k, out.Uint8s(), ins, (*gt.Dense).Uint8s)
	case gt.Int32:
		clipRun(k, out.Int32s(), ins, (*gt.Dense).Int32s)
	case gt.Int64:
		clipRun(k, out.Int64s(), ins, (*gt.Dense).Int64s)
	default:
		return fmt.Errorf("dtype %v not supported", out.Dtype())
	}
	return nil
}

func clipRun[T number](k *clipKernel, out []T, ins []*gt.Dense, data func(*gt.Dense) []T) {
	var lo, hi T
	next := 1
	if k.hasLo {
		lo = data(ins[next])[0]
		next++
	}
	if k.hasHi {
		hi = data(ins[next])[0]
	}
	x := data(ins[0])[:len(out)]
	for i, v := range x {
		if k.hasLo && v < lo {
			v = lo
		}
		if k.hasHi && v > hi {
			v = hi
		}
		out[i] = v
	}
}

// ---- Min Max Sum Mean --------------------------------------------------------

type variadicOp uint8

const (
	varMin variadicOp = iota
	varMax
	varSum
	varMean
)

func (op variadicOp) String() string { return [...]string{"Min", "Max", "Sum", "Mean"}[op] }

// buildVariadic builds Min, Max, Sum or Mean of one or more inputs of one
// dtype, all broadcast together.
func buildVariadic(op variadicOp) buildFunc {
	return func(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
		allowed := anyNumber
		if op == varSum || op == varMean {
			allowed = floats
		}
		for i, v := range in {
			if v == nil {
				return nil, b.errInvalid("input %d is empty", i)
			}
			if err := b.checkDType(v, fmt.Sprintf("input %d", i), allowed); err != nil {
				return nil, err
			}
			if v.dt != in[0].dt {
				return nil, b.errInvalid("input %d has dtype %v, want %v like input 0", i, v.dt, in[0].dt)
			}
		}
		out, ok := broadcastAll(shapesOf(in...)...)
		if !ok {
			return nil, b.errInvalid("input shapes %v do not broadcast", shapesOf(in...))
		}
		k := &variadicKernel{op: op, plans: make([]naryBcast, len(in))}
		for i, v := range in {
			k.plans[i] = newNaryBcast(out, v.shape)
		}
		return one(b.apply(k, in[0].dt, out, in...))
	}
}

// variadicKernel folds its inputs into the output one at a time: the
// first is copied (broadcast) into it, each next one combined in place.
// plans[i] broadcasts input i to the output.
type variadicKernel struct {
	op    variadicOp
	plans []naryBcast
}

func (k *variadicKernel) String() string { return fmt.Sprintf("%v(%d inputs)", k.op, len(k.plans)) }

func (k *variadicKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	switch out.Dtype() {
	case gt.Float32:
		o := out.Float32s()
		for i, in := range ins {
			variadicStep(k.op, &k.plans[i], i == 0, o, in.Float32s())
		}
		meanOf(k.op, o, len(ins))
	case gt.Float64:
		o := out.Float64s()
		for i, in := range ins {
			variadicStep(k.op, &k.plans[i], i == 0, o, in.Float64s())
		}
		meanOf(k.op, o, len(ins))
	case gt.Int8:
		o := out.Int8s()
		for i, in := range ins {
			variadicStep(k.op, &k.plans[i], i == 0, o, in.Int8s())
		}
	case gt.Uint8:
		o := out.Uint8s()
		for i, in := range ins {
			variadicStep(k.op, &k.plans[i], i == 0, o, in.Uint8s())
		}
	case gt.Int32:
		o := out.Int32s()
		for i, in := range ins {
			variadicStep(k.op, &k.plans[i], i == 0, o, in.Int32s())
		}
	case gt.Int64:
		o := out.Int64s()
		for i, in := range ins {
			variadicStep(k.op, &k.plans[i], i == 0, o, in.Int64s())
		}
	default:
		return fmt.Errorf("dtype %v not supported", out.Dtype())
	}
	return nil
}

func variadicStep[T number](op variadicOp, p *naryBcast, first bool, out, x []T) {
	n, s := p.run(), p.step(0)
	p.eachRun(func(o int, off offsets) {
		xs, row := x[off[0]:], out[o:o+n]
		switch {
		case first:
			for i := range row {
				row[i] = xs[i*s]
			}
		case op == varMin:
			for i := range row {
				row[i] = lesser(row[i], xs[i*s])
			}
		case op == varMax:
			for i := range row {
				row[i] = greater(row[i], xs[i*s])
			}
		default: // Sum, Mean
			for i := range row {
				row[i] += xs[i*s]
			}
		}
	})
}

func meanOf[T float32 | float64](op variadicOp, out []T, count int) {
	if op != varMean {
		return
	}
	for i := range out {
		out[i] /= T(count)
	}
}

// lesser and greater propagate NaN, as numpy's minimum and maximum (ONNX's
// reference) do; for integers the NaN test is always false.
func lesser[T number](a, b T) T {
	if a < b || a != a {
		return a
	}
	return b
}

func greater[T number](a, b T) T {
	if a > b || a != a {
		return a
	}
	return b
}
