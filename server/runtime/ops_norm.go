package runtime

import (
	"fmt"
	"math"
	"slices"

	gt "gorgonia.org/tensor"

	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/tensor"
)

// Normalisation in inference mode (BatchNormalization,
// LayerNormalization, InstanceNormalization) and Dropout, which is the
// identity when not training. Statistics accumulate in float64 whatever
// the dtype: float32 sums over long rows lose digits.

func init() {
	registerBuilders(onnx.DomainDefault, map[string]buildFunc{
		"BatchNormalization":    buildBatchNorm,
		"LayerNormalization":    buildLayerNorm,
		"InstanceNormalization": buildInstanceNorm,
		"Dropout":               buildDropout,
	})
}

// normEpsilon reads the epsilon attribute, which must be finite and not
// negative to keep the square root real.
func (b *builder) normEpsilon(n *onnx.Node) (float64, error) {
	eps := n.Float("epsilon", 1e-5)
	if !(eps >= 0) || math.IsInf(float64(eps), 0) {
		return 0, b.errInvalid("epsilon is %v, want a finite value >= 0", eps)
	}
	return float64(eps), nil
}

// checkChannelParam checks a per-channel parameter: a float vector of shape want.
func (b *builder) checkChannelParam(v *value, which string, want []int) error {
	if err := b.checkDType(v, which, floats); err != nil {
		return err
	}
	if !slices.Equal(v.shape, want) {
		return b.errInvalid("%s has shape %v, want %v", which, v.shape, want)
	}
	return nil
}

// buildBatchNorm: y = (x - mean) / sqrt(var + epsilon) * scale + B per
// channel, with the running statistics the model was trained to.
func buildBatchNorm(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	x := in[0]
	if err := b.checkDType(x, "input X", floats); err != nil {
		return nil, err
	}
	if len(x.shape) < 2 {
		return nil, b.errInvalid("input X has shape %v, want [N C D1 ... Dk]", x.shape)
	}
	if n.Int("training_mode", 0) != 0 {
		return nil, b.errUnsupported("training_mode is 1; Corvid runs BatchNormalization in inference mode only (export the model in eval mode)")
	}
	for i, name := range n.Outputs[1:] {
		if name != "" {
			return nil, b.errUnsupported("output %d (%q) holds statistics computed in training mode; Corvid runs BatchNormalization in inference mode only", i+1, name)
		}
	}
	if n.Has("training_mode") && b.opset < 14 {
		return nil, b.errInvalid("attribute training_mode is defined from opset 14, the model imports opset %d", b.opset)
	}
	// momentum only updates the running statistics, which training does.
	eps, err := b.normEpsilon(n)
	if err != nil {
		return nil, err
	}
	// Before opset 9, spatial=0 gives each element of a sample (not just
	// each channel) its own statistics.
	if n.Has("spatial") && b.opset >= 9 {
		return nil, b.errInvalid("attribute spatial was removed in opset 9, the model imports opset %d", b.opset)
	}
	var l axisLayout
	switch sp := n.Int("spatial", 1); sp {
	case 1:
		l = layoutAround(x.shape, 1)
	case 0:
		l = axisLayout{outer: x.shape[0], n: prod(x.shape[1:]), inner: 1}
	default:
		return nil, b.errInvalid("spatial is %d, want 0 or 1", sp)
	}
	param := []int{x.shape[1]}
	if l.inner == 1 && len(x.shape) > 2 {
		param = slices.Clone(x.shape[1:])
	}
	for i, which := range []string{"scale", "B", "mean", "var"} {
		if err := b.checkChannelParam(in[i+1], which, param); err != nil {
			return nil, err
		}
	}
	k := &batchNormKernel{axisLayout: l, eps: eps}
	return one(b.apply(k, x.dt, x.shape, in[:5]...))
}

// batchNormKernel folds the four parameters into one multiply-add per
// channel, y = x*a + c, recomputed each run (C values) so that parameters
// computed by the graph work as well as constants.
type batchNormKernel struct {
	axisLayout
	eps  float64
	a, c []float64 // scratch: the per-channel multiplier and offset
	tmp  []float64
}

func (k *batchNormKernel) String() string {
	return fmt.Sprintf("BatchNormalization(eps=%g, %d channels)", k.eps, k.n)
}

func (k *batchNormKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	if k.a == nil {
		k.a, k.c, k.tmp = make([]float64, k.n), make([]float64, k.n), make([]float64, k.n)
	}
	if err := paramFloats(k.a, ins[1]); err != nil { // scale
		return err
	}
	if err := paramFloats(k.c, ins[2]); err != nil { // B
		return err
	}
	if err := paramFloats(k.tmp, ins[4]); err != nil { // var
		return err
	}
	for i, v := range k.tmp {
		k.a[i] /= math.Sqrt(v + k.eps)
	}
	if err := paramFloats(k.tmp, ins[3]); err != nil { // mean
		return err
	}
	for i, m := range k.tmp {
		k.c[i] -= m * k.a[i]
	}
	switch out.Dtype() {
	case gt.Float32:
		scaleShift(k.axisLayout, out.Float32s(), ins[0].Float32s(), k.a, k.c)
	case gt.Float64:
		scaleShift(k.axisLayout, out.Float64s(), ins[0].Float64s(), k.a, k.c)
	default:
		return fmt.Errorf("dtype %v not supported", out.Dtype())
	}
	return nil
}

// paramFloats copies a float32 or float64 tensor into dst as float64:
// opset 15 lets BatchNormalization's parameters differ in dtype from X.
func paramFloats(dst []float64, d *gt.Dense) error {
	switch d.Dtype() {
	case gt.Float32:
		for i, v := range d.Float32s()[:len(dst)] {
			dst[i] = float64(v)
		}
	case gt.Float64:
		copy(dst, d.Float64s())
	default:
		return fmt.Errorf("parameter dtype %v not supported", d.Dtype())
	}
	return nil
}

// scaleShift computes y = x*a[i] + c[i] where i is the middle index of
// the layout.
func scaleShift[T float32 | float64](l axisLayout, y, x []T, a, c []float64) {
	for o := range l.outer {
		for i := range l.n {
			base := (o*l.n + i) * l.inner
			ai, ci := T(a[i]), T(c[i])
			xs, ys := x[base:base+l.inner], y[base:base+l.inner]
			for j, v := range xs {
				ys[j] = v*ai + ci
			}
		}
	}
}

// buildInstanceNorm normalises each [N C] plane of X by its own mean and
// variance, then scales and shifts per channel.
func buildInstanceNorm(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	x, scale, bias := in[0], in[1], in[2]
	if err := b.checkDType(x, "input", floats); err != nil {
		return nil, err
	}
	if len(x.shape) < 3 {
		return nil, b.errInvalid("input has shape %v, want [N C D1 ... Dk]", x.shape)
	}
	if scale.dt != x.dt || bias.dt != x.dt {
		return nil, b.errInvalid("input, scale and B must share a dtype, got %v, %v and %v", x.dt, scale.dt, bias.dt)
	}
	for i, which := range []string{"scale", "B"} {
		if err := b.checkChannelParam(in[i+1], which, []int{x.shape[1]}); err != nil {
			return nil, err
		}
	}
	eps, err := b.normEpsilon(n)
	if err != nil {
		return nil, err
	}
	if prod(x.shape[2:]) == 0 {
		return nil, b.errInvalid("input %v has no spatial elements to normalise over", x.shape)
	}
	k := &instanceNormKernel{axisLayout: axisLayout{outer: x.shape[0], n: x.shape[1], inner: prod(x.shape[2:])}, eps: eps}
	return one(b.apply(k, x.dt, x.shape, x, scale, bias))
}

type instanceNormKernel struct {
	axisLayout
	eps float64
}

func (k *instanceNormKernel) String() string {
	return fmt.Sprintf("InstanceNormalization(eps=%g)", k.eps)
}

func (k *instanceNormKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	switch out.Dtype() {
	case gt.Float32:
		instanceNorm(k, out.Float32s(), ins[0].Float32s(), ins[1].Float32s(), ins[2].Float32s())
	case gt.Float64:
		instanceNorm(k, out.Float64s(), ins[0].Float64s(), ins[1].Float64s(), ins[2].Float64s())
	default:
		return fmt.Errorf("dtype %v not supported", out.Dtype())
	}
	return nil
}

func instanceNorm[T float32 | float64](k *instanceNormKernel, y, x, scale, bias []T) {
	for o := range k.outer {
		for c := range k.n {
			base := (o*k.n + c) * k.inner
			xs, ys := x[base:base+k.inner], y[base:base+k.inner]
			mean, inv := meanInvStd(xs, k.eps)
			a := inv * float64(scale[c])
			for j, v := range xs {
				ys[j] = T((float64(v)-mean)*a + float64(bias[c]))
			}
		}
	}
}

// meanInvStd returns the mean of xs and 1/sqrt(variance + eps), the
// variance the population one, in two passes for accuracy.
func meanInvStd[T float32 | float64](xs []T, eps float64) (mean, invStd float64) {
	for _, v := range xs {
		mean += float64(v)
	}
	mean /= float64(len(xs))
	var ss float64
	for _, v := range xs {
		d := float64(v) - mean
		ss += d * d
	}
	return mean, 1 / math.Sqrt(ss/float64(len(xs))+eps)
}

// buildLayerNorm normalises X over the axes from axis on, then applies
// Scale and B (broadcast to those axes). Mean and InvStdDev, when asked
// for, are separate kernels over X.
func buildLayerNorm(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	x, scale, bias := in[0], in[1], optional(in, 2)
	if err := b.checkDType(x, "input X", floats); err != nil {
		return nil, err
	}
	if scale.dt != x.dt || (bias != nil && bias.dt != x.dt) {
		return nil, b.errInvalid("X, Scale and B must share a dtype, got %v, %v and %v", x.dt, scale.dt, dtypeName(bias))
	}
	if len(x.shape) == 0 {
		return nil, b.errInvalid("input X is a scalar, want rank >= 1")
	}
	axis, err := b.normAxis(n.Int("axis", -1), len(x.shape), false)
	if err != nil {
		return nil, err
	}
	eps, err := b.normEpsilon(n)
	if err != nil {
		return nil, err
	}
	// stash_type is the dtype of the statistics, and so of Mean and
	// InvStdDev: ONNX allows float (1) and bfloat16 (16), which Corvid
	// lacks.
	if st := n.Int("stash_type", 1); st != 1 {
		return nil, b.errUnsupported("stash_type is %d; only 1 (float32 statistics) is supported", st)
	}
	norm := x.shape[axis:]
	size := prod(norm)
	if size == 0 {
		return nil, b.errInvalid("X %v has no elements to normalise over from axis %d", x.shape, axis)
	}
	k := &layerNormKernel{outer: prod(x.shape[:axis]), size: size, eps: eps, axis: axis}
	if k.scaleIdx, err = b.normParamIndex(scale, "Scale", norm); err != nil {
		return nil, err
	}
	ins := []*value{x, scale}
	if bias != nil {
		if k.biasIdx, err = b.normParamIndex(bias, "B", norm); err != nil {
			return nil, err
		}
		ins = append(ins, bias)
	}
	y, err := b.apply(k, x.dt, x.shape, ins...)
	if err != nil {
		return nil, err
	}
	outs := []*value{y}
	statShape := slices.Clone(x.shape)
	for i := axis; i < len(statShape); i++ {
		statShape[i] = 1
	}
	for i, stat := range []layerNormOutput{lnMean, lnInvStdDev} {
		if i+1 >= len(n.Outputs) || n.Outputs[i+1] == "" {
			// An omitted output is never read; the builder still
			// returns a value for each output the node lists.
			outs = append(outs, y)
			continue
		}
		sk := *k
		sk.output, sk.scaleIdx, sk.biasIdx = stat, nil, nil
		v, err := b.apply(&sk, tensor.Float32, statShape, x)
		if err != nil {
			return nil, err
		}
		outs = append(outs, v)
	}
	return outs, nil
}

// normParamIndex checks that p broadcasts to the normalised shape and returns,
// for each normalised element, the index of p's element that applies to
// it; nil when p has the normalised shape's elements one for one.
func (b *builder) normParamIndex(p *value, which string, norm []int) ([]int, error) {
	if out, ok := broadcastShape(p.shape, norm); !ok || !slices.Equal(out, norm) {
		return nil, b.errInvalid("%s %v does not broadcast to the normalised shape %v", which, p.shape, norm)
	}
	if prod(p.shape) == prod(norm) {
		return nil, nil
	}
	idx := make([]int, prod(norm))
	pos := make([]int, len(norm)) // odometer over norm
	for i := range idx {
		at, stride := 0, 1
		for d := len(norm) - 1; d >= 0; d-- {
			if pd := dimFromRight(p.shape, len(norm)-1-d); pd != 1 {
				at += pos[d] * stride
				stride *= pd
			}
		}
		idx[i] = at
		for d := len(norm) - 1; d >= 0; d-- {
			if pos[d]++; pos[d] < norm[d] {
				break
			}
			pos[d] = 0
		}
	}
	return idx, nil
}

type layerNormOutput uint8

const (
	lnY layerNormOutput = iota
	lnMean
	lnInvStdDev
)

// layerNormKernel computes one of LayerNormalization's outputs over rows
// of size elements.
type layerNormKernel struct {
	outer, size int
	eps         float64
	axis        int
	output      layerNormOutput
	// scaleIdx and biasIdx map a row element to its parameter; nil when
	// the parameter has the row's shape.
	scaleIdx, biasIdx []int
}

func (k *layerNormKernel) String() string {
	return fmt.Sprintf("LayerNormalization(axis=%d, eps=%g)%s", k.axis, k.eps, [...]string{"", ".Mean", ".InvStdDev"}[k.output])
}

func (k *layerNormKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	if k.output != lnY {
		switch x := ins[0]; x.Dtype() {
		case gt.Float32:
			layerNormStats(k, out.Float32s(), x.Float32s())
		case gt.Float64:
			layerNormStats(k, out.Float32s(), x.Float64s())
		default:
			return fmt.Errorf("dtype %v not supported", x.Dtype())
		}
		return nil
	}
	switch out.Dtype() {
	case gt.Float32:
		layerNorm(k, out.Float32s(), ins[0].Float32s(), ins[1].Float32s(), optionalFloatInput[float32](ins, 2))
	case gt.Float64:
		layerNorm(k, out.Float64s(), ins[0].Float64s(), ins[1].Float64s(), optionalFloatInput[float64](ins, 2))
	default:
		return fmt.Errorf("dtype %v not supported", out.Dtype())
	}
	return nil
}

func optionalFloatInput[T float32 | float64](ins []*gt.Dense, i int) []T {
	if i >= len(ins) {
		return nil
	}
	var z T
	if _, ok := any(z).(float32); ok {
		return any(ins[i].Float32s()).([]T)
	}
	return any(ins[i].Float64s()).([]T)
}

func layerNorm[T float32 | float64](k *layerNormKernel, y, x, scale, bias []T) {
	for o := range k.outer {
		xs, ys := x[o*k.size:(o+1)*k.size], y[o*k.size:(o+1)*k.size]
		mean, inv := meanInvStd(xs, k.eps)
		for j, v := range xs {
			s := scale[paramIndexAt(k.scaleIdx, j)]
			r := (float64(v) - mean) * inv * float64(s)
			if bias != nil {
				r += float64(bias[paramIndexAt(k.biasIdx, j)])
			}
			ys[j] = T(r)
		}
	}
}

func paramIndexAt(idx []int, j int) int {
	if idx == nil {
		return j
	}
	return idx[j]
}

func layerNormStats[T float32 | float64](k *layerNormKernel, out []float32, x []T) {
	for o := range k.outer {
		mean, inv := meanInvStd(x[o*k.size:(o+1)*k.size], k.eps)
		if k.output == lnMean {
			out[o] = float32(mean)
		} else {
			out[o] = float32(inv)
		}
	}
}

// buildDropout: at inference Dropout passes X through and its mask is
// all true. Training-mode dropout is random, and refused: at load when
// training_mode and a non-zero ratio are constants, on the request
// otherwise. Training with ratio 0 drops nothing, so it runs.
func buildDropout(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	x, ratio, training := in[0], optional(in, 1), optional(in, 2)
	if err := b.checkDType(x, "input", floats); err != nil {
		return nil, err
	}
	if b.opset >= 12 && n.Has("ratio") {
		return nil, b.errInvalid("attribute ratio became an input in opset 12, the model imports opset %d", b.opset)
	}
	if b.opset < 12 && (ratio != nil || training != nil || n.Has("seed")) {
		return nil, b.errInvalid("inputs ratio and training_mode and attribute seed are defined from opset 12, the model imports opset %d", b.opset)
	}
	if r := n.Float("ratio", 0.5); r < 0 || r >= 1 {
		return nil, b.errInvalid("ratio is %v, want a value in [0, 1)", r)
	}
	if ratio != nil {
		if err := b.checkDType(ratio, "ratio", floats); err != nil {
			return nil, err
		}
		if len(ratio.shape) != 0 {
			return nil, b.errInvalid("ratio has shape %v, want a scalar", ratio.shape)
		}
	}
	if training != nil {
		if err := b.checkDType(training, "training_mode", []tensor.DType{tensor.Bool}); err != nil {
			return nil, err
		}
		if len(training.shape) != 0 {
			return nil, b.errInvalid("training_mode has shape %v, want a scalar", training.shape)
		}
	}
	k := &dropoutKernel{ratioAt: -1, trainingAt: -1}
	ins := []*value{x}
	inference := training == nil || (training.konst != nil && !training.konst.Data.([]bool)[0])
	if !inference {
		// Training may be on: whether it drops anything depends on the
		// ratio (0.5 when omitted).
		r, known := 0.5, true
		if ratio != nil {
			if known = ratio.konst != nil; known {
				r = constScalarFloat(ratio.konst)
			}
		}
		if known && (r < 0 || r >= 1) {
			return nil, b.errInvalid("ratio is %v, want a value in [0, 1)", r)
		}
		switch {
		case training.konst != nil && known && r != 0:
			return nil, b.errUnsupported("training_mode is true with ratio %v: training-mode dropout is random and not supported (export the model in eval mode)", r)
		case training.konst != nil && known:
			// Training with ratio 0: the identity.
		default:
			if ratio != nil {
				k.ratioAt = len(ins)
				ins = append(ins, ratio)
			}
			k.trainingAt = len(ins)
			ins = append(ins, training)
		}
	}
	y := x
	if k.trainingAt >= 0 {
		var err error
		if y, err = b.apply(k, x.dt, x.shape, ins...); err != nil {
			return nil, err
		}
	}
	if len(n.Outputs) < 2 {
		return []*value{y}, nil
	}
	if n.Outputs[1] == "" {
		return []*value{y, y}, nil // an omitted output is never read
	}
	// The mask is bool from opset 10; before, it has X's dtype.
	maskDT := tensor.Bool
	if b.opset < 10 {
		maskDT = x.dt
	}
	mask, err := b.apply(dropoutMaskKernel{}, maskDT, x.shape, x)
	if err != nil {
		return nil, err
	}
	return []*value{y, mask}, nil
}

// constScalarFloat reads a float32 or float64 scalar constant.
func constScalarFloat(t *tensor.Tensor) float64 {
	switch d := t.Data.(type) {
	case []float32:
		return float64(d[0])
	case []float64:
		return d[0]
	}
	return math.NaN()
}

// dropoutKernel passes X through, failing the request when it turns out
// to be in training mode with a non-zero ratio: Corvid does not drop at
// random.
type dropoutKernel struct {
	ratioAt, trainingAt int // input positions, -1 when absent
}

func (k *dropoutKernel) String() string { return "Dropout(checked)" }

func (k *dropoutKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	if ins[k.trainingAt].Bools()[0] {
		ratio := 0.5
		if k.ratioAt >= 0 {
			switch r := ins[k.ratioAt]; r.Dtype() {
			case gt.Float32:
				ratio = float64(r.Float32s()[0])
			case gt.Float64:
				ratio = r.Float64s()[0]
			}
		}
		if ratio != 0 {
			return fmt.Errorf("training_mode is true with ratio %v: training-mode dropout is random and not supported", ratio)
		}
	}
	return copyDense(out, ins[0])
}

// dropoutMaskKernel fills its output with ones (true for bool): Dropout's mask
// when nothing is dropped. Its input only orders it in the graph.
type dropoutMaskKernel struct{}

func (dropoutMaskKernel) String() string { return "Dropout.Mask" }

func (dropoutMaskKernel) run(out *gt.Dense, _ []*gt.Dense) error {
	switch out.Dtype() {
	case gt.Bool:
		setAll(out.Bools(), true)
	case gt.Float32:
		setAll(out.Float32s(), 1)
	case gt.Float64:
		setAll(out.Float64s(), 1)
	default:
		return fmt.Errorf("dtype %v not supported", out.Dtype())
	}
	return nil
}
