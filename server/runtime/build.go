package runtime

import (
	"errors"
	"fmt"
	"slices"
	"strconv"

	G "gorgonia.org/gorgonia"
	gt "gorgonia.org/tensor"

	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/tensor"
)

// value is an ONNX value while a graph is built: a constant known at
// compile time, or a Gorgonia node computed on every run.
type value struct {
	dt    tensor.DType
	shape []int
	konst *tensor.Tensor
	node  *G.Node
}

func (v *value) sig() sig { return sig{gtDType(v.dt), len(v.shape)} }

// constValue wraps a host tensor as a constant value.
func constValue(t *tensor.Tensor) *value {
	return &value{dt: t.DType, shape: intShape(t.Shape), konst: t}
}

// builder turns ONNX nodes into ops of one Gorgonia graph. With no graph
// it folds constants: every op whose inputs are all constants runs once,
// at compile time, through the same kernels.
type builder struct {
	g      *G.ExprGraph // nil while folding constants
	opset  int64
	faults *faults
	consts map[*tensor.Tensor]*G.Node // constants already made nodes of g
	node   *onnx.Node                 // the ONNX node being built
	seq    int                        // ops made so far
	bytes  int64                      // size of the values made so far
	// needConst collects the names of values an op needed as constants
	// but got computed; nil when nobody asks.
	needConst map[string]bool
	// fused holds the weights of the plan's fused nodes (fuse.go).
	fused *fusion
}

// errNeedsConstant refuses input i of the node being built, computed at run
// time, which the op needs as a constant (it decides an output's shape),
// and records its name: Compile specialises graphs on the values of graph
// inputs used this way.
func (b *builder) errNeedsConstant(i int, format string, args ...any) error {
	if b.needConst != nil && i < len(b.node.Inputs) {
		b.needConst[b.node.Inputs[i]] = true
	}
	return b.errUnsupported(format, args...)
}

// errInvalid and errUnsupported blame the node being built.
func (b *builder) errInvalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", onnx.ErrInvalidModel, b.node.Describe(), fmt.Sprintf(format, args...))
}

func (b *builder) errUnsupported(format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", onnx.ErrUnsupported, b.node.Describe(), fmt.Sprintf(format, args...))
}

// nextID names the next Gorgonia op node: the ONNX node's name for
// reading, and a counter so that the name is unique in the graph whatever
// the ONNX names are.
func (b *builder) nextID() string {
	b.seq++
	return b.node.Name + "#" + strconv.Itoa(b.seq)
}

// apply adds a kernel of Corvid's own producing a dt tensor of shape.
func (b *builder) apply(k kernel, dt tensor.DType, shape []int, in ...*value) (*value, error) {
	ins := make([]sig, len(in))
	for i, v := range in {
		ins[i] = v.sig()
	}
	op := &customOp{
		k:      k,
		id:     b.nextID(),
		desc:   b.node.Describe(),
		ins:    ins,
		outSig: sig{gtDType(dt), len(shape)},
		shape:  gt.Shape(slices.Clone(shape)),
		faults: b.faults,
	}
	return b.add(op, op.id, dt, shape, in)
}

// applyGorgonia adds one of Gorgonia's own ops: mk builds it on
// placeholders in a scratch graph, and the op is taken from there and
// wrapped, so that its panics are recovered like those of Corvid's ops.
func (b *builder) applyGorgonia(mk func(...*G.Node) (*G.Node, error), in ...*value) (*value, error) {
	scratch := G.NewGraph()
	ph := make([]*G.Node, len(in))
	for i, v := range in {
		ph[i] = G.NewTensor(scratch, gtDType(v.dt), len(v.shape), G.WithShape(v.shape...), G.WithName("arg"+strconv.Itoa(i)))
	}
	n, err := mk(ph...)
	if err != nil {
		return nil, b.errInvalid("%v", err)
	}
	dt, err := corvidDType(n.Dtype())
	if err != nil {
		return nil, b.errUnsupported("%v", err)
	}
	op := &guardedOp{Op: n.Op(), id: b.nextID(), desc: b.node.Describe(), faults: b.faults}
	return b.add(op, op.id, dt, slices.Clone([]int(n.Shape())), in)
}

func (b *builder) add(op G.Op, id string, dt tensor.DType, shape []int, in []*value) (*value, error) {
	if err := b.reserve(dt, shape); err != nil {
		return nil, fmt.Errorf("%s: %w", b.node.Describe(), err)
	}
	if !slices.ContainsFunc(in, func(v *value) bool { return v.konst == nil }) {
		return b.fold(op, dt, shape, in)
	}
	if b.g == nil {
		return nil, errors.New("folding constants met a computed value") // a bug: callers only fold all-constant nodes
	}
	children := make([]*G.Node, len(in))
	for i, v := range in {
		children[i] = b.nodeOf(v)
	}
	n, err := G.ApplyOpWithName(op, id, children...)
	if err != nil {
		return nil, b.errInvalid("%v", err)
	}
	if got := []int(n.Shape()); !slices.Equal(got, shape) {
		return nil, fmt.Errorf("%s: Gorgonia inferred shape %v, want %v", b.node.Describe(), got, shape)
	}
	return &value{dt: dt, shape: slices.Clone(shape), node: n}, nil
}

// MaxGraphBytes bounds the memory one compiled graph may compute into (its
// inputs and every intermediate value, at the largest batch), and so each
// constant folded at compile time. Shapes come from the model file: a small
// file can declare a huge input, or broadcast two small tensors into a huge
// one, and the limit refuses it before anything is allocated.
const MaxGraphBytes = 1 << 30

// reserve accounts for a value of dt and shape about to be made, refusing
// one that would take the graph past MaxGraphBytes.
func (b *builder) reserve(dt tensor.DType, shape []int) error {
	n, err := tensor.NumElements(int64Shape(shape))
	if err != nil {
		return fmt.Errorf("%w: %w", onnx.ErrUnsupported, err)
	}
	size := int64(n) * int64(dt.Size())
	if b.bytes+size > MaxGraphBytes {
		return fmt.Errorf("%w: a value of shape %v (%v) takes the graph past %d MiB", onnx.ErrUnsupported, shape, dt, MaxGraphBytes>>20)
	}
	b.bytes += size
	return nil
}

// fold runs op at once on constant inputs.
func (b *builder) fold(op G.Op, dt tensor.DType, shape []int, in []*value) (*value, error) {
	vals := make([]G.Value, len(in))
	for i, v := range in {
		vals[i] = denseOf(v.konst)
	}
	out, err := op.Do(vals...)
	if err != nil {
		return nil, b.errInvalid("computing a constant: %v", err)
	}
	d, err := asDense(out)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.node.Describe(), err)
	}
	// The op was made for this call only, so its output is not reused and
	// its data can become the constant without a copy.
	t := &tensor.Tensor{DType: dt, Shape: int64Shape(shape), Data: denseSlice(d)}
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("%s: constant: %w", b.node.Describe(), err)
	}
	return constValue(t), nil
}

// nodeOf returns v's node in the graph, making constants input nodes on
// first use. Constants are inputs rather than Gorgonia constants: input
// nodes hash by name only (a constant hashes its whole value), and the
// register allocator keeps inputs live for the whole program, so no op
// ever writes into them.
func (b *builder) nodeOf(v *value) *G.Node {
	if v.node != nil {
		return v.node
	}
	if n, ok := b.consts[v.konst]; ok {
		return n
	}
	name := "const#" + strconv.Itoa(len(b.consts))
	n := G.NewTensor(b.g, gtDType(v.dt), len(v.shape), G.WithShape(v.shape...), G.WithName(name), G.WithValue(denseOf(v.konst)))
	b.consts[v.konst] = n
	return n
}

// denseOf wraps a host tensor's data in a Gorgonia tensor without copying.
// Each call makes its own header: Gorgonia reshapes the values it binds,
// and a header shared by graphs built concurrently would race.
func denseOf(t *tensor.Tensor) *gt.Dense {
	return gt.New(gt.Of(gtDType(t.DType)), gt.WithShape(intShape(t.Shape)...), gt.WithBacking(t.Data))
}

func corvidDType(dt gt.Dtype) (tensor.DType, error) {
	switch dt {
	case gt.Float32:
		return tensor.Float32, nil
	case gt.Float64:
		return tensor.Float64, nil
	case gt.Int8:
		return tensor.Int8, nil
	case gt.Uint8:
		return tensor.Uint8, nil
	case gt.Int32:
		return tensor.Int32, nil
	case gt.Int64:
		return tensor.Int64, nil
	case gt.Bool:
		return tensor.Bool, nil
	}
	return tensor.Invalid, fmt.Errorf("gorgonia dtype %v has no Corvid dtype", dt)
}

func intShape(s []int64) []int {
	out := make([]int, len(s))
	for i, d := range s {
		out[i] = int(d)
	}
	return out
}

func int64Shape(s []int) []int64 {
	out := make([]int64, len(s))
	for i, d := range s {
		out[i] = int64(d)
	}
	return out
}
