package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/tensor"
)

// Model is a compiled ONNX graph, ready to Run from many goroutines.
//
// A Model holds a pool of workers; each owns Gorgonia graphs (variants)
// built for the shapes requests bring, compiled when it first needs one and
// reused after. Shapes are handled by two policies:
//
//   - The batch (a dynamic first dimension) is bucketed: a request runs on
//     the graph of the smallest bucket that holds it, its rows padded. This
//     is exact because Compile refuses graphs in which a padding row could
//     change a real one.
//   - Every other dynamic dimension (a sequence length, an image size) is
//     specialised: a graph is compiled for the exact sizes a request brings,
//     never padded, since padding a sequence changes attention and
//     normalisation results. Each worker keeps at most MaxVariants graphs,
//     dropping the least recently used, so the memory a model holds is
//     bounded however many distinct sizes clients send.
type Model struct {
	plan        *plan
	quant       Quantization
	inputs      []onnx.ValueInfo
	outputs     []onnx.ValueInfo
	batched     bool  // some input has a dynamic first dimension
	buckets     []int // sorted batch sizes graphs are compiled for
	maxBatch    int
	free        []freeDim // dynamic dimensions other than the batch
	maxDim      int       // largest size a free dimension may take
	maxVariants int       // graphs a worker keeps
	batchOut    []bool    // per output: whether its first axis follows the batch
	// valueIn marks the inputs whose values are built into each graph (see
	// specialiseOnValues); empty for most models.
	valueIn   map[string]bool
	needConst map[string]bool // while compiling: values ops needed as constants
	log       *slog.Logger

	workers   chan *worker
	nworkers  int
	done      chan struct{}
	closeOnce sync.Once
	rebuilds  atomic.Int64 // graph instances discarded after a panic
}

// freeDim is a dynamic dimension that is not the batch: axis of input.
type freeDim struct{ input, axis int }

// variantKey identifies a compiled graph: its batch bucket, the sizes of
// the free dimensions (in m.free order) and the values of value inputs.
type variantKey struct {
	bucket int
	dims   string
	values string
}

func keyOf(bucket int, dims []int) variantKey {
	if len(dims) == 0 {
		return variantKey{bucket: bucket} // most models: no formatting per request
	}
	return variantKey{bucket: bucket, dims: fmt.Sprint(dims)}
}

// maxValueElems bounds a value input: it is part of a graph's identity, so
// it must be small (axes, a shape, K), not data.
const maxValueElems = 64

// worker owns the graphs it has compiled, most recently used last.
type worker struct {
	instances map[variantKey]*instance
	lru       []variantKey
}

func newWorker() *worker { return &worker{instances: make(map[variantKey]*instance)} }

// probeDims are the sizes Compile tries for free dimensions, in order, to
// find one at which the graph builds (a convolution may need a few pixels,
// a reshape a multiple of something); the twice-as-large size then shows
// which output axes follow them.
var probeDims = []int{16, 32, 64, 128, 224}

// Compile builds a Model from a decoded graph. Graphs for every batch
// bucket are compiled once here (for the first worker) so that a model
// that cannot run fails now rather than on a request. Errors wrap
// onnx.ErrInvalidModel or onnx.ErrUnsupported.
func Compile(g *onnx.Graph, opts Options) (_ *Model, err error) {
	defer func() {
		// Shapes come from an untrusted file: whatever slips past the
		// checks must fail the load, not the process.
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: compiling the model: panic: %v", ErrInternal, r)
		}
	}()
	if g == nil {
		return nil, fmt.Errorf("%w: nil graph", onnx.ErrInvalidModel)
	}
	opts, err = opts.withDefaults()
	if err != nil {
		return nil, err
	}
	m := &Model{
		inputs:   g.Inputs,
		log:      opts.Logger,
		nworkers: opts.Workers,
		workers:  make(chan *worker, opts.Workers),
		done:     make(chan struct{}),
	}
	m.maxDim, m.maxVariants, m.quant = opts.MaxDim, opts.MaxVariants, opts.Quantization
	for i, in := range g.Inputs {
		if in.Shape == nil {
			return nil, fmt.Errorf("%w: input %q has no shape", onnx.ErrUnsupported, in.Name)
		}
		for ax, d := range in.Shape {
			if d < 0 && ax > 0 {
				m.free = append(m.free, freeDim{input: i, axis: ax})
			}
		}
		m.batched = m.batched || (len(in.Shape) > 0 && in.Shape[0] < 0)
	}
	m.maxBatch, m.buckets = 1, []int{1}
	if m.batched {
		m.maxBatch, m.buckets = opts.MaxBatch, opts.buckets()
	}
	if m.plan, err = newPlan(g, opts.Quantization, opts.Ranges); err != nil {
		return nil, err
	}

	m.needConst = map[string]bool{}
	first, err := m.compileStatic()
	if err != nil {
		vin, ok := m.valueInputsFor(err)
		if !ok {
			return nil, err
		}
		m.specialiseOnValues(vin)
		first = newWorker()
	}
	m.needConst = nil
	m.workers <- first
	for range opts.Workers - 1 {
		m.workers <- newWorker()
	}
	return m, nil
}

// compileStatic builds the graph at the sizes Compile can choose (every
// batch bucket, probe sizes for the free dimensions), checks it, and
// returns the first worker with the graphs worth keeping.
func (m *Model) compileStatic() (*worker, error) {
	// Build at a probe size for the free dimensions (none: the real one),
	// once per bucket, to check the graph and see which axes follow the
	// batch; then once more at twice the probe to see which follow the
	// free dimensions.
	probe, err := m.findProbe()
	if err != nil {
		return nil, err
	}
	insts := make([]*instance, len(m.buckets))
	for i, bs := range m.buckets {
		inst, err := m.build(bs, m.fill(probe), nil)
		if err != nil {
			if i > 0 {
				return nil, fmt.Errorf("batch %d: %w%s", bs, err, unbatchedHint)
			}
			return nil, err
		}
		insts[i] = inst
	}
	var double *instance
	if len(m.free) > 0 {
		if double, err = m.build(m.buckets[0], m.fill(2*probe), nil); err != nil {
			return nil, fmt.Errorf("dynamic dimensions at %d: %w", 2*probe, err)
		}
	}
	if err := m.resolveOutputs(insts, double); err != nil {
		return nil, err
	}

	first := newWorker()
	for i, inst := range insts {
		inst.shapes, inst.dtypes = nil, nil
		if len(m.free) > 0 || i >= m.maxVariants {
			inst.r.close() // built at probe sizes no request may bring
			continue
		}
		first.keep(keyOf(i, nil), inst, m.maxVariants)
	}
	if double != nil {
		double.r.close()
	}
	return first, nil
}

// valueInputsFor decides whether a graph that failed to build only because
// ops needed some graph inputs as constants (Reshape's shape, the axes of a
// reduction, TopK's K...) can be served by building a graph per value of
// those inputs. It returns the inputs to specialise on: those ops needed,
// and every other small integer input (more of them are usually needed
// further on, after the first refusal stopped the build).
func (m *Model) valueInputsFor(err error) (map[string]bool, bool) {
	if !errors.Is(err, onnx.ErrUnsupported) || len(m.needConst) == 0 {
		return nil, false
	}
	isInt := func(v onnx.ValueInfo) bool { return v.DType == tensor.Int64 || v.DType == tensor.Int32 }
	vin := map[string]bool{}
	for name := range m.needConst {
		i := slices.IndexFunc(m.inputs, func(v onnx.ValueInfo) bool { return v.Name == name })
		if i < 0 || !isInt(m.inputs[i]) {
			return nil, false // computed inside the graph, or not a shape
		}
		vin[name] = true
	}
	for _, in := range m.inputs {
		if n, err := tensor.NumElements(in.Shape); isInt(in) && err == nil && !slices.Contains(in.Shape, -1) && n <= maxValueElems {
			vin[in.Name] = true
		}
	}
	return vin, true
}

// specialiseOnValues switches the model to graphs built per request shape
// and per value of the value inputs. Nothing can be built before a request
// brings those values, so the graph is checked on first use, and every
// dynamic dimension, the batch included, is specialised rather than
// bucketed: padding cannot be proved safe without a graph to analyse.
func (m *Model) specialiseOnValues(vin map[string]bool) {
	m.valueIn = vin
	m.batched, m.maxBatch, m.buckets = false, 1, []int{1}
	m.free = m.free[:0]
	for i, in := range m.inputs {
		if vin[in.Name] {
			continue
		}
		for ax, d := range in.Shape {
			if d < 0 {
				m.free = append(m.free, freeDim{input: i, axis: ax})
			}
		}
	}
	m.outputs = slices.Clone(m.plan.g.Outputs)
	m.batchOut = make([]bool, len(m.outputs))
	m.log.Debug("runtime: graphs will be built per value of inputs that decide shapes", "inputs", slices.Sorted(maps.Keys(vin)))
}

// fill returns the free dimensions' sizes when each is size.
func (m *Model) fill(size int) []int {
	dims := make([]int, len(m.free))
	for i := range dims {
		dims[i] = size
	}
	return dims
}

// findProbe returns the first probe size at which the graph builds for the
// smallest bucket, or 0 when the model has no free dimension.
func (m *Model) findProbe() (int, error) {
	if len(m.free) == 0 {
		return 0, nil
	}
	var first error
	for _, p := range probeDims {
		if p > m.maxDim {
			break
		}
		inst, err := m.build(m.buckets[0], m.fill(p), nil)
		if err == nil {
			inst.r.close()
			return p, nil
		}
		if first == nil {
			first = err
		}
	}
	if first == nil {
		first = fmt.Errorf("%w: MaxDim %d is below the smallest probe size %d", onnx.ErrUnsupported, m.maxDim, probeDims[0])
	}
	return 0, fmt.Errorf("dynamic dimensions at %d: %w", probeDims[0], first)
}

// keep stores a compiled graph, dropping the least recently used one past
// max.
func (w *worker) keep(k variantKey, inst *instance, max int) {
	if len(w.instances) >= max && len(w.lru) > 0 {
		old := w.lru[0]
		w.lru = w.lru[1:]
		w.instances[old].r.close()
		delete(w.instances, old)
	}
	w.instances[k] = inst
	w.lru = append(w.lru, k)
}

// touch marks k most recently used.
func (w *worker) touch(k variantKey) {
	if i := slices.Index(w.lru, k); i >= 0 && i != len(w.lru)-1 {
		w.lru = append(append(w.lru[:i:i], w.lru[i+1:]...), k)
	}
}

// resolveOutputs works out each output's dtype and shape from the compiled
// graphs, checks them against the model's declarations, and finds which
// outputs follow the batch. With several buckets it also refuses graphs in
// which padding a batch would change the real items' results.
func (m *Model) resolveOutputs(insts []*instance, double *instance) error {
	shapes := make([]map[string][]int, len(insts))
	for i, inst := range insts {
		shapes[i] = inst.shapes
	}
	var deps batchAxes
	if len(insts) > 1 {
		var err error
		if deps, err = findBatchAxes(shapes); err != nil {
			return err
		}
		if err := m.plan.checkBatchSafe(deps); err != nil {
			return err
		}
	}
	var freeDeps batchAxes
	if double != nil {
		var err error
		if freeDeps, err = findBatchAxes([]map[string][]int{shapes[0], double.shapes}); err != nil {
			return fmt.Errorf("%w (as the dynamic dimensions change)", err)
		}
	}
	m.outputs = make([]onnx.ValueInfo, len(m.plan.g.Outputs))
	m.batchOut = make([]bool, len(m.plan.g.Outputs))
	for i, decl := range m.plan.g.Outputs {
		name := decl.Name
		dt := insts[0].dtypes[name]
		if dt != decl.DType {
			return fmt.Errorf("%w: output %q is declared %v but computes %v", onnx.ErrInvalidModel, name, decl.DType, dt)
		}
		for j, inst := range insts {
			got := inst.shapes[name]
			if !declaredShapeFits(decl.Shape, got, m.batched) {
				return fmt.Errorf("%w: output %q is declared %s but computes %v at batch %d", onnx.ErrInvalidModel, name, onnx.FormatShape(decl.Shape), got, m.buckets[j])
			}
		}
		shape := int64Shape(shapes[0][name])
		for ax, d := range freeDeps[name] {
			if d {
				shape[ax] = -1
			}
		}
		if deps == nil {
			if len(decl.Shape) == len(shape) && len(m.free) == 0 {
				shape = slices.Clone(decl.Shape) // one bucket: trust the declared dynamic dims
			}
			m.outputs[i] = onnx.ValueInfo{Name: name, DType: dt, Shape: shape}
			continue
		}
		dep := deps[name]
		for ax, d := range dep {
			if !d {
				continue
			}
			if ax != 0 {
				return fmt.Errorf("%w: output %q follows the batch along axis %d, want axis 0%s", onnx.ErrUnsupported, name, ax, unbatchedHint)
			}
			shape[0] = -1
			per := shapes[0][name][0] / m.buckets[0]
			for j, bs := range m.buckets {
				if shapes[j][name][0] != per*bs {
					return fmt.Errorf("%w: output %q: first dimension %d at batch %d is not a multiple of the batch%s", onnx.ErrUnsupported, name, shapes[j][name][0], bs, unbatchedHint)
				}
			}
			m.batchOut[i] = true
		}
		m.outputs[i] = onnx.ValueInfo{Name: name, DType: dt, Shape: shape}
	}
	return nil
}

// declaredShapeFits reports whether a computed shape agrees with the
// model's declaration: same rank, same static dimensions. A batched
// model's declared first dimension is whatever the batch makes it.
func declaredShapeFits(decl []int64, got []int, batched bool) bool {
	if decl == nil {
		return true
	}
	if len(decl) != len(got) {
		return false
	}
	for i, d := range decl {
		if d >= 0 && int(d) != got[i] && !(batched && i == 0 && d == 1) {
			return false
		}
	}
	return true
}

// Inputs describes the inputs Run expects; a -1 first dimension is the
// batch.
func (m *Model) Inputs() []onnx.ValueInfo { return slices.Clone(m.inputs) }

// Outputs describes the outputs Run returns; a -1 first dimension is the
// batch.
func (m *Model) Outputs() []onnx.ValueInfo { return slices.Clone(m.outputs) }

// quantizedOps are the operators of models quantized before export (ONNX
// Runtime's QDQ and QOperator forms).
var quantizedOps = []string{"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear",
	"MatMulInteger", "ConvInteger", "QLinearMatMul", "QLinearConv"}

// ExecutionMode is how the model computes: its Options.Quantization
// ("fp32", "int8-dynamic", "int8-static"), or "int8-prequantized" for an
// fp32 model quantized before export, which computes with int8 operators on
// the int8 kernels.
func (m *Model) ExecutionMode() string {
	if m.quant != QuantFP32 {
		return m.quant.String()
	}
	for _, n := range m.plan.g.Nodes {
		if n.Domain == onnx.DomainDefault && slices.Contains(quantizedOps, n.OpType) {
			return "int8-prequantized"
		}
	}
	return QuantFP32.String()
}

// MaxBatch is the largest batch Run accepts: 1 when no input has a dynamic
// first dimension (inputs must then match their declared shapes exactly).
func (m *Model) MaxBatch() int { return m.maxBatch }

// Run computes the named outputs (all of them when outputs is empty) for
// one batch of inputs. Inputs are checked before any work; errors wrap
// ErrInvalidInput (the request does not fit the model), ErrInternal (the
// graph failed), ErrClosed, or ctx's error while waiting for a worker.
func (m *Model) Run(ctx context.Context, inputs map[string]*tensor.Tensor, outputs []string) (map[string]*tensor.Tensor, error) {
	n, dims, err := m.checkInputs(inputs)
	if err != nil {
		return nil, err
	}
	want, err := m.checkOutputs(outputs)
	if err != nil {
		return nil, err
	}
	bucket, _ := slices.BinarySearch(m.buckets, n)

	w, err := m.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { m.workers <- w }()
	return m.runOn(w, bucket, dims, n, inputs, want)
}

func (m *Model) acquire(ctx context.Context) (*worker, error) {
	select {
	case <-m.done:
		return nil, ErrClosed
	default:
	}
	select {
	case w := <-m.workers:
		select {
		case <-m.done: // closed while we waited: Close is collecting workers
			m.workers <- w
			return nil, ErrClosed
		default:
			return w, nil
		}
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for a worker: %w", ctx.Err())
	case <-m.done:
		return nil, ErrClosed
	}
}

// runOn runs one request on a worker. A panic anywhere in it (an op's is
// already recovered inside the op) discards the worker's graphs, which are
// rebuilt from the immutable plan on next use.
func (m *Model) runOn(w *worker, bucket int, dims []int, n int, inputs map[string]*tensor.Tensor, want []int) (res map[string]*tensor.Tensor, err error) {
	defer func() {
		if r := recover(); r != nil {
			m.log.Error("runtime: panic during a run; discarding the worker's graphs", "panic", r)
			m.discard(w)
			res, err = nil, fmt.Errorf("%w: panic: %v", ErrInternal, r)
		}
	}()
	key := keyOf(bucket, dims)
	var values map[string]*tensor.Tensor
	if len(m.valueIn) > 0 {
		values = make(map[string]*tensor.Tensor, len(m.valueIn))
		for name := range m.valueIn {
			values[name] = inputs[name]
		}
		key.values = valuesKey(values)
	}
	inst := w.instances[key]
	if inst == nil {
		if inst, err = m.build(m.buckets[bucket], dims, values); err != nil {
			if (len(m.free) > 0 || len(m.valueIn) > 0) && !errors.Is(err, ErrInternal) {
				// The graph builds at the probe sizes, so these sizes are
				// what does not fit (a reshape, a kernel larger than the
				// input): the request's fault.
				return nil, fmt.Errorf("%w: the model cannot run at these input sizes: %w", ErrInvalidInput, err)
			}
			return nil, fmt.Errorf("%w: %w", ErrInternal, err)
		}
		inst.shapes, inst.dtypes = nil, nil
		w.keep(key, inst, m.maxVariants)
	} else {
		w.touch(key)
	}
	inst.bind(m.inputs, inputs, m.batched, n)
	inst.faults.reset()
	if err := inst.r.run(); err != nil {
		f := *inst.faults
		if f.panicked {
			m.log.Error("runtime: op panicked; discarding the worker's graphs", "error", f.err, "stack", string(f.stack))
			m.discard(w)
		}
		if f.err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInternal, f.err)
		}
		return nil, fmt.Errorf("%w: %v", ErrInternal, err)
	}
	res = make(map[string]*tensor.Tensor, len(want))
	for _, i := range want {
		t, err := inst.output(i, m.batchOut[i], n)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInternal, err)
		}
		res[m.outputs[i].Name] = t
	}
	return res, nil
}

// valuesKey renders value inputs for a variantKey, in name order.
func valuesKey(values map[string]*tensor.Tensor) string {
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(values)) {
		fmt.Fprintf(&b, "%s%v=%v;", name, values[name].Shape, values[name].Data)
	}
	return b.String()
}

func (m *Model) discard(w *worker) {
	for _, inst := range w.instances {
		inst.r.close()
	}
	clear(w.instances)
	w.lru = w.lru[:0]
	m.rebuilds.Add(1)
}

// Close waits for running requests to finish and releases the compiled
// graphs. Runs after Close return ErrClosed.
func (m *Model) Close() {
	m.closeOnce.Do(func() {
		close(m.done)
		for range m.nworkers {
			w := <-m.workers
			for _, inst := range w.instances {
				inst.r.close()
			}
		}
	})
}

// checkInputs validates a request against the model's inputs and returns
// its batch size and the sizes of its free dimensions.
func (m *Model) checkInputs(inputs map[string]*tensor.Tensor) (int, []int, error) {
	unknown := ""
	for name := range inputs {
		known := slices.ContainsFunc(m.inputs, func(v onnx.ValueInfo) bool { return v.Name == name })
		if !known && (unknown == "" || name < unknown) { // the first in order, for a stable message
			unknown = name
		}
	}
	if unknown != "" {
		return 0, nil, fmt.Errorf("%w: unknown input %q (model inputs: %s)", ErrInvalidInput, unknown, names(m.inputs))
	}
	batch, batchFrom := 0, ""
	for _, info := range m.inputs {
		t := inputs[info.Name]
		if t == nil {
			return 0, nil, fmt.Errorf("%w: missing input %q (model inputs: %s)", ErrInvalidInput, info.Name, names(m.inputs))
		}
		if t.DType != info.DType {
			return 0, nil, fmt.Errorf("%w: input %q: dtype %v, want %v", ErrInvalidInput, info.Name, t.DType, info.DType)
		}
		if err := t.Validate(); err != nil {
			return 0, nil, fmt.Errorf("%w: input %q: %w", ErrInvalidInput, info.Name, err)
		}
		if m.valueIn[info.Name] && t.Len() > maxValueElems {
			return 0, nil, fmt.Errorf("%w: input %q decides shapes and may have at most %d elements, got %d", ErrInvalidInput, info.Name, maxValueElems, t.Len())
		}
		dynamic := m.batched && len(info.Shape) > 0 && info.Shape[0] < 0
		if !shapeMatches(info.Shape, t.Shape, dynamic, m.maxBatch, m.maxDim) {
			want := onnx.FormatShape(info.Shape)
			var bounds []string
			if dynamic {
				bounds = append(bounds, fmt.Sprintf("1 <= N <= %d", m.maxBatch))
			}
			if slices.Contains(info.Shape[min(1, len(info.Shape)):], -1) {
				bounds = append(bounds, fmt.Sprintf("other dynamic dimensions from 1 to %d", m.maxDim))
			}
			if len(bounds) > 0 {
				want += " with " + strings.Join(bounds, " and ")
			}
			return 0, nil, fmt.Errorf("%w: input %q: shape %v, want %s", ErrInvalidInput, info.Name, t.Shape, want)
		}
		if !dynamic {
			continue
		}
		if n := int(t.Shape[0]); batchFrom == "" {
			batch, batchFrom = n, info.Name
		} else if n != batch {
			return 0, nil, fmt.Errorf("%w: input %q: batch %d, want %d (the batch of input %q)", ErrInvalidInput, info.Name, n, batch, batchFrom)
		}
	}
	if batchFrom == "" {
		batch = 1 // nothing is batched: the single compiled graph runs as is
	}
	var dims []int
	for _, f := range m.free {
		dims = append(dims, int(inputs[m.inputs[f.input].Name].Shape[f.axis]))
	}
	return batch, dims, nil
}

// shapeMatches compares a request shape with a declared one: a dynamic
// first dimension takes any batch from 1 to maxBatch, another dynamic
// dimension any size from 1 to maxDim.
func shapeMatches(decl, got []int64, dynamic bool, maxBatch, maxDim int) bool {
	if len(decl) != len(got) {
		return false
	}
	for i, d := range decl {
		switch {
		case i == 0 && dynamic:
			if got[0] < 1 || got[0] > int64(maxBatch) {
				return false
			}
		case d < 0:
			if got[i] < 1 || got[i] > int64(maxDim) {
				return false
			}
		case got[i] != d:
			return false
		}
	}
	return true
}

// checkOutputs maps requested output names to indices, all when none are
// named.
func (m *Model) checkOutputs(outputs []string) ([]int, error) {
	if len(outputs) == 0 {
		all := make([]int, len(m.outputs))
		for i := range all {
			all[i] = i
		}
		return all, nil
	}
	idx := make([]int, 0, len(outputs))
	for _, name := range outputs {
		i := slices.IndexFunc(m.outputs, func(v onnx.ValueInfo) bool { return v.Name == name })
		if i < 0 {
			return nil, fmt.Errorf("%w: unknown output %q (model outputs: %s)", ErrInvalidInput, name, names(m.outputs))
		}
		if !slices.Contains(idx, i) {
			idx = append(idx, i)
		}
	}
	return idx, nil
}

func names(vs []onnx.ValueInfo) string {
	ns := make([]string, len(vs))
	for i, v := range vs {
		ns[i] = v.Name
	}
	return strings.Join(ns, ", ")
}

// Warm runs one inference on zeros per batch bucket on every worker, so
// that the first requests after a load (or a hot swap) do not pay for
// building graphs. Models with dynamic dimensions other than the batch, or
// inputs that decide shapes, compile per request size and are not warmed.
// It returns the first error, which means the model cannot serve.
func (m *Model) Warm(ctx context.Context) error {
	if len(m.free) > 0 || len(m.valueIn) > 0 {
		return nil
	}
	ws := make([]*worker, 0, m.nworkers)
	defer func() {
		for _, w := range ws {
			m.workers <- w
		}
	}()
	for range m.nworkers {
		w, err := m.acquire(ctx)
		if err != nil {
			return err
		}
		ws = append(ws, w)
	}
	want := make([]int, len(m.outputs))
	for i := range want {
		want[i] = i
	}
	for _, w := range ws {
		for bi, size := range m.buckets {
			inputs := make(map[string]*tensor.Tensor, len(m.inputs))
			for _, in := range m.inputs {
				shape := slices.Clone(in.Shape)
				if m.batched && len(shape) > 0 && shape[0] < 0 {
					shape[0] = int64(size)
				}
				t, err := tensor.New(in.DType, shape)
				if err != nil {
					return fmt.Errorf("%w: warming up: %w", ErrInternal, err)
				}
				inputs[in.Name] = t
			}
			if _, err := m.runOn(w, bi, nil, size, inputs, want); err != nil {
				return fmt.Errorf("warming up at batch %d: %w", size, err)
			}
		}
	}
	return nil
}
