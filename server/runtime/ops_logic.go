package runtime

import (
	"fmt"
	"slices"

	gt "gorgonia.org/tensor"

	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/tensor"
)

// Comparison and logic: Equal Less Greater LessOrEqual GreaterOrEqual
// (numbers in, bools out), Not And Or on bools, and Where, all with numpy
// broadcasting.

func init() {
	registerBuilders(onnx.DomainDefault, map[string]buildFunc{
		"Equal":          buildCompare(cmpEqual, 7),
		"Less":           buildCompare(cmpLess, 7),
		"Greater":        buildCompare(cmpGreater, 7),
		"LessOrEqual":    buildCompare(cmpLessOrEqual, 12),
		"GreaterOrEqual": buildCompare(cmpGreaterOrEqual, 12),
		"And":            buildCompare(cmpAnd, 7),
		"Or":             buildCompare(cmpOr, 7),
		"Not":            buildNot,
		"Where":          buildWhere,
	})
}

type cmpOp uint8

const (
	cmpEqual cmpOp = iota
	cmpLess
	cmpGreater
	cmpLessOrEqual
	cmpGreaterOrEqual
	cmpAnd
	cmpOr
)

func (op cmpOp) String() string {
	return [...]string{"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or"}[op]
}

var (
	boolOnly    = []tensor.DType{tensor.Bool}
	numbersBool = append(slices.Clone(anyNumber), tensor.Bool)
)

// buildCompare builds a broadcasting operator with a bool output: a
// comparison of two numbers (Equal also of bools), or And/Or of bools.
func buildCompare(op cmpOp, since int64) buildFunc {
	allowed := anyNumber
	switch op {
	case cmpEqual:
		allowed = numbersBool
	case cmpAnd, cmpOr:
		allowed = boolOnly
	}
	return func(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
		if err := b.requireOpset(since); err != nil {
			return nil, err
		}
		x, y := in[0], in[1]
		if err := b.checkDType(x, "input A", allowed); err != nil {
			return nil, err
		}
		if y.dt != x.dt {
			return nil, b.errInvalid("input B has dtype %v, want %v like input A", y.dt, x.dt)
		}
		out, ok := broadcastShape(x.shape, y.shape)
		if !ok {
			return nil, b.errInvalid("shapes %v and %v do not broadcast", x.shape, y.shape)
		}
		return one(b.apply(&compareKernel{op: op, p: newNaryBcast(out, x.shape, y.shape)}, tensor.Bool, out, x, y))
	}
}

type compareKernel struct {
	op cmpOp
	p  naryBcast
}

func (k *compareKernel) String() string { return k.op.String() }

func (k *compareKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	o, a, b := out.Bools(), ins[0], ins[1]
	switch a.Dtype() {
	case gt.Float32:
		compare(k.op, &k.p, o, a.Float32s(), b.Float32s())
	case gt.Float64:
		compare(k.op, &k.p, o, a.Float64s(), b.Float64s())
	case gt.Int8:
		compare(k.op, &k.p, o, a.Int8s(), b.Int8s())
	case gt.Uint8:
		compare(k.op, &k.p, o, a.Uint8s(), b.Uint8s())
	case gt.Int32:
		compare(k.op, &k.p, o, a.Int32s(), b.Int32s())
	case gt.Int64:
		compare(k.op, &k.p, o, a.Int64s(), b.Int64s())
	case gt.Bool:
		logic(k.op, &k.p, o, a.Bools(), b.Bools())
	default:
		return fmt.Errorf("dtype %v not supported", a.Dtype())
	}
	return nil
}

// compare follows IEEE: every comparison with NaN is false.
func compare[T number](op cmpOp, p *naryBcast, out []bool, a, b []T) {
	n, sa, sb := p.run(), p.step(0), p.step(1)
	p.eachRun(func(o int, off offsets) {
		as, bs, row := a[off[0]:], b[off[1]:], out[o:o+n]
		switch op {
		case cmpEqual:
			for i := range row {
				row[i] = as[i*sa] == bs[i*sb]
			}
		case cmpLess:
			for i := range row {
				row[i] = as[i*sa] < bs[i*sb]
			}
		case cmpGreater:
			for i := range row {
				row[i] = as[i*sa] > bs[i*sb]
			}
		case cmpLessOrEqual:
			for i := range row {
				row[i] = as[i*sa] <= bs[i*sb]
			}
		case cmpGreaterOrEqual:
			for i := range row {
				row[i] = as[i*sa] >= bs[i*sb]
			}
		}
	})
}

// logic is Equal, And and Or of bools.
func logic(op cmpOp, p *naryBcast, out, a, b []bool) {
	n, sa, sb := p.run(), p.step(0), p.step(1)
	p.eachRun(func(o int, off offsets) {
		as, bs, row := a[off[0]:], b[off[1]:], out[o:o+n]
		switch op {
		case cmpEqual:
			for i := range row {
				row[i] = as[i*sa] == bs[i*sb]
			}
		case cmpAnd:
			for i := range row {
				row[i] = as[i*sa] && bs[i*sb]
			}
		case cmpOr:
			for i := range row {
				row[i] = as[i*sa] || bs[i*sb]
			}
		}
	})
}

// ---- Not ---------------------------------------------------------------------

func buildNot(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	x := in[0]
	if err := b.checkDType(x, "input", boolOnly); err != nil {
		return nil, err
	}
	return one(b.apply(notKernel{}, tensor.Bool, x.shape, x))
}

type notKernel struct{}

func (notKernel) String() string { return "Not" }

func (notKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	o := out.Bools()
	for i, v := range ins[0].Bools()[:len(o)] {
		o[i] = !v
	}
	return nil
}

// ---- Where -------------------------------------------------------------------

// buildWhere picks x where the condition holds and y elsewhere, the three
// broadcast together.
func buildWhere(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	if err := b.requireOpset(9); err != nil {
		return nil, err
	}
	c, x, y := in[0], in[1], in[2]
	if err := b.checkDType(c, "condition", boolOnly); err != nil {
		return nil, err
	}
	if err := b.checkDType(x, "input X", numbersBool); err != nil {
		return nil, err
	}
	if y.dt != x.dt {
		return nil, b.errInvalid("input Y has dtype %v, want %v like input X", y.dt, x.dt)
	}
	out, ok := broadcastAll(c.shape, x.shape, y.shape)
	if !ok {
		return nil, b.errInvalid("condition %v, X %v and Y %v do not broadcast", c.shape, x.shape, y.shape)
	}
	return one(b.apply(&whereKernel{p: newNaryBcast(out, c.shape, x.shape, y.shape)}, x.dt, out, c, x, y))
}

type whereKernel struct{ p naryBcast }

func (k *whereKernel) String() string { return "Where" }

func (k *whereKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	c, x, y := ins[0].Bools(), ins[1], ins[2]
	switch out.Dtype() {
	case gt.Float32:
		where(&k.p, out.Float32s(), c, x.Float32s(), y.Float32s())
	case gt.Float64:
		where(&k.p, out.Float64s(), c, x.Float64s(), y.Float64s())
	case gt.Int8:
		where(&k.p, out.Int8s(), c, x.Int8s(), y.Int8s())
	case gt.Uint8:
		where(&k.p, out.Uint8s(), c, x.Uint8s(), y.Uint8s())
	case gt.Int32:
		where(&k.p, out.Int32s(), c, x.Int32s(), y.Int32s())
	case gt.Int64:
		where(&k.p, out.Int64s(), c, x.Int64s(), y.Int64s())
	case gt.Bool:
		where(&k.p, out.Bools(), c, x.Bools(), y.Bools())
	default:
		return fmt.Errorf("dtype %v not supported", out.Dtype())
	}
	return nil
}

func where[T any](p *naryBcast, out []T, c []bool, x, y []T) {
	n, sc, sx, sy := p.run(), p.step(0), p.step(1), p.step(2)
	p.eachRun(func(o int, off offsets) {
		cs, xs, ys, row := c[off[0]:], x[off[1]:], y[off[2]:], out[o:o+n]
		for i := range row {
			if cs[i*sc] {
				row[i] = xs[i*sx]
			} else {
				row[i] = ys[i*sy]
			}
		}
	})
}
