package runtime

import (
	"fmt"
	"math"
	"slices"

	gt "gorgonia.org/tensor"

	"github.com/corvidml/corvid/server/onnx"
)

// Activations: LeakyRelu PRelu Elu Selu HardSigmoid HardSwish Softplus
// Gelu LogSoftmax. The elementwise ones are mapKernels (ops_math.go): they
// compute in float64 whatever the tensor's float type.

func init() {
	registerBuilders(onnx.DomainDefault, map[string]buildFunc{
		"LeakyRelu":   buildLeakyRelu,
		"PRelu":       buildPRelu,
		"Elu":         buildElu,
		"Selu":        buildSelu,
		"HardSigmoid": buildHardSigmoid,
		"HardSwish":   buildHardSwish,
		"Softplus":    buildSoftplus,
		"Gelu":        buildGelu,
		"LogSoftmax":  buildSoftmax(true),
	})
}

// applyFloatMap adds an elementwise float activation; desc names it with
// its attributes.
func (b *builder) applyFloatMap(x *value, desc string, f func(float64) float64) ([]*value, error) {
	if err := b.checkDType(x, "input", floats); err != nil {
		return nil, err
	}
	return one(b.apply(&mapKernel{desc: desc, f: f}, x.dt, x.shape, x))
}

// The float attributes arrive as float32; they are widened once here, so
// that the kernels compute in float64 with the attribute's exact value.

func buildLeakyRelu(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	alpha := float64(n.Float("alpha", 0.01))
	return b.applyFloatMap(in[0], fmt.Sprintf("LeakyRelu(alpha=%g)", alpha), func(x float64) float64 {
		if x < 0 {
			return alpha * x
		}
		return x
	})
}

// buildElu uses Expm1: exp(x)-1 loses every digit for x near 0.
func buildElu(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	alpha := float64(n.Float("alpha", 1))
	return b.applyFloatMap(in[0], fmt.Sprintf("Elu(alpha=%g)", alpha), func(x float64) float64 {
		if x < 0 {
			return alpha * math.Expm1(x)
		}
		return x
	})
}

// buildSelu's defaults are ONNX's float32 roundings of the constants of
// Klambauer et al.
func buildSelu(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	alpha := float64(n.Float("alpha", 1.67326319217681884765625))
	gamma := float64(n.Float("gamma", 1.05070102214813232421875))
	return b.applyFloatMap(in[0], fmt.Sprintf("Selu(alpha=%g, gamma=%g)", alpha, gamma), func(x float64) float64 {
		if x <= 0 {
			return gamma * alpha * math.Expm1(x)
		}
		return gamma * x
	})
}

func buildHardSigmoid(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	alpha, beta := float64(n.Float("alpha", 0.2)), float64(n.Float("beta", 0.5))
	return b.applyFloatMap(in[0], fmt.Sprintf("HardSigmoid(alpha=%g, beta=%g)", alpha, beta), func(x float64) float64 {
		return hardSigmoid(alpha*x + beta)
	})
}

func buildHardSwish(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	if err := b.requireOpset(14); err != nil {
		return nil, err
	}
	return b.applyFloatMap(in[0], "HardSwish", func(x float64) float64 {
		return x * hardSigmoid(x/6+0.5)
	})
}

// hardSigmoid clamps v to [0, 1], keeping NaN.
func hardSigmoid(v float64) float64 {
	if v < 0 {
		return 0
	}
	if v > 1 {
		return 1
	}
	return v
}

// buildSoftplus computes log(1+exp(x)) without overflowing exp for large x
// or losing the small result for very negative x.
func buildSoftplus(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	return b.applyFloatMap(in[0], "Softplus", func(x float64) float64 {
		if x > 0 {
			return x + math.Log1p(math.Exp(-x))
		}
		return math.Log1p(math.Exp(x))
	})
}

// buildGelu is x·Φ(x), exactly through erf (approximate "none") or with
// the tanh approximation (approximate "tanh").
func buildGelu(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	if err := b.requireOpset(20); err != nil {
		return nil, err
	}
	switch approx := n.String("approximate", "none"); approx {
	case "none":
		return b.applyFloatMap(in[0], "Gelu", func(x float64) float64 {
			return 0.5 * x * (1 + math.Erf(x/math.Sqrt2))
		})
	case "tanh":
		c := math.Sqrt(2 / math.Pi)
		return b.applyFloatMap(in[0], "Gelu(approximate=tanh)", func(x float64) float64 {
			return 0.5 * x * (1 + math.Tanh(c*(x+0.044715*x*x*x)))
		})
	default:
		return nil, b.errInvalid("attribute \"approximate\" is %q, want \"none\" or \"tanh\"", approx)
	}
}

// ---- PRelu -------------------------------------------------------------------

// buildPRelu computes x < 0 ? slope·x : x, the slope broadcast to x's shape
// (unidirectionally: the output has x's shape).
func buildPRelu(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	x, slope := in[0], in[1]
	if err := b.checkDType(x, "input", numerics); err != nil {
		return nil, err
	}
	if slope.dt != x.dt {
		return nil, b.errInvalid("slope has dtype %v, want %v like the input", slope.dt, x.dt)
	}
	if out, ok := broadcastShape(x.shape, slope.shape); !ok || !slices.Equal(out, x.shape) {
		return nil, b.errInvalid("slope of shape %v does not broadcast to the input's shape %v", slope.shape, x.shape)
	}
	return one(b.apply(&preluKernel{p: newNaryBcast(x.shape, x.shape, slope.shape)}, x.dt, x.shape, x, slope))
}

type preluKernel struct{ p naryBcast }

func (k *preluKernel) String() string { return "PRelu" }

func (k *preluKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	x, s := ins[0], ins[1]
	switch out.Dtype() {
	case gt.Float32:
		prelu(&k.p, out.Float32s(), x.Float32s(), s.Float32s())
	case gt.Float64:
		prelu(&k.p, out.Float64s(), x.Float64s(), s.Float64s())
	case gt.Int32:
		prelu(&k.p, out.Int32s(), x.Int32s(), s.Int32s())
	case gt.Int64:
		prelu(&k.p, out.Int64s(), x.Int64s(), s.Int64s())
	default:
		return fmt.Errorf("dtype %v not supported", out.Dtype())
	}
	return nil
}

func prelu[T number](p *naryBcast, out, x, slope []T) {
	n, sx, ss := p.run(), p.step(0), p.step(1)
	p.eachRun(func(o int, off offsets) {
		xs, sl, row := x[off[0]:], slope[off[1]:], out[o:o+n]
		for i := range row {
			if v := xs[i*sx]; v < 0 {
				row[i] = sl[i*ss] * v
			} else {
				row[i] = v
			}
		}
	})
}

// ---- LogSoftmax --------------------------------------------------------------

// logSoftmax is (x - max) - log(Σ exp(x - max)), in float64: subtracting
// the maximum keeps exp from overflowing, and taking the log of the sum
// rather than of each softmax value keeps tiny probabilities from
// underflowing to -Inf.
func logSoftmax[T float32 | float64](l axisLayout, out, x []T) {
	for o := 0; o < l.outer; o++ {
		for j := 0; j < l.inner; j++ {
			base := o*l.n*l.inner + j
			m := math.Inf(-1)
			for i := 0; i < l.n; i++ {
				m = math.Max(m, float64(x[base+i*l.inner]))
			}
			var sum float64
			for i := 0; i < l.n; i++ {
				sum += math.Exp(float64(x[base+i*l.inner]) - m)
			}
			logSum := math.Log(sum)
			for i := 0; i < l.n; i++ {
				p := base + i*l.inner
				out[p] = T(float64(x[p]) - m - logSum)
			}
		}
	}
}
