package runtime

import (
	"fmt"
	"os"
	"slices"

	G "gorgonia.org/gorgonia"
	gt "gorgonia.org/tensor"
)

// RunnerEnv names the environment variable that picks the executor of the
// graphs built after it is set: "lean" (the default) or "tape" (Gorgonia's
// TapeMachine, kept for comparison).
const RunnerEnv = "CORVID_RUNNER"

// newRunner returns the executor of a compiled graph: noopRunner when it
// has no op, else the runner RunnerEnv names.
func newRunner(g *G.ExprGraph, f *faults) (runner, error) {
	if !slices.ContainsFunc(g.AllNodes(), func(n *G.Node) bool { return n.Op() != nil }) {
		return noopRunner{}, nil
	}
	switch kind := os.Getenv(RunnerEnv); kind {
	case "", "lean":
		return newLeanRunner(g, f)
	case "tape":
		return &tapeRunner{vm: G.NewTapeMachine(g)}, nil
	default:
		return nil, fmt.Errorf("%s=%q: want lean or tape", RunnerEnv, kind)
	}
}

// leanRunner executes a compiled Gorgonia graph on the caller's goroutine:
// it walks the op nodes in topological order and calls each op on its
// children's values, with output buffers allocated on the first run and
// reused after. Nothing is allocated per run by the runner itself (the
// TapeMachine starts a goroutine per run and drops its buffers on Reset).
//
// Values live where Gorgonia keeps them, on the nodes: inputs and constants
// are bound when the graph is built (bind fills the input buffers in
// place), and each op's result is bound to its node, which only happens
// when the op returns a different value than last time (never, once the
// buffers exist). instance.output reads outputs from the nodes as for the
// TapeMachine.
type leanRunner struct {
	steps  []leanStep
	faults *faults
}

// leanMode is how a step calls its op.
type leanMode uint8

const (
	// leanDo calls Do: Corvid's customOp (which owns and reuses its
	// output), or an op of Gorgonia's that cannot write into a buffer.
	leanDo leanMode = iota
	// leanPrealloc calls UsePreallocDo with the step's buffer: Gorgonia's
	// BLAS and elementwise binary ops.
	leanPrealloc
	// leanUnary copies the input into the step's buffer and lets the op
	// overwrite it (UnsafeDo): Gorgonia's elementwise unary ops (Sigmoid,
	// Tanh), which have no UsePreallocDo.
	leanUnary
	// leanGemm is Gorgonia's plain float matrix product (A × B, 2-D, no
	// transpose), computed into the step's buffer by the very BLAS call
	// Gorgonia's MatMul makes (the BLAS gorgonia.Use installed), without
	// the tensor package's wrapper: that costs about 7 allocations per
	// call even with a reused output.
	leanGemm
)

type leanStep struct {
	node     *G.Node
	op       G.Op
	mode     leanMode
	desc     string    // the ONNX node, for errors
	children []*G.Node // the op's arguments, in order
	args     []G.Value // their values, refreshed on every run
	buf      *gt.Dense // the output buffer of leanPrealloc, leanUnary, leanGemm
	dt       gt.Dtype  // the output's dtype and shape, for buf
	shape    gt.Shape  //
	bound    G.Value   // the value last bound to node
}

func newLeanRunner(g *G.ExprGraph, f *faults) (*leanRunner, error) {
	sorted, err := G.Sort(g)
	if err != nil {
		return nil, fmt.Errorf("ordering the graph: %w", err)
	}
	slices.Reverse(sorted) // Sort puts the roots (outputs) first
	r := &leanRunner{faults: f}
	for _, n := range sorted {
		op := n.Op()
		if op == nil {
			continue // an input or a constant: its value is bound
		}
		s := leanStep{node: n, op: op, desc: n.Name(), dt: n.Dtype(), shape: n.Shape()}
		for it := g.From(n.ID()); it.Next(); {
			s.children = append(s.children, it.Node().(*G.Node))
		}
		if len(s.children) != op.Arity() && op.Arity() >= 0 {
			return nil, fmt.Errorf("node %s: %d arguments for an op of arity %d", n.Name(), len(s.children), op.Arity())
		}
		s.args = make([]G.Value, len(s.children))
		switch o := op.(type) {
		case *customOp:
			s.desc = o.desc
		case *guardedOp:
			s.desc = o.desc
			s.mode = guardedMode(o, n, s.children)
		}
		r.steps = append(r.steps, s)
	}
	return r, nil
}

// guardedMode picks how to call one of Gorgonia's ops so that it writes
// into a buffer of the step's own.
func guardedMode(o *guardedOp, n *G.Node, children []*G.Node) leanMode {
	if n.Dims() == 0 {
		return leanDo // scalars are Gorgonia Scalars, not buffers
	}
	if isPlainMatMul(o.Op, n, children) {
		return leanGemm
	}
	if _, ok := o.Op.(G.UsePreallocDoer); ok {
		return leanPrealloc
	}
	if _, ok := o.Op.(G.UnsafeDoer); ok && len(children) == 1 {
		c := children[0]
		if c.Dtype() == n.Dtype() && c.Shape().Eq(n.Shape()) {
			return leanUnary
		}
	}
	return leanDo
}

// run executes every op once. Ops recover their own panics (see customOp
// and guardedOp); a panic anywhere else in the walk is recovered here and
// reported the same way, so the instance is discarded.
func (r *leanRunner) run() (err error) {
	var s *leanStep
	defer func() {
		if p := recover(); p != nil {
			where := "lean runner"
			if s != nil {
				where = s.desc
			}
			err = fmt.Errorf("%s: panic: %v", where, p)
			r.faults.recordPanic(err)
		}
	}()
	for i := range r.steps {
		s = &r.steps[i]
		for j, c := range s.children {
			s.args[j] = c.Value()
		}
		var v G.Value
		switch s.mode {
		case leanDo:
			v, err = s.op.Do(s.args...)
		case leanPrealloc:
			v, err = s.op.(G.UsePreallocDoer).UsePreallocDo(s.buffer(), s.args...)
		case leanUnary:
			v, err = s.op.(*guardedOp).unaryInto(s.buffer(), s.args[0])
		case leanGemm:
			v, err = s.op.(*guardedOp).gemmInto(s.buffer(), s.args[0], s.args[1])
		}
		if err != nil {
			return err // recorded in faults by the op
		}
		if v != s.bound {
			if v == nil {
				err = fmt.Errorf("%s: %v returned no value", s.desc, s.op)
				r.faults.record(err)
				return err
			}
			if err = G.UnsafeLet(s.node, v); err != nil {
				err = fmt.Errorf("%s: %v: %w", s.desc, s.op, err)
				r.faults.record(err)
				return err
			}
			s.bound = v
		}
	}
	return nil
}

// buffer returns the step's output buffer, allocated on first use: graphs
// built only to be analysed never run and never allocate.
func (s *leanStep) buffer() *gt.Dense {
	if s.buf == nil {
		s.buf = gt.New(gt.Of(s.dt), gt.WithShape(s.shape...))
	}
	return s.buf
}

// close drops the runner's buffers; the graph keeps the values bound to
// its nodes until it is collected.
func (r *leanRunner) close() {
	for i := range r.steps {
		r.steps[i].buf = nil
		clear(r.steps[i].args)
	}
}

// unaryInto computes a unary elementwise op of Gorgonia's into out without
// allocating: the input is copied into out, which the op then overwrites.
// Panics are recovered and recorded as in Do.
func (o *guardedOp) unaryInto(out *gt.Dense, in G.Value) (G.Value, error) {
	return o.guard(func() (G.Value, error) {
		copied := false
		if src, ok := in.(*gt.Dense); ok && src.Dtype() == out.Dtype() && src.Size() == out.Size() {
			switch out.Dtype() { // not copyPrefix: boxing slices allocates
			case gt.Float32:
				copied = copy(out.Float32s(), src.Float32s()) == out.Size()
			case gt.Float64:
				copied = copy(out.Float64s(), src.Float64s()) == out.Size()
			}
		}
		if !copied {
			return nil, fmt.Errorf("cannot compute %v of %T into a %v tensor of shape %v", o.Op, in, out.Dtype(), out.Shape())
		}
		return o.Op.(G.UnsafeDoer).UnsafeDo(out)
	})
}

// isPlainMatMul reports whether op is Gorgonia's matrix product of two
// float matrices of n's dtype, untransposed ("A × B"; a transpose shows as
// "Aᵀ"), as G.Mul makes for MatMul and Gemm.
func isPlainMatMul(op G.Op, n *G.Node, children []*G.Node) bool {
	if len(children) != 2 || n.Dims() != 2 || fmt.Sprint(op) != "A × B" {
		return false
	}
	if dt := n.Dtype(); dt != gt.Float32 && dt != gt.Float64 {
		return false
	}
	for _, c := range children {
		if c.Dims() != 2 || c.Dtype() != n.Dtype() {
			return false
		}
	}
	return true
}

// gemmInto computes out = a × b for row-major float matrices with the BLAS
// Gorgonia's MatMul calls, with the same arguments (so the same results).
// Panics are recovered and recorded as in Do.
func (o *guardedOp) gemmInto(out *gt.Dense, a, b G.Value) (G.Value, error) {
	return o.guard(func() (G.Value, error) {
		ad, okA := a.(*gt.Dense)
		bd, okB := b.(*gt.Dense)
		if !okA || !okB || ad.Dims() != 2 || bd.Dims() != 2 || ad.Dtype() != out.Dtype() || bd.Dtype() != out.Dtype() ||
			!ad.DataOrder().IsRowMajor() || !bd.DataOrder().IsRowMajor() || ad.IsView() || bd.IsView() {
			return nil, fmt.Errorf("cannot multiply %T by %T into a %v tensor of shape %v", a, b, out.Dtype(), out.Shape())
		}
		as, bs, cs := ad.Shape(), bd.Shape(), out.Shape()
		m, k, n := as[0], as[1], bs[1]
		if bs[0] != k || cs[0] != m || cs[1] != n {
			return nil, fmt.Errorf("cannot multiply %v by %v into %v", as, bs, cs)
		}
		// An empty sum (k = 0) is zero: blasGemm would scale out's values
		// from the last run by 0, which keeps NaNs.
		switch out.Dtype() {
		case gt.Float32:
			if k == 0 {
				clear(out.Float32s())
			}
			blasGemm(false, false, m, n, k, ad.Float32s(), k, bd.Float32s(), n, 0, out.Float32s(), n)
		case gt.Float64:
			if k == 0 {
				clear(out.Float64s())
			}
			blasGemm(false, false, m, n, k, ad.Float64s(), k, bd.Float64s(), n, 0, out.Float64s(), n)
		}
		return out, nil
	})
}
