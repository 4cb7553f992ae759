package runtime

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	gt "gorgonia.org/tensor"

	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/tensor"
)

// runner executes a compiled graph whose inputs are bound: leanRunner (the
// default, lean.go) or Gorgonia's TapeMachine, picked by RunnerEnv (see
// DESIGN.md, Executor). Either leaves each op's result bound to its node,
// where instance.output reads it.
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
	b := &builder{g: g, opset: m.plan.g.Opset(), faults: inst.faults, consts: make(map[*tensor.Tensor]*G.Node), needConst: m.needConst, fused: &m.plan.fused}
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

	if inst.r, err = newRunner(g, inst.faults); err != nil {
		return nil, fmt.Errorf("%w: batch %d: %w", ErrInternal, batch, err)
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
		fillInput(inst.inputs[i], t.Data, rows, inst.batch)
	}
}

// fillInput copies src into dst; when rows > 0, src holds rows rows of a
// dst holding bucket rows, and the rest of dst repeats src's first row. It
// switches on dst's dtype rather than taking denseSlice(dst): boxing a
// slice in an interface allocates, on every request.
func fillInput(dst *gt.Dense, src any, rows, bucket int) {
	switch dst.Dtype() {
	case gt.Float32:
		fillRows(dst.Float32s(), src.([]float32), rows, bucket)
	case gt.Float64:
		fillRows(dst.Float64s(), src.([]float64), rows, bucket)
	case gt.Int8:
		fillRows(dst.Int8s(), src.([]int8), rows, bucket)
	case gt.Uint8:
		fillRows(dst.Uint8s(), src.([]uint8), rows, bucket)
	case gt.Int32:
		fillRows(dst.Int32s(), src.([]int32), rows, bucket)
	case gt.Int64:
		fillRows(dst.Int64s(), src.([]int64), rows, bucket)
	case gt.Bool:
		fillRows(dst.Bools(), src.([]bool), rows, bucket)
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
	var d *gt.Dense
	if v.konst == nil {
		var err error
		if d, err = asDense(v.node.Value()); err != nil {
			return nil, fmt.Errorf("output %d: %w", i, err)
		}
	}
	rows := -1
	if followsBatch {
		rows = v.shape[0] / inst.batch * n
	}
	t, err := newOutput(v.dt, v.shape, rows)
	if err != nil {
		return nil, err
	}
	if v.konst != nil {
		if !copyPrefix(t.Data, v.konst.Data) {
			return nil, fmt.Errorf("output %d: constant %T, want %v", i, v.konst.Data, v.dt)
		}
	} else if !copyFromDense(t.Data, d) {
		return nil, fmt.Errorf("output %d: computed %v, want %v", i, d.Dtype(), v.dt)
	}
	return t, nil
}

// outputTensor holds a returned tensor and its shape, so that both take one
// allocation for ranks up to 8.
type outputTensor struct {
	t     tensor.Tensor
	shape [8]int64
}

// newOutput allocates a zeroed tensor of dt and shape, with rows rows when
// rows >= 0. It is tensor.New in fewer allocations (it runs per output of
// every request); shapes were checked when the graph was built.
func newOutput(dt tensor.DType, shape []int, rows int) (*tensor.Tensor, error) {
	o := new(outputTensor)
	t := &o.t
	t.DType = dt
	switch {
	case len(shape) == 0:
		// nil, as tensor.New makes it
	case len(shape) <= len(o.shape):
		t.Shape = o.shape[:len(shape):len(shape)]
	default:
		t.Shape = make([]int64, len(shape))
	}
	n := 1
	for i, d := range shape {
		if i == 0 && rows >= 0 {
			d = rows
		}
		t.Shape[i] = int64(d)
		n *= d
	}
	switch dt {
	case tensor.Float32:
		t.Data = make([]float32, n)
	case tensor.Float64:
		t.Data = make([]float64, n)
	case tensor.Int8:
		t.Data = make([]int8, n)
	case tensor.Uint8:
		t.Data = make([]uint8, n)
	case tensor.Int32:
		t.Data = make([]int32, n)
	case tensor.Int64:
		t.Data = make([]int64, n)
	case tensor.Bool:
		t.Data = make([]bool, n)
	default:
		return nil, fmt.Errorf("unsupported dtype %v", dt)
	}
	return t, nil
}

// copyFromDense fills dst from the start of d's data, which has at least as
// many elements; it reports false when their types differ. Like fillInput
// it reads d's data without boxing it in an interface.
func copyFromDense(dst any, d *gt.Dense) bool {
	switch x := dst.(type) {
	case []float32:
		return d.Dtype() == gt.Float32 && copy(x, d.Float32s()) == len(x)
	case []float64:
		return d.Dtype() == gt.Float64 && copy(x, d.Float64s()) == len(x)
	case []int8:
		return d.Dtype() == gt.Int8 && copy(x, d.Int8s()) == len(x)
	case []uint8:
		return d.Dtype() == gt.Uint8 && copy(x, d.Uint8s()) == len(x)
	case []int32:
		return d.Dtype() == gt.Int32 && copy(x, d.Int32s()) == len(x)
	case []int64:
		return d.Dtype() == gt.Int64 && copy(x, d.Int64s()) == len(x)
	case []bool:
		return d.Dtype() == gt.Bool && copy(x, d.Bools()) == len(x)
	}
	return false
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
