package runtime

import (
	"fmt"
	"slices"
	"strings"

	G "gorgonia.org/gorgonia"

	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/tensor"
)

// buildFunc adds one ONNX node to the graph under construction (or folds
// it, when all its inputs are constants) and returns its outputs. in holds
// the node's inputs in order, nil for an omitted optional one. Attributes
// arrive type-checked by onnx.Decode; their values and the shapes are
// checked here, before any kernel sees them.
type buildFunc func(b *builder, n *onnx.Node, in []*value) ([]*value, error)

type opKey struct{ domain, opType string }

// builders has an entry for every operator onnx.Decode accepts (a test
// checks the two lists agree). Each family of operators adds its own with
// registerBuilders in its file's init.
var builders = map[opKey]buildFunc{
	{onnx.DomainDefault, "Add"}:              buildBinary(opAdd),
	{onnx.DomainDefault, "Sub"}:              buildBinary(opSub),
	{onnx.DomainDefault, "Mul"}:              buildBinary(opMul),
	{onnx.DomainDefault, "Div"}:              buildBinary(opDiv),
	{onnx.DomainDefault, "MatMul"}:           buildMatMul,
	{onnx.DomainDefault, "Gemm"}:             buildGemm,
	{onnx.DomainDefault, "Relu"}:             buildRelu,
	{onnx.DomainDefault, "Sigmoid"}:          buildGorgoniaUnary(G.Sigmoid),
	{onnx.DomainDefault, "Tanh"}:             buildGorgoniaUnary(G.Tanh),
	{onnx.DomainDefault, "Softmax"}:          buildSoftmax(false),
	{onnx.DomainDefault, "Flatten"}:          buildFlatten,
	{onnx.DomainDefault, "Reshape"}:          buildReshape,
	{onnx.DomainDefault, "Identity"}:         buildIdentity,
	{onnx.DomainDefault, "Constant"}:         buildConstant,
	{onnx.DomainDefault, "Cast"}:             buildCast,
	{onnx.DomainML, "ArrayFeatureExtractor"}: buildArrayFeatureExtractor,
}

// registerBuilders adds a family of operators' builders.
func registerBuilders(domain string, m map[string]buildFunc) {
	for op, f := range m {
		k := opKey{domain, op}
		if _, dup := builders[k]; dup {
			panic("runtime: operator " + domain + "." + op + " registered twice")
		}
		builders[k] = f
	}
}

var (
	floats   = []tensor.DType{tensor.Float32, tensor.Float64}
	numerics = []tensor.DType{tensor.Float32, tensor.Float64, tensor.Int32, tensor.Int64}
)

// optional returns input i, or nil when the node omits it.
func optional(in []*value, i int) *value {
	if i < len(in) {
		return in[i]
	}
	return nil
}

func one(v *value, err error) ([]*value, error) {
	if err != nil {
		return nil, err
	}
	return []*value{v}, nil
}

// checkDType refuses a dtype the op does not compute with.
func (b *builder) checkDType(v *value, which string, allowed []tensor.DType) error {
	if slices.Contains(allowed, v.dt) {
		return nil
	}
	names := make([]string, len(allowed))
	for i, d := range allowed {
		names[i] = d.String()
	}
	return b.errUnsupported("%s has dtype %v (supported: %s)", which, v.dt, strings.Join(names, ", "))
}

// normAxis maps a possibly negative axis into [0, rank) (or [0, rank] when
// inclusive, as Flatten allows).
func (b *builder) normAxis(axis int64, rank int, inclusive bool) (int, error) {
	hi := int64(rank)
	if inclusive {
		hi++
	}
	if axis < -int64(rank) || axis >= hi {
		return 0, b.errInvalid("axis %d is out of range for rank %d", axis, rank)
	}
	if axis < 0 {
		axis += int64(rank)
	}
	return int(axis), nil
}

func buildBinary(op binOp) buildFunc {
	return func(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
		x, y := in[0], in[1]
		if x.dt != y.dt {
			return nil, b.errInvalid("operand dtypes %v and %v differ", x.dt, y.dt)
		}
		if err := b.checkDType(x, "input", numerics); err != nil {
			return nil, err
		}
		out, ok := broadcastShape(x.shape, y.shape)
		if !ok {
			return nil, b.errInvalid("shapes %v and %v do not broadcast", x.shape, y.shape)
		}
		return one(b.apply(&binaryKernel{op: op, p: newBcast(out, x.shape, y.shape)}, x.dt, out, x, y))
	}
}

func buildRelu(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	x := in[0]
	if err := b.checkDType(x, "input", []tensor.DType{tensor.Float32, tensor.Float64, tensor.Int8, tensor.Int32, tensor.Int64}); err != nil {
		return nil, err
	}
	return one(b.apply(reluKernel{}, x.dt, x.shape, x))
}

// buildGorgoniaUnary uses one of Gorgonia's elementwise float ops.
func buildGorgoniaUnary(fn func(*G.Node) (*G.Node, error)) buildFunc {
	return func(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
		if err := b.checkDType(in[0], "input", floats); err != nil {
			return nil, err
		}
		return one(b.applyGorgonia(func(ns ...*G.Node) (*G.Node, error) { return fn(ns[0]) }, in[0]))
	}
}

func buildIdentity(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	return []*value{in[0]}, nil
}

func buildConstant(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	var t *tensor.Tensor
	switch {
	case n.Has("value"):
		t = n.Tensor("value")
	case n.Has("value_float"):
		t = &tensor.Tensor{DType: tensor.Float32, Shape: []int64{}, Data: []float32{n.Float("value_float", 0)}}
	case n.Has("value_floats"):
		fs := n.Floats("value_floats", nil)
		t = &tensor.Tensor{DType: tensor.Float32, Shape: []int64{int64(len(fs))}, Data: fs}
	case n.Has("value_int"):
		t = &tensor.Tensor{DType: tensor.Int64, Shape: []int64{}, Data: []int64{n.Int("value_int", 0)}}
	case n.Has("value_ints"):
		is := n.Ints("value_ints", nil)
		t = &tensor.Tensor{DType: tensor.Int64, Shape: []int64{int64(len(is))}, Data: is}
	default:
		return nil, b.errInvalid("no value attribute")
	}
	return []*value{constValue(t)}, nil
}

func buildCast(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	x := in[0]
	if !n.Has("to") {
		return nil, b.errInvalid("attribute \"to\" is required")
	}
	to, err := onnx.DTypeFromProto(n.Int("to", 0))
	if err != nil {
		return nil, fmt.Errorf("%s: attribute \"to\": %w", n.Describe(), err)
	}
	if to == x.dt {
		return []*value{x}, nil
	}
	return one(b.apply(castKernel{desc: "Cast(to=" + to.String() + ")"}, to, x.shape, x))
}

func buildReshape(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	x, s := in[0], in[1]
	if s.konst == nil {
		return nil, b.errNeedsConstant(1, "the shape (input %q) must be a constant: an initializer or a Constant", n.Inputs[1])
	}
	if s.dt != tensor.Int64 || len(s.shape) != 1 {
		return nil, b.errInvalid("the shape must be a 1-D int64 tensor, got %v%v", s.dt, s.shape)
	}
	out, err := reshapeTarget(x.shape, s.konst.Data.([]int64), n.Int("allowzero", 0) != 0)
	if err != nil {
		return nil, b.errInvalid("%v", err)
	}
	if slices.Equal(out, x.shape) {
		return []*value{x}, nil
	}
	return one(b.apply(copyKernel{desc: "Reshape"}, x.dt, out, x))
}

// reshapeTarget resolves ONNX Reshape's shape: 0 copies the input's
// dimension (unless allowZero), one -1 takes what is left.
func reshapeTarget(in []int, spec []int64, allowZero bool) ([]int, error) {
	total := 1
	for _, d := range in {
		total *= d
	}
	out := make([]int, len(spec))
	infer, known := -1, 1
	for i, d := range spec {
		switch {
		case d == -1:
			if infer >= 0 {
				return nil, fmt.Errorf("shape %v has more than one -1", spec)
			}
			infer = i
			continue
		case d == 0 && !allowZero:
			if i >= len(in) {
				return nil, fmt.Errorf("shape %v copies dimension %d, which input shape %v lacks", spec, i, in)
			}
			out[i] = in[i]
		case d < 0:
			return nil, fmt.Errorf("shape %v has dimension %d", spec, d)
		case d > tensor.MaxElements:
			return nil, fmt.Errorf("shape %v has more than %d elements", spec, tensor.MaxElements)
		default:
			out[i] = int(d)
		}
		if out[i] != 0 && known > tensor.MaxElements/out[i] {
			return nil, fmt.Errorf("shape %v has more than %d elements", spec, tensor.MaxElements)
		}
		known *= out[i]
	}
	if infer >= 0 {
		if allowZero && slices.Contains(spec, 0) {
			return nil, fmt.Errorf("shape %v has both 0 and -1 with allowzero", spec)
		}
		if known == 0 || total%known != 0 {
			return nil, fmt.Errorf("cannot reshape %v to %v", in, spec)
		}
		out[infer] = total / known
	} else if known != total {
		return nil, fmt.Errorf("cannot reshape %v (%d elements) to %v", in, total, out)
	}
	return out, nil
}

func buildFlatten(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	x := in[0]
	axis, err := b.normAxis(n.Int("axis", 1), len(x.shape), true)
	if err != nil {
		return nil, err
	}
	out := []int{prod(x.shape[:axis]), prod(x.shape[axis:])}
	if slices.Equal(out, x.shape) {
		return []*value{x}, nil
	}
	return one(b.apply(copyKernel{desc: "Flatten"}, x.dt, out, x))
}

func prod(s []int) int {
	p := 1
	for _, d := range s {
		p *= d
	}
	return p
}

// buildSoftmax builds Softmax, or LogSoftmax when log, following the
// opset: from 13 it runs along one axis (default -1); before, the input is
// coerced to 2-D at axis (default 1) and it runs over everything from axis
// on.
func buildSoftmax(log bool) buildFunc {
	op := "Softmax"
	if log {
		op = "LogSoftmax"
	}
	return func(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
		x := in[0]
		if err := b.checkDType(x, "input", floats); err != nil {
			return nil, err
		}
		if len(x.shape) == 0 {
			return nil, b.errInvalid("input is a scalar, want rank >= 1")
		}
		k := &softmaxKernel{log: log}
		if b.opset >= 13 {
			axis, err := b.normAxis(n.Int("axis", -1), len(x.shape), false)
			if err != nil {
				return nil, err
			}
			k.axisLayout = layoutAround(x.shape, axis)
			k.desc = fmt.Sprintf("%s(axis=%d)", op, axis)
		} else {
			axis, err := b.normAxis(n.Int("axis", 1), len(x.shape), false)
			if err != nil {
				return nil, err
			}
			k.axisLayout = axisLayout{outer: prod(x.shape[:axis]), n: prod(x.shape[axis:]), inner: 1}
			k.desc = fmt.Sprintf("%s(axis=%d, 2-D)", op, axis)
		}
		return one(b.apply(k, x.dt, x.shape, x))
	}
}

// buildArrayFeatureExtractor follows ONNX Runtime: the indices (flattened)
// select along the last axis of x; a 1-D x gives [1 count].
func buildArrayFeatureExtractor(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	x, y := in[0], in[1]
	if err := b.checkDType(x, "input X", numerics); err != nil {
		return nil, err
	}
	if err := b.checkDType(y, "input Y", []tensor.DType{tensor.Int64}); err != nil {
		return nil, err
	}
	if len(x.shape) == 0 {
		return nil, b.errInvalid("input X is a scalar, want rank >= 1")
	}
	stride, count := x.shape[len(x.shape)-1], prod(y.shape)
	if count == 0 {
		return nil, b.errInvalid("input Y is empty")
	}
	if y.konst != nil {
		for _, i := range y.konst.Data.([]int64) {
			if i < 0 || i >= int64(stride) {
				return nil, b.errInvalid("index %d is out of range [0, %d)", i, stride)
			}
		}
	}
	out := append(slices.Clone(x.shape[:len(x.shape)-1]), count)
	if len(x.shape) == 1 {
		out = []int{1, count}
	}
	k := &gatherLastKernel{rows: prod(x.shape[:len(x.shape)-1]), stride: stride, count: count}
	return one(b.apply(k, x.dt, out, x, y))
}

func buildMatMul(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	x, y := in[0], in[1]
	if x.dt != y.dt {
		return nil, b.errInvalid("operand dtypes %v and %v differ", x.dt, y.dt)
	}
	if err := b.checkDType(x, "input", numerics); err != nil {
		return nil, err
	}
	if len(x.shape) == 0 || len(y.shape) == 0 {
		return nil, b.errInvalid("operands %v and %v: MatMul needs rank >= 1", x.shape, y.shape)
	}
	if len(x.shape) == 2 && len(y.shape) == 2 && slices.Contains(floats, x.dt) {
		if x.shape[1] != y.shape[0] {
			return nil, b.errInvalid("cannot multiply %v by %v", x.shape, y.shape)
		}
		return one(b.applyGorgonia(func(ns ...*G.Node) (*G.Node, error) { return G.Mul(ns[0], ns[1]) }, x, y))
	}
	k, out, err := matmulPlan(x.shape, y.shape)
	if err != nil {
		return nil, b.errInvalid("%v", err)
	}
	if slices.Contains(floats, x.dt) {
		// Stacks of float matrices: one BLAS GEMM per matrix.
		return one(b.apply(blasMatmulKernel{k}, x.dt, out, x, y))
	}
	return one(b.apply(k, x.dt, out, x, y))
}

// matmulPlan works out numpy matmul's output shape and, for every output
// matrix, where its operands start (broadcast batch dimensions repeat an
// operand matrix).
func matmulPlan(as, bs []int) (*matmulKernel, []int, error) {
	a2, b2 := as, bs
	if len(as) == 1 {
		a2 = []int{1, as[0]}
	}
	if len(bs) == 1 {
		b2 = []int{bs[0], 1}
	}
	m, k := a2[len(a2)-2], a2[len(a2)-1]
	k2, nn := b2[len(b2)-2], b2[len(b2)-1]
	if k != k2 {
		return nil, nil, fmt.Errorf("cannot multiply %v by %v", as, bs)
	}
	batchA, batchB := a2[:len(a2)-2], b2[:len(b2)-2]
	batch, ok := broadcastShape(batchA, batchB)
	if !ok {
		return nil, nil, fmt.Errorf("batch dimensions of %v and %v do not broadcast", as, bs)
	}
	kern := &matmulKernel{m: m, k: k, n: nn}
	count := prod(batch)
	kern.aOff, kern.bOff = make([]int, count), make([]int, count)
	// Matrix strides of each operand over the broadcast batch dimensions
	// (0 where the operand has size 1 and is repeated).
	strideOf := func(own []int) []int {
		str := make([]int, len(batch))
		s := 1
		for i := len(batch) - 1; i >= 0; i-- {
			d := dimFromRight(own, len(batch)-1-i)
			if d != 1 {
				str[i] = s
			}
			s *= d
		}
		return str
	}
	sa, sb := strideOf(batchA), strideOf(batchB)
	idx := make([]int, len(batch))
	for c := range count {
		oa, ob := 0, 0
		for i := range batch {
			oa += idx[i] * sa[i]
			ob += idx[i] * sb[i]
		}
		kern.aOff[c], kern.bOff[c] = oa*m*k, ob*k*nn
		for i := len(batch) - 1; i >= 0; i-- {
			if idx[i]++; idx[i] < batch[i] {
				break
			}
			idx[i] = 0
		}
	}
	out := slices.Clone(batch)
	if len(as) > 1 {
		out = append(out, m)
	}
	if len(bs) > 1 {
		out = append(out, nn)
	}
	return kern, out, nil
}

// buildGemm computes alpha*A'*B' + beta*C. Transposes and scalings of
// constants fold at compile time (the common case: weights), so a typical
// Gemm runs as one Gorgonia matrix product and one broadcast add.
func buildGemm(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	a, w, c := in[0], in[1], optional(in, 2)
	if a.dt != w.dt || (c != nil && c.dt != a.dt) {
		return nil, b.errInvalid("operand dtypes differ")
	}
	if err := b.checkDType(a, "input A", floats); err != nil {
		return nil, err
	}
	if len(a.shape) != 2 || len(w.shape) != 2 {
		return nil, b.errInvalid("A %v and B %v must be matrices", a.shape, w.shape)
	}
	var err error
	if n.Int("transA", 0) != 0 {
		if a, err = b.transpose(a); err != nil {
			return nil, err
		}
	}
	if n.Int("transB", 0) != 0 {
		if w, err = b.transpose(w); err != nil {
			return nil, err
		}
	}
	if a.shape[1] != w.shape[0] {
		return nil, b.errInvalid("cannot multiply A' %v by B' %v", a.shape, w.shape)
	}
	alpha, beta := n.Float("alpha", 1), n.Float("beta", 1)
	scaled := alpha == 1
	if !scaled && w.konst != nil {
		if w, err = b.scale(w, alpha); err != nil {
			return nil, err
		}
		scaled = true
	}
	y, err := b.applyGorgonia(func(ns ...*G.Node) (*G.Node, error) { return G.Mul(ns[0], ns[1]) }, a, w)
	if err != nil {
		return nil, err
	}
	if !scaled {
		if y, err = b.scale(y, alpha); err != nil {
			return nil, err
		}
	}
	if c == nil || beta == 0 {
		return []*value{y}, nil
	}
	if out, ok := broadcastShape(y.shape, c.shape); !ok || !slices.Equal(out, y.shape) {
		return nil, b.errInvalid("C %v does not broadcast to %v", c.shape, y.shape)
	}
	if beta != 1 {
		if c, err = b.scale(c, beta); err != nil {
			return nil, err
		}
	}
	return one(b.apply(&binaryKernel{op: opAdd, p: newBcast(y.shape, y.shape, c.shape)}, y.dt, y.shape, y, c))
}

func (b *builder) transpose(v *value) (*value, error) {
	r, c := v.shape[0], v.shape[1]
	return b.apply(&transposeKernel{rows: r, cols: c}, v.dt, []int{c, r}, v)
}

// scale multiplies v by a float attribute.
func (b *builder) scale(v *value, f float32) (*value, error) {
	s := &tensor.Tensor{DType: v.dt, Shape: []int64{}}
	switch v.dt {
	case tensor.Float32:
		s.Data = []float32{f}
	case tensor.Float64:
		s.Data = []float64{float64(f)}
	default:
		return nil, b.errUnsupported("scaling %v", v.dt)
	}
	return b.apply(&binaryKernel{op: opMul, p: newBcast(v.shape, v.shape, nil)}, v.dt, v.shape, v, constValue(s))
}
