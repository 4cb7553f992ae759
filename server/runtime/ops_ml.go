package runtime

import (
	"fmt"
	"math"
	"strings"

	gt "gorgonia.org/tensor"

	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/tensor"
)

// The ai.onnx.ml operators scikit-learn models export to (through
// skl2onnx): LinearClassifier, LinearRegressor, Scaler, Normalizer and
// Binarizer here; the tree ensembles in ops_ml_trees.go.
//
// ONNX Runtime is the reference these operators are tested against, and
// where the ONNX specification leaves a case open (a binary classifier with
// one score column, a post_transform on a single regression target) they
// do what ONNX Runtime does, as the comments say. The models take a batch
// of samples [N F], or one sample [F]; classifier labels are int64 (string
// labels are refused by onnx.Decode).

func init() {
	registerBuilders(onnx.DomainML, map[string]buildFunc{
		"LinearClassifier":       buildLinearClassifier,
		"LinearRegressor":        buildLinearRegressor,
		"TreeEnsembleClassifier": buildTreeEnsembleClassifier,
		"TreeEnsembleRegressor":  buildTreeEnsembleRegressor,
		"Scaler":                 buildScaler,
		"Normalizer":             buildNormalizer,
		"Binarizer":              buildBinarizer,
	})
}

// samples checks the input of a model operator, a batch [N F] or one
// sample [F] of a numeric type, and returns N and F.
func (b *builder) samples(x *value) (n, features int, err error) {
	if err := b.checkDType(x, "input X", numerics); err != nil {
		return 0, 0, err
	}
	switch len(x.shape) {
	case 1:
		return 1, x.shape[0], nil
	case 2:
		return x.shape[0], x.shape[1], nil
	}
	return 0, 0, b.errInvalid("input X has shape %v, want [N features] or [features]", x.shape)
}

// scoreTransform is the post_transform of the ML operators: how raw
// scores become outputs.
type scoreTransform uint8

const (
	transformNone scoreTransform = iota
	transformLogistic
	transformSoftmax
	transformSoftmaxZero
	transformProbit
)

var scoreTransforms = []string{"NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT"}

func (t scoreTransform) String() string { return scoreTransforms[t] }

// postTransform reads the post_transform attribute.
func (b *builder) postTransform(n *onnx.Node) (scoreTransform, error) {
	s := n.String("post_transform", "NONE")
	for i, name := range scoreTransforms {
		if s == name {
			return scoreTransform(i), nil
		}
	}
	return 0, b.errInvalid("post_transform %q is not one of %s", s, strings.Join(scoreTransforms, ", "))
}

// apply transforms the scores of one sample in place. A single score (one
// regression target) is only transformed by PROBIT: ONNX Runtime leaves it
// as it is under the other transforms, and Corvid matches it.
func (t scoreTransform) apply(scores []float32) {
	if len(scores) == 1 {
		if t == transformProbit {
			scores[0] = probit(scores[0])
		}
		return
	}
	switch t {
	case transformLogistic:
		for i, s := range scores {
			scores[i] = logistic(s)
		}
	case transformSoftmax:
		softmaxScores(scores, false)
	case transformSoftmaxZero:
		softmaxScores(scores, true)
	case transformProbit:
		for i, s := range scores {
			scores[i] = probit(s)
		}
	}
}

func logistic(x float32) float32 {
	return float32(1 / (1 + math.Exp(-float64(x))))
}

// softmaxScores is softmax over one sample's scores, each exp computed
// once and summed in float64. SOFTMAX_ZERO leaves out scores that are zero
// (within 1e-7, as ONNX Runtime tests): a class no tree voted for keeps
// probability 0 instead of taking exp(0)'s share.
func softmaxScores(scores []float32, skipZeros bool) {
	hi := math.Inf(-1)
	for _, s := range scores {
		hi = math.Max(hi, float64(s))
	}
	var sum float64
	for i, s := range scores {
		if skipZeros && s > -1e-7 && s < 1e-7 {
			scores[i] = float32(float64(s) * math.Exp(-hi)) // ~0, as in ONNX Runtime
			continue
		}
		e := math.Exp(float64(s) - hi)
		scores[i] = float32(e)
		sum += e
	}
	for i, e := range scores {
		scores[i] = float32(float64(e) / sum)
	}
}

// probit is the quantile function of the standard normal distribution,
// sqrt(2) * erfinv(2p - 1), with erfinv in Winitzki's closed-form
// approximation (a = 0.147). ONNX Runtime and ONNX's reference
// implementation both compute it so, and ONNX Runtime in float32, where
// the formula cancels badly near p = 0.5 (1e-3 relative there): the
// models' outputs are what that computes, so Corvid repeats it operation
// for operation in float32.
func probit(p float32) float32 {
	x := 2*p - 1
	sign := float32(1)
	if x < 0 {
		sign = -1
	}
	ln := float32(math.Log(float64((1 - x) * (1 + x))))
	v := erfInvTwoOverPiA + 0.5*ln
	v3 := -v + float32(math.Sqrt(float64(v*v-erfInvOneOverA*ln)))
	return sqrt2f * (sign * float32(math.Sqrt(float64(v3))))
}

// Probit's constants, rounded at each step as ONNX Runtime's float32
// expressions are (variables, so that Go does not fold them exactly).
var (
	erfInvA          float32 = 0.147
	erfInvTwoOverPiA         = 2 / (float32(math.Pi) * erfInvA)
	erfInvOneOverA           = 1 / erfInvA
	sqrt2f           float32 = math.Sqrt2
)

// linear reads the coefficients and intercepts of LinearClassifier and
// LinearRegressor: outs rows of features coefficients each.
func (b *builder) linear(n *onnx.Node, features, outs int) (*linearKernel, error) {
	coef := n.Floats("coefficients", nil)
	if len(coef) != outs*features {
		return nil, b.errInvalid("%d coefficients, want %d (%d outputs × %d features of input X)", len(coef), outs*features, outs, features)
	}
	bias := n.Floats("intercepts", nil)
	if n.Has("intercepts") && len(bias) != outs {
		return nil, b.errInvalid("%d intercepts, want %d (one per output)", len(bias), outs)
	}
	k := &linearKernel{features: features, outs: outs, coef: toFloat64s(coef)}
	if bias != nil {
		k.bias = toFloat64s(bias)
	}
	return k, nil
}

// buildLinearClassifier computes the raw scores X·Wᵀ + b once; the label
// (argmax of the raw scores) and the transformed scores are two ops on
// them. multi_class is accepted and, as in ONNX Runtime, changes nothing:
// the scores are the same linear functions either way, and post_transform
// says how they become probabilities.
func buildLinearClassifier(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	x := in[0]
	rows, features, err := b.samples(x)
	if err != nil {
		return nil, err
	}
	if features == 0 {
		return nil, b.errInvalid("input X has no features (shape %v)", x.shape)
	}
	coef := n.Floats("coefficients", nil)
	if len(coef) == 0 || len(coef)%features != 0 {
		return nil, b.errInvalid("%d coefficients for %d features of input X: want a non-zero multiple of %d (one row per class)", len(coef), features, features)
	}
	classes := len(coef) / features
	if !n.Has("classlabels_ints") {
		return nil, b.errInvalid("attribute classlabels_ints is required")
	}
	labels := n.Ints("classlabels_ints", nil)
	post, err := b.postTransform(n)
	if err != nil {
		return nil, err
	}
	// One row of coefficients with two labels is a binary classifier: the
	// score is the positive class's, and ONNX Runtime adds the negative
	// class's column.
	binary := classes == 1
	switch {
	case binary && len(labels) != 2:
		return nil, b.errInvalid("one row of coefficients needs 2 class labels (negative, positive), got %d", len(labels))
	case !binary && len(labels) != classes:
		return nil, b.errInvalid("%d class labels for %d rows of coefficients, want one per row", len(labels), classes)
	case binary && post == transformProbit:
		// ONNX Runtime writes the probits packed into the first half of a
		// [N 2] output: there is no reference to match.
		return nil, b.errUnsupported("post_transform PROBIT on a binary classifier with one row of coefficients")
	}
	lin, err := b.linear(n, features, classes)
	if err != nil {
		return nil, err
	}
	raw, err := b.apply(lin, tensor.Float32, []int{rows, classes}, x)
	if err != nil {
		return nil, err
	}
	label, err := b.apply(&linearLabelKernel{classes: classes, labels: labels}, tensor.Int64, []int{rows}, raw)
	if err != nil {
		return nil, err
	}
	if len(n.Outputs) < 2 {
		return []*value{label}, nil // the scores are not wanted
	}
	if !binary && post == transformNone {
		return []*value{label, raw}, nil
	}
	cols := classes
	if binary {
		cols = 2
	}
	scores, err := b.apply(&linearScoresKernel{classes: classes, post: post}, tensor.Float32, []int{rows, cols}, raw)
	if err != nil {
		return nil, err
	}
	return []*value{label, scores}, nil
}

// buildLinearRegressor computes X·Wᵀ + b and the post_transform in one op.
func buildLinearRegressor(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	x := in[0]
	rows, features, err := b.samples(x)
	if err != nil {
		return nil, err
	}
	targets := n.Int("targets", 1)
	if targets < 1 || targets > int64(tensor.MaxElements) {
		return nil, b.errInvalid("targets is %d, want >= 1", targets)
	}
	lin, err := b.linear(n, features, int(targets))
	if err != nil {
		return nil, err
	}
	if lin.post, err = b.postTransform(n); err != nil {
		return nil, err
	}
	return one(b.apply(lin, tensor.Float32, []int{rows, lin.outs}, x))
}

// linearKernel computes X·Wᵀ + b into float32 [N outs], in float64, then
// applies post (LinearRegressor; a classifier's labels need the raw
// scores, so its post_transform is a separate op).
type linearKernel struct {
	features, outs int
	coef           []float64 // outs rows of features, widened once
	bias           []float64 // nil when the model has no intercepts
	post           scoreTransform
	row            []float64 // one sample, widened; reused
}

func (k *linearKernel) String() string {
	return fmt.Sprintf("Linear(%dx%d, %v)", k.outs, k.features, k.post)
}

func (k *linearKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	switch x := ins[0]; x.Dtype() {
	case gt.Float32:
		linearScores(k, out.Float32s(), x.Float32s())
	case gt.Float64:
		linearScores(k, out.Float32s(), x.Float64s())
	case gt.Int32:
		linearScores(k, out.Float32s(), x.Int32s())
	case gt.Int64:
		linearScores(k, out.Float32s(), x.Int64s())
	default:
		return fmt.Errorf("dtype %v not supported", x.Dtype())
	}
	return nil
}

func linearScores[S number](k *linearKernel, out []float32, x []S) {
	if k.row == nil {
		k.row = make([]float64, k.features)
	}
	for r := range len(out) / k.outs {
		for i, v := range x[r*k.features : (r+1)*k.features] {
			k.row[i] = float64(v)
		}
		o := out[r*k.outs : (r+1)*k.outs]
		for j := range o {
			sum := dotFloat64(k.row, k.coef[j*k.features:(j+1)*k.features])
			if k.bias != nil {
				sum += k.bias[j]
			}
			o[j] = float32(sum)
		}
		k.post.apply(o)
	}
}

// dotFloat64 sums in four independent accumulators, which the CPU
// overlaps.
func dotFloat64(a, b []float64) float64 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// linearLabelKernel picks each sample's label from its raw scores: the
// first highest score's class, or for a binary classifier (one score) the
// positive label when the score is above 0.
type linearLabelKernel struct {
	classes int
	labels  []int64
}

func (k *linearLabelKernel) String() string { return fmt.Sprintf("LinearLabel(%d)", k.classes) }

func (k *linearLabelKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	raw, labels := ins[0].Float32s(), out.Int64s()
	for r := range labels {
		row := raw[r*k.classes : (r+1)*k.classes]
		if k.classes == 1 {
			labels[r] = k.labels[0]
			if row[0] > 0 {
				labels[r] = k.labels[1]
			}
			continue
		}
		best := 0
		for j, s := range row {
			if s > row[best] {
				best = j
			}
		}
		labels[r] = k.labels[best]
	}
	return nil
}

// linearScoresKernel applies the post_transform to raw scores. A binary
// classifier's one score s becomes two columns as in ONNX Runtime:
// [logistic(-s), logistic(s)] under LOGISTIC, [1-s, s] otherwise.
type linearScoresKernel struct {
	classes int
	post    scoreTransform
}

func (k *linearScoresKernel) String() string {
	return fmt.Sprintf("LinearScores(%d, %v)", k.classes, k.post)
}

func (k *linearScoresKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	raw, scores := ins[0].Float32s(), out.Float32s()
	if k.classes > 1 {
		copy(scores, raw)
		for r := range len(scores) / k.classes {
			k.post.apply(scores[r*k.classes : (r+1)*k.classes])
		}
		return nil
	}
	for r, s := range raw[:len(scores)/2] {
		if k.post == transformLogistic {
			scores[2*r], scores[2*r+1] = logistic(-s), logistic(s)
		} else {
			scores[2*r], scores[2*r+1] = 1-s, s
		}
	}
	return nil
}

// buildScaler computes (X - offset) * scale into float32, offset and scale
// each one value per feature (the last axis) or one value for all. ONNX
// Runtime requires both and of equal length; Corvid also takes either
// alone (offset 0, scale 1), as the specification allows.
func buildScaler(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	x := in[0]
	if _, _, err := b.samples(x); err != nil {
		return nil, err
	}
	features := x.shape[len(x.shape)-1]
	k := &scalerKernel{features: features}
	for _, a := range []struct {
		name string
		def  float32
		dst  *[]float32
	}{{"offset", 0, &k.offset}, {"scale", 1, &k.scale}} {
		v := n.Floats(a.name, []float32{a.def})
		if len(v) != 1 && len(v) != features {
			return nil, b.errInvalid("%s has %d values, want 1 or %d (the features of input X %v)", a.name, len(v), features, x.shape)
		}
		*a.dst = v
	}
	k.offset64, k.scale64 = toFloat64s(k.offset), toFloat64s(k.scale)
	return one(b.apply(k, tensor.Float32, x.shape, x))
}

type scalerKernel struct {
	features          int
	offset, scale     []float32
	offset64, scale64 []float64 // for double inputs
}

func (k *scalerKernel) String() string { return fmt.Sprintf("Scaler(%d)", k.features) }

func (k *scalerKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	o := out.Float32s()
	switch x := ins[0]; x.Dtype() {
	case gt.Float32:
		scaleFeatures(k, o, x.Float32s(), func(v float32) float32 { return v })
	case gt.Float64:
		// Double inputs are scaled in double, then rounded, as in ONNX
		// Runtime.
		off, sc := k.offset64, k.scale64
		for i, v := range x.Float64s()[:len(o)] {
			j := i % k.features
			o[i] = float32((v - off[j%len(off)]) * sc[j%len(sc)])
		}
	case gt.Int32:
		scaleFeatures(k, o, x.Int32s(), func(v int32) float32 { return float32(v) })
	case gt.Int64:
		scaleFeatures(k, o, x.Int64s(), func(v int64) float32 { return float32(v) })
	default:
		return fmt.Errorf("dtype %v not supported", x.Dtype())
	}
	return nil
}

// scaleFeatures scales in float32, which an integer converts to first.
func scaleFeatures[S number](k *scalerKernel, out []float32, x []S, f32 func(S) float32) {
	for i, v := range x[:len(out)] {
		j := i % k.features
		out[i] = (f32(v) - k.offset[j%len(k.offset)]) * k.scale[j%len(k.scale)]
	}
}

func toFloat64s(v []float32) []float64 {
	w := make([]float64, len(v))
	for i, f := range v {
		w[i] = float64(f)
	}
	return w
}

type normKind uint8

const (
	normMax normKind = iota
	normL1
	normL2
)

var normKinds = []string{"MAX", "L1", "L2"}

// buildNormalizer divides each sample (a row of [N F], or all of [F]) by
// its norm. MAX divides by the largest value (not the largest magnitude),
// as ONNX Runtime does; a zero norm leaves the sample unchanged. The
// output is float32, computed in float32 like ONNX Runtime's.
func buildNormalizer(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	x := in[0]
	rows, features, err := b.samples(x)
	if err != nil {
		return nil, err
	}
	k := &normalizerKernel{rows: rows, features: features}
	name := n.String("norm", "MAX")
	kind := -1
	for i, s := range normKinds {
		if s == name {
			kind = i
		}
	}
	if kind < 0 {
		return nil, b.errInvalid("norm %q is not one of %s", name, strings.Join(normKinds, ", "))
	}
	k.kind = normKind(kind)
	return one(b.apply(k, tensor.Float32, x.shape, x))
}

type normalizerKernel struct {
	rows, features int
	kind           normKind
}

func (k *normalizerKernel) String() string { return "Normalizer(" + normKinds[k.kind] + ")" }

func (k *normalizerKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	o := out.Float32s()
	switch x := ins[0]; x.Dtype() {
	case gt.Float32:
		normalizeSamples(k, o, x.Float32s(), func(v float32) float32 { return v * v })
	case gt.Float64:
		normalizeSamples(k, o, x.Float64s(), func(v float64) float32 { return float32(v * v) })
	case gt.Int32:
		normalizeSamples(k, o, x.Int32s(), func(v int32) float32 { return float32(float64(v) * float64(v)) })
	case gt.Int64:
		normalizeSamples(k, o, x.Int64s(), func(v int64) float32 { return float32(float64(v) * float64(v)) })
	default:
		return fmt.Errorf("dtype %v not supported", x.Dtype())
	}
	return nil
}

// normalizeSamples squares values with sq, in the input's type as ONNX
// Runtime does (the integers in float64, where they cannot overflow).
func normalizeSamples[S number](k *normalizerKernel, out []float32, x []S, sq func(S) float32) {
	for r := range k.rows {
		row, o := x[r*k.features:(r+1)*k.features], out[r*k.features:(r+1)*k.features]
		var norm float32
		switch k.kind {
		case normMax:
			norm = -math.MaxFloat32
			for _, v := range row {
				if f := float32(v); f > norm { // skips NaN, as std::max does
					norm = f
				}
			}
		case normL1:
			for _, v := range row {
				norm += float32(math.Abs(float64(v)))
			}
		case normL2:
			for _, v := range row {
				norm += sq(v)
			}
		}
		for i, v := range row {
			f := float32(v)
			switch {
			case norm == 0:
				o[i] = f
			case k.kind == normL2:
				// sqrt(x²/Σx²) with x's sign, which rounds as ONNX
				// Runtime's does, rather than x/sqrt(Σx²).
				o[i] = float32(math.Sqrt(float64(sq(v) / norm)))
				if f < 0 {
					o[i] = -o[i]
				}
			default:
				o[i] = f / norm
			}
		}
	}
}

// buildBinarizer maps values above threshold (default 0, as the
// specification says) to 1 and the others, NaN included, to 0, keeping the
// dtype.
func buildBinarizer(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	x := in[0]
	if err := b.checkDType(x, "input X", numerics); err != nil {
		return nil, err
	}
	return one(b.apply(&binarizerKernel{threshold: n.Float("threshold", 0)}, x.dt, x.shape, x))
}

type binarizerKernel struct{ threshold float32 }

func (k *binarizerKernel) String() string { return fmt.Sprintf("Binarizer(%g)", k.threshold) }

func (k *binarizerKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	switch x := ins[0]; x.Dtype() {
	case gt.Float32:
		binarizeValues(out.Float32s(), x.Float32s(), func(v float32) bool { return v > k.threshold })
	case gt.Float64:
		binarizeValues(out.Float64s(), x.Float64s(), func(v float64) bool { return v > float64(k.threshold) })
	case gt.Int32:
		binarizeValues(out.Int32s(), x.Int32s(), func(v int32) bool { return float32(v) > k.threshold })
	case gt.Int64:
		binarizeValues(out.Int64s(), x.Int64s(), func(v int64) bool { return float32(v) > k.threshold })
	default:
		return fmt.Errorf("dtype %v not supported", x.Dtype())
	}
	return nil
}

func binarizeValues[T number](out, x []T, above func(T) bool) {
	for i, v := range x[:len(out)] {
		out[i] = 0
		if above(v) {
			out[i] = 1
		}
	}
}
