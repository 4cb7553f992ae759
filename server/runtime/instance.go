package runtime

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	gt "gorgonia.org/tensor"

	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/tensor"
)

// runner executes a compiled graph whose inputs are bound. It is an
// interface so that the TapeMachine can give way to a leaner executor that
// walks the same graph (see DESIGN.md, Executor).
type runner interface {
	run() error
	close()
}

// tapeRunner runs a graph on Gorgonia's TapeMachine.
type tapeRunner struct{ vm G.VM }

func (r *tapeRunner) run() error {
	// The machine keeps its program counter and registers from the last
	// run, which may have stopped half-way on an error.
	r.vm.Reset()
	return r.vm.RunAll()
}

func (r *tapeRunner) close() { r.vm.Close() }

// noopRunner stands in for a graph with no ops: every output is an input
// or a constant.
type noopRunner struct{}

func (noopRunner) run() error { return nil }
func (noopRunner) close()     {}

// instance is one compiled graph for one batch size, owned by one worker.
// Gorgonia keeps values on the graph's nodes, so an instance serves one
// request at a time.
type instance struct {
	batch   int
	r       runner
	inputs  []*gt.Dense // per model input, bound to its node; filled per run
	outputs []*value    // per model output: a node or a constant
	faults  *faults
	// shapes and dtypes of every value, kept only while Compile analyses
	// which axes follow the batch.
	shapes map[string][]int
	dtypes map[string]tensor.DType
}

// build compiles the plan for one batch size and one set of sizes of the
// free dimensions. It recovers Gorgonia's panics: a model must fail to
// load, not crash the server.
//
// values holds the request's tensors for the model's value inputs (see
// Model.valueIn); they enter the graph as constants.
func (m *Model) build(batch int, dims []int, values map[string]*tensor.Tensor) (inst *instance, err error) {
	defer func() {
		if r := recover(); r != nil {
			inst, err = nil, fmt.Errorf("%w: building the graph for batch %d: panic: %v", ErrInternal, batch, r)
		}
	}()
	inst = &instance{batch: batch, faults: &faults{}}
	g := G.NewGraph()
	b := &builder{g: g, opset: m.plan.g.Opset(), faults: inst.faults, consts: make(map[*tensor.Tensor]*G.Node), needConst: m.needConst}
	vals := make(map[string]*value, len(m.plan.consts)+len(m.plan.steps))
	for name, t := range m.plan.consts {
		vals[name] = constValue(t)
	}
	for i, info := range m.inputs {
		if t, ok := values[info.Name]; ok {
			vals[info.Name] = constValue(t)
			inst.inputs = append(inst.inputs, nil) // nothing to bind per run
			continue
		}
		shape := intShape(info.Shape)
		if m.batched && len(shape) > 0 && shape[0] < 0 {
			shape[0] = batch
		}
		for j, f := range m.free {
			if f.input == i {
				shape[f.axis] = dims[j]
			}
		}
		if err := b.reserve(info.DType, shape); err != nil {
			return nil, fmt.Errorf("input %q at batch %d: %w", info.Name, batch, err)
		}
		dt := gtDType(info.DType)
		d := gt.New(gt.Of(dt), gt.WithShape(shape...))
		n := G.NewTensor(g, dt, len(shape), G.WithShape(shape...), G.WithName("input:"+info.Name), G.WithValue(d))
		vals[info.Name] = &value{dt: info.DType, shape: shape, node: n}
		inst.inputs = append(inst.inputs, d)
	}
	for _, n := range m.plan.steps {
		in := make([]*value, len(n.Inputs))
		for i, name := range n.Inputs {
			if name != "" {
				in[i] = vals[name]
			}
		}
		outs, err := b.build(n, in)
		if err != nil {
			return nil, err
		}
		for i, v := range outs {
			if name := n.Outputs[i]; name != "" {
				vals[name] = v
			}
		}
	}
	for _, info := range m.plan.g.Outputs {
		inst.outputs = append(inst.outputs, vals[info.Name])
	}
	inst.shapes = make(map[string][]int, len(vals))
	inst.dtypes = make(map[string]tensor.DType, len(vals))
	for name, v := range vals {
		inst.shapes[name], inst.dtypes[name] = v.shape, v.dt
	}

	inst.r = noopRunner{}
	for _, n := range g.AllNodes() {
		if n.Op() != nil {
			inst.r = &tapeRunner{vm: G.NewTapeMachine(g)}
			break
		}
	}
	return inst, nil
}

// bind copies a request's inputs into the instance's input buffers. Rows
// past the request's batch n repeat its first row rather than zeros: a
// padding row is then a valid input, so it cannot make an op fail (an
// integer division by zero, an index out of range) where the request
// alone would not. Padding rows never reach the caller.
func (inst *instance) bind(infos []onnx.ValueInfo, inputs map[string]*tensor.Tensor, batched bool, n int) {
	for i, info := range infos {
		t := inputs[info.Name]
		rows := 0
		if batched && len(info.Shape) > 0 && info.Shape[0] < 0 {
			rows = n
		}
		if inst.inputs[i] == nil {
			continue // a value input, built into the graph
		}
		fillInput(denseSlice(inst.inputs[i]), t.Data, rows, inst.batch)
	}
}

// fillInput copies src into dst; when rows > 0, src holds rows rows of a
// dst holding bucket rows, and the rest of dst repeats src's first row.
func fillInput(dst, src any, rows, bucket int) {
	switch d := dst.(type) {
	case []float32:
		fillRows(d, src.([]float32), rows, bucket)
	case []float64:
		fillRows(d, src.([]float64), rows, bucket)
	case []int8:
		fillRows(d, src.([]int8), rows, bucket)
	case []uint8:
		fillRows(d, src.([]uint8), rows, bucket)
	case []int32:
		fillRows(d, src.([]int32), rows, bucket)
	case []int64:
		fillRows(d, src.([]int64), rows, bucket)
	case []bool:
		fillRows(d, src.([]bool), rows, bucket)
	}
}

func fillRows[T any](dst, src []T, rows, bucket int) {
	copy(dst, src)
	if rows == 0 || rows == bucket || len(src) == 0 {
		return
	}
	rowLen := len(src) / rows
	for r := rows; r < bucket; r++ {
		copy(dst[r*rowLen:(r+1)*rowLen], src[:rowLen])
	}
}

// output copies output i of the last run into a new tensor, keeping the
// rows of the request's n items when the output follows the batch.
func (inst *instance) output(i int, followsBatch bool, n int) (*tensor.Tensor, error) {
	v := inst.outputs[i]
	var src any
	if v.konst != nil {
		src = v.konst.Data
	} else {
		d, err := asDense(v.node.Value())
		if err != nil {
			return nil, fmt.Errorf("output %d: %w", i, err)
		}
		src = denseSlice(d)
	}
	shape := int64Shape(v.shape)
	if followsBatch {
		shape[0] = int64(v.shape[0] / inst.batch * n)
	}
	t, err := tensor.New(v.dt, shape)
	if err != nil {
		return nil, err
	}
	if !copyPrefix(t.Data, src) {
		return nil, fmt.Errorf("output %d: computed %T, want %v", i, src, v.dt)
	}
	return t, nil
}

// copyPrefix fills dst from the start of src, which has at least as many
// elements; it reports false when their types differ.
func copyPrefix(dst, src any) bool {
	switch d := dst.(type) {
	case []float32:
		s, ok := src.([]float32)
		return ok && copy(d, s) == len(d)
	case []float64:
		s, ok := src.([]float64)
		return ok && copy(d, s) == len(d)
	case []int8:
		s, ok := src.([]int8)
		return ok && copy(d, s) == len(d)
	case []uint8:
		s, ok := src.([]uint8)
		return ok && copy(d, s) == len(d)
	case []int32:
		s, ok := src.([]int32)
		return ok && copy(d, s) == len(d)
	case []int64:
		s, ok := src.([]int64)
		return ok && copy(d, s) == len(d)
	case []bool:
		s, ok := src.([]bool)
		return ok && copy(d, s) == len(d)
	}
	return false
}
