package runtime

import (
	"fmt"
	"hash"
	"hash/fnv"
	goruntime "runtime"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	gt "gorgonia.org/tensor"

	"github.com/corvidml/corvid/server/tensor"
)

// kernel is the computation behind one of Corvid's own Gorgonia ops. Its
// dtypes and shapes are fixed when it is built, so run only computes.
type kernel interface {
	// String names the kernel and its attributes ("Softmax(axis=1)"); it
	// goes into the op's hash.
	String() string
	// run computes out from ins. out has the dtype and shape the kernel was
	// built for, and is reused from run to run: run must write all of it.
	// ins must not be written.
	run(out *gt.Dense, ins []*gt.Dense) error
}

// faults records what went wrong inside ops during one run. Ops report
// here rather than only through their error because the TapeMachine wraps
// errors in a type without Unwrap, losing which op failed and whether it
// panicked. One faults belongs to one graph instance; the TapeMachine's
// channels order the op goroutine's writes before Run reads them.
type faults struct {
	err      error  // the first op failure of the run
	panicked bool   // an op panicked: the instance's state is suspect
	stack    []byte // where the first panic happened, for the log only
}

func (f *faults) record(err error) {
	if f.err == nil {
		f.err = err
	}
}

func (f *faults) recordPanic(err error) {
	f.record(err)
	if !f.panicked {
		f.panicked = true
		buf := make([]byte, 16<<10)
		f.stack = buf[:goruntime.Stack(buf, false)]
	}
}

func (f *faults) reset() { *f = faults{} }

// sig is the Gorgonia type of a value: a dtype for a scalar (rank 0), a
// TensorType otherwise, as Gorgonia's own nodes have.
type sig struct {
	dt   gt.Dtype
	rank int
}

func (s sig) hmType() hm.Type {
	if s.rank == 0 {
		return s.dt
	}
	return G.TensorType{Dims: s.rank, Of: s.dt}
}

// fnType builds a fresh function type on every call: Gorgonia returns the
// types it is given to a pool after inference, so they must not be shared.
func fnType(ins []sig, out sig) hm.Type {
	ts := make([]hm.Type, 0, len(ins)+1)
	for _, s := range ins {
		ts = append(ts, s.hmType())
	}
	return hm.NewFnType(append(ts, out.hmType())...)
}

// customOp runs a kernel as a Gorgonia op.
//
// Each customOp belongs to one graph, which belongs to one worker, so it
// owns its output buffer and reuses it on every run: no allocation per run,
// unlike Gorgonia's own ops after a TapeMachine Reset.
type customOp struct {
	k      kernel
	id     string // the Gorgonia node name, unique in its graph
	desc   string // the ONNX node, for errors
	ins    []sig
	outSig sig
	shape  gt.Shape
	out    *gt.Dense
	inBuf  []*gt.Dense
	faults *faults
}

func (c *customOp) Arity() int                                 { return len(c.ins) }
func (c *customOp) Type() hm.Type                              { return fnType(c.ins, c.outSig) }
func (c *customOp) InferShape(...G.DimSizer) (gt.Shape, error) { return c.shape.Clone(), nil }
func (c *customOp) ReturnsPtr() bool                           { return false }
func (c *customOp) CallsExtern() bool                          { return false }

// OverwritesInput is -1: values are never computed in place, so a value
// read after the run (an output) or shared between graphs (a weight) is
// never clobbered by a later op.
func (c *customOp) OverwritesInput() int { return -1 }

// WriteHash includes the node's unique name: Gorgonia merges nodes with
// equal hashes, and two ops of the same kind on the same inputs must stay
// two nodes (their values are read separately).
func (c *customOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "corvid:%s:%s", c.id, c.k) }

func (c *customOp) Hashcode() uint32 {
	h := fnv.New32a()
	c.WriteHash(h)
	return h.Sum32()
}

func (c *customOp) String() string { return c.k.String() }

// Do runs on the TapeMachine's own goroutine, where a panic would kill the
// process: it is recovered here and reported as an error.
func (c *customOp) Do(vals ...G.Value) (v G.Value, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: panic: %v", c.desc, r)
			c.faults.recordPanic(err)
			v = nil
		}
	}()
	if c.inBuf == nil {
		c.inBuf = make([]*gt.Dense, len(c.ins))
	}
	ins := c.inBuf[:len(vals)]
	for i, val := range vals {
		if ins[i], err = asDense(val); err != nil {
			err = fmt.Errorf("%s: input %d: %w", c.desc, i, err)
			c.faults.record(err)
			return nil, err
		}
	}
	if c.out == nil {
		c.out = gt.New(gt.Of(c.outSig.dt), gt.WithShape(c.shape...))
	}
	if err := c.k.run(c.out, ins); err != nil {
		err = fmt.Errorf("%s: %w", c.desc, err)
		c.faults.record(err)
		return nil, err
	}
	return c.out, nil
}

// guardedOp wraps one of Gorgonia's own ops, recovering panics in Do and
// forbidding in-place computation (see customOp.OverwritesInput).
type guardedOp struct {
	G.Op
	id     string
	desc   string
	faults *faults
}

func (o *guardedOp) OverwritesInput() int { return -1 }

func (o *guardedOp) WriteHash(h hash.Hash) {
	o.Op.WriteHash(h)
	fmt.Fprintf(h, "corvid:%s", o.id)
}

func (o *guardedOp) Hashcode() uint32 {
	h := fnv.New32a()
	o.WriteHash(h)
	return h.Sum32()
}

func (o *guardedOp) Do(vals ...G.Value) (G.Value, error) {
	return o.guard(func() (G.Value, error) { return o.Op.Do(vals...) })
}

// UsePreallocDo lets the TapeMachine hand Gorgonia's BLAS ops the buffer it
// allocated for them, as it would without the wrapper.
func (o *guardedOp) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	pd, ok := o.Op.(G.UsePreallocDoer)
	if !ok {
		return o.Do(vals...)
	}
	return o.guard(func() (G.Value, error) { return pd.UsePreallocDo(prealloc, vals...) })
}

func (o *guardedOp) guard(do func() (G.Value, error)) (v G.Value, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: panic in %v: %v", o.desc, o.Op, r)
			o.faults.recordPanic(err)
			v = nil
		}
	}()
	if v, err = do(); err != nil {
		err = fmt.Errorf("%s: %v: %w", o.desc, o.Op, err)
		o.faults.record(err)
	}
	return v, err
}

// asDense returns a Gorgonia value as a dense tensor; Gorgonia's own ops
// return scalars (rank 0) as Scalar values.
func asDense(v G.Value) (*gt.Dense, error) {
	switch v := v.(type) {
	case *gt.Dense:
		return v, nil
	case G.Scalar:
		return gt.New(gt.Of(v.Dtype()), gt.FromScalar(v.Data())), nil
	case nil:
		return nil, fmt.Errorf("no value")
	}
	return nil, fmt.Errorf("value of type %T is not a dense tensor", v)
}

// gtDType maps a Corvid dtype to Gorgonia's.
func gtDType(dt tensor.DType) gt.Dtype {
	switch dt {
	case tensor.Float32:
		return gt.Float32
	case tensor.Float64:
		return gt.Float64
	case tensor.Int8:
		return gt.Int8
	case tensor.Uint8:
		return gt.Uint8
	case tensor.Int32:
		return gt.Int32
	case tensor.Int64:
		return gt.Int64
	case tensor.Bool:
		return gt.Bool
	}
	panic(fmt.Sprintf("runtime: no Gorgonia dtype for %v", dt))
}

// denseSlice returns the backing slice of d as the Go slice type of its
// dtype ([]float32, ...), the form Corvid's tensors hold.
func denseSlice(d *gt.Dense) any {
	switch d.Dtype() {
	case gt.Float32:
		return d.Float32s()
	case gt.Float64:
		return d.Float64s()
	case gt.Int8:
		return d.Int8s()
	case gt.Uint8:
		return d.Uint8s()
	case gt.Int32:
		return d.Int32s()
	case gt.Int64:
		return d.Int64s()
	case gt.Bool:
		return d.Bools()
	}
	return nil
}
