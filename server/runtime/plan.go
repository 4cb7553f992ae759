package runtime

import (
	"fmt"
	"maps"
	"slices"

	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/tensor"
)

// plan is what Compile works out once per model and every graph instance
// shares: the constants (initializers, and the outputs of nodes whose
// inputs are all constants, computed once) and the nodes left to compute
// on every run. It is immutable after Compile.
type plan struct {
	g      *onnx.Graph
	consts map[string]*tensor.Tensor
	steps  []*onnx.Node
	fused  fusion
}

func newPlan(g *onnx.Graph, mode Quantization, ranges map[string]Range) (*plan, error) {
	p := &plan{g: g, consts: maps.Clone(g.Initializers)}
	if p.consts == nil {
		p.consts = make(map[string]*tensor.Tensor)
	}
	// One builder for all folding, so MaxGraphBytes bounds the folded
	// constants together.
	b := &builder{opset: g.Opset(), faults: &faults{}}
	for i := range g.Nodes {
		n := &g.Nodes[i]
		foldable := true
		for _, name := range n.Inputs {
			if _, ok := p.consts[name]; name != "" && !ok {
				foldable = false
				break
			}
		}
		if !foldable {
			p.steps = append(p.steps, n)
			continue
		}
		in := make([]*value, len(n.Inputs))
		for j, name := range n.Inputs {
			if name != "" {
				in[j] = constValue(p.consts[name])
			}
		}
		outs, err := b.build(n, in)
		if err != nil {
			return nil, err
		}
		for j, v := range outs {
			if v.konst == nil {
				return nil, fmt.Errorf("%s: folding did not give a constant", n.Describe()) // a bug
			}
			p.consts[n.Outputs[j]] = v.konst
		}
	}
	if unfused && mode == QuantFP32 {
		return p, nil
	}
	if err := p.fuse(mode, ranges); err != nil {
		return nil, err
	}
	return p, nil
}

// build adds one ONNX node through its buildFunc, checking it returned one
// value per declared output.
func (b *builder) build(n *onnx.Node, in []*value) ([]*value, error) {
	fn, ok := builders[opKey{n.Domain, n.OpType}]
	if !ok {
		// onnx.Decode refuses operators without a builder; a Graph made by
		// hand may not have gone through it.
		return nil, fmt.Errorf("%w: %s: operator is not supported", onnx.ErrUnsupported, n.Describe())
	}
	b.node = n
	outs, err := fn(b, n, in)
	if err != nil {
		return nil, err
	}
	if len(outs) < len(n.Outputs) {
		return nil, fmt.Errorf("%w: %s has %d outputs, the operator makes %d", onnx.ErrInvalidModel, n.Describe(), len(n.Outputs), len(outs))
	}
	return outs[:len(n.Outputs)], nil
}

// batchAxes tells, for each value, which of its axes grow with the batch:
// those whose size differs between graphs built for different batch sizes.
type batchAxes map[string][]bool

func findBatchAxes(shapes []map[string][]int) (batchAxes, error) {
	deps := make(batchAxes, len(shapes[0]))
	for name, s0 := range shapes[0] {
		dep := make([]bool, len(s0))
		for _, sh := range shapes[1:] {
			s := sh[name]
			if len(s) != len(s0) {
				return nil, fmt.Errorf("%w: value %q has rank %d or %d depending on the batch size", onnx.ErrUnsupported, name, len(s0), len(s))
			}
			for i := range s {
				dep[i] = dep[i] || s[i] != s0[i]
			}
		}
		deps[name] = dep
	}
	return deps, nil
}

func (d batchAxes) any(name string) bool { return slices.Contains(d[name], true) }

// checkBatchSafe refuses nodes that would mix the rows of a batch: padding
// a batch to its bucket is only invisible if no op lets a padding row
// change a real one. A node that reads a batch-dependent value but makes
// none reduced over the batch (ArgMax along it, a product contracting it);
// a Softmax (or LogSoftmax) along a batch-dependent axis normalises across
// items.
func (p *plan) checkBatchSafe(deps batchAxes) error {
	shapeOnly, err := p.checkShapeOpsBatch(deps) // ops_shape.go
	if err != nil {
		return err
	}
	for _, n := range p.steps {
		if shapeOnly[n] {
			continue
		}
		in, out := false, false
		for _, name := range n.Inputs {
			in = in || (name != "" && deps.any(name))
		}
		for _, name := range n.Outputs {
			out = out || (name != "" && deps.any(name))
		}
		if in && !out {
			return fmt.Errorf("%w: %s combines items across the batch dimension%s", onnx.ErrUnsupported, n.Describe(), unbatchedHint)
		}
		if n.Domain == onnx.DomainDefault && normalisesAcrossBatch(n, deps[n.Inputs[0]], p.g.Opset()) {
			return fmt.Errorf("%w: %s normalises across the batch dimension%s", onnx.ErrUnsupported, n.Describe(), unbatchedHint)
		}
	}
	return nil
}

// unbatchedHint tells how to serve a model that cannot be batched.
const unbatchedHint = " (Options.MaxBatch = 1 serves the model one item at a time)"

// normalisesAcrossBatch reports whether a normalising op's axes include one
// that follows the batch: its output keeps the batch shape, so the check for
// reductions does not see it mix items.
func normalisesAcrossBatch(n *onnx.Node, dep []bool, opset int64) bool {
	switch n.OpType {
	case "Softmax", "LogSoftmax":
		return softmaxMixes(n, dep, opset)
	case "LayerNormalization": // normalises over axes [axis, rank)
		r := int64(len(dep))
		axis := n.Int("axis", -1)
		if axis < 0 {
			axis += r
		}
		return axis >= 0 && axis < r && slices.Contains(dep[axis:], true)
	}
	return false
}

func softmaxMixes(n *onnx.Node, dep []bool, opset int64) bool {
	r := int64(len(dep))
	if opset >= 13 {
		axis := n.Int("axis", -1)
		if axis < 0 {
			axis += r
		}
		return axis >= 0 && axis < r && dep[axis]
	}
	axis := n.Int("axis", 1)
	if axis < 0 {
		axis += r
	}
	return axis >= 0 && axis < r && slices.Contains(dep[axis:], true)
}
