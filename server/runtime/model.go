package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/tensor"
)

// Model is a compiled ONNX graph, ready to Run from many goroutines.
//
// A Model holds a pool of workers; each owns Gorgonia graphs compiled for a
// few batch sizes (buckets), built when it first needs one. A Run takes a
// worker, pads its batch up to the nearest bucket, runs that graph and
// hands the worker back.
type Model struct {
	plan     *plan
	inputs   []onnx.ValueInfo
	outputs  []onnx.ValueInfo
	batched  bool  // some input has a dynamic first dimension
	buckets  []int // sorted batch sizes graphs are compiled for
	maxBatch int
	rows     []int // per output: rows per batch item, 0 when it does not follow the batch
	log      *slog.Logger

	workers   chan *worker
	nworkers  int
	done      chan struct{}
	closeOnce sync.Once
	rebuilds  atomic.Int64 // graph instances discarded after a panic
}

// worker owns one graph instance per bucket, nil until first used.
type worker struct {
	instances []*instance
}

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
	for _, in := range g.Inputs {
		if in.Shape == nil {
			return nil, fmt.Errorf("%w: input %q has no shape", onnx.ErrUnsupported, in.Name)
		}
		for i, d := range in.Shape {
			if d < 0 && i > 0 {
				return nil, fmt.Errorf("%w: input %q: dimension %d is dynamic; only the first (batch) dimension may be", onnx.ErrUnsupported, in.Name, i)
			}
		}
		m.batched = m.batched || (len(in.Shape) > 0 && in.Shape[0] < 0)
	}
	m.maxBatch, m.buckets = 1, []int{1}
	if m.batched {
		m.maxBatch, m.buckets = opts.MaxBatch, opts.buckets()
	}
	if m.plan, err = newPlan(g); err != nil {
		return nil, err
	}

	first := &worker{instances: make([]*instance, len(m.buckets))}
	for i, bs := range m.buckets {
		inst, err := m.build(bs)
		if err != nil {
			if i > 0 {
				return nil, fmt.Errorf("batch %d: %w%s", bs, err, unbatchedHint)
			}
			return nil, err
		}
		first.instances[i] = inst
	}
	if err := m.resolveOutputs(first.instances); err != nil {
		return nil, err
	}
	for _, inst := range first.instances {
		inst.shapes, inst.dtypes = nil, nil
	}
	m.workers <- first
	for range opts.Workers - 1 {
		m.workers <- &worker{instances: make([]*instance, len(m.buckets))}
	}
	return m, nil
}

// resolveOutputs works out each output's dtype and shape from the compiled
// graphs, checks them against the model's declarations, and finds which
// outputs follow the batch. With several buckets it also refuses graphs in
// which padding a batch would change the real items' results.
func (m *Model) resolveOutputs(insts []*instance) error {
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
	m.outputs = make([]onnx.ValueInfo, len(m.plan.g.Outputs))
	m.rows = make([]int, len(m.plan.g.Outputs))
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
		if deps == nil {
			if len(decl.Shape) == len(shape) {
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
			m.rows[i] = per
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

// MaxBatch is the largest batch Run accepts: 1 when no input has a dynamic
// first dimension (inputs must then match their declared shapes exactly).
func (m *Model) MaxBatch() int { return m.maxBatch }

// Run computes the named outputs (all of them when outputs is empty) for
// one batch of inputs. Inputs are checked before any work; errors wrap
// ErrInvalidInput (the request does not fit the model), ErrInternal (the
// graph failed), ErrClosed, or ctx's error while waiting for a worker.
func (m *Model) Run(ctx context.Context, inputs map[string]*tensor.Tensor, outputs []string) (map[string]*tensor.Tensor, error) {
	n, err := m.checkInputs(inputs)
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
	return m.runOn(w, bucket, n, inputs, want)
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
func (m *Model) runOn(w *worker, bucket, n int, inputs map[string]*tensor.Tensor, want []int) (res map[string]*tensor.Tensor, err error) {
	defer func() {
		if r := recover(); r != nil {
			m.log.Error("runtime: panic during a run; discarding the worker's graphs", "panic", r)
			m.discard(w)
			res, err = nil, fmt.Errorf("%w: panic: %v", ErrInternal, r)
		}
	}()
	inst := w.instances[bucket]
	if inst == nil {
		if inst, err = m.build(m.buckets[bucket]); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInternal, err)
		}
		inst.shapes, inst.dtypes = nil, nil
		w.instances[bucket] = inst
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
		t, err := inst.output(i, m.rows[i], n)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInternal, err)
		}
		res[m.outputs[i].Name] = t
	}
	return res, nil
}

func (m *Model) discard(w *worker) {
	for i, inst := range w.instances {
		if inst != nil {
			inst.r.close()
			w.instances[i] = nil
		}
	}
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
				if inst != nil {
					inst.r.close()
				}
			}
		}
	})
}

// checkInputs validates a request against the model's inputs and returns
// its batch size.
func (m *Model) checkInputs(inputs map[string]*tensor.Tensor) (int, error) {
	unknown := ""
	for name := range inputs {
		known := slices.ContainsFunc(m.inputs, func(v onnx.ValueInfo) bool { return v.Name == name })
		if !known && (unknown == "" || name < unknown) { // the first in order, for a stable message
			unknown = name
		}
	}
	if unknown != "" {
		return 0, fmt.Errorf("%w: unknown input %q (model inputs: %s)", ErrInvalidInput, unknown, names(m.inputs))
	}
	batch, batchFrom := 0, ""
	for _, info := range m.inputs {
		t := inputs[info.Name]
		if t == nil {
			return 0, fmt.Errorf("%w: missing input %q (model inputs: %s)", ErrInvalidInput, info.Name, names(m.inputs))
		}
		if t.DType != info.DType {
			return 0, fmt.Errorf("%w: input %q: dtype %v, want %v", ErrInvalidInput, info.Name, t.DType, info.DType)
		}
		if err := t.Validate(); err != nil {
			return 0, fmt.Errorf("%w: input %q: %w", ErrInvalidInput, info.Name, err)
		}
		dynamic := m.batched && len(info.Shape) > 0 && info.Shape[0] < 0
		if !shapeMatches(info.Shape, t.Shape, dynamic, m.maxBatch) {
			want := onnx.FormatShape(info.Shape)
			if dynamic {
				want += fmt.Sprintf(" with 1 <= N <= %d", m.maxBatch)
			}
			return 0, fmt.Errorf("%w: input %q: shape %v, want %s", ErrInvalidInput, info.Name, t.Shape, want)
		}
		if !dynamic {
			continue
		}
		if n := int(t.Shape[0]); batchFrom == "" {
			batch, batchFrom = n, info.Name
		} else if n != batch {
			return 0, fmt.Errorf("%w: input %q: batch %d, want %d (the batch of input %q)", ErrInvalidInput, info.Name, n, batch, batchFrom)
		}
	}
	if batchFrom == "" {
		batch = 1 // nothing is batched: the single compiled graph runs as is
	}
	return batch, nil
}

// shapeMatches compares a request shape with a declared one; a dynamic
// first dimension takes any batch from 1 to maxBatch.
func shapeMatches(decl, got []int64, dynamic bool, maxBatch int) bool {
	if len(decl) != len(got) {
		return false
	}
	for i, d := range decl {
		if i == 0 && dynamic {
			if got[0] < 1 || got[0] > int64(maxBatch) {
				return false
			}
			continue
		}
		if got[i] != d {
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
