package quantize

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	onnxpb "github.com/corvidml/corvid/gen/go/onnx"
	"github.com/corvidml/corvid/kernels"
	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/runtime"
	"github.com/corvidml/corvid/server/tensor"
)

// The quantization modes, as model.yaml and the model's metadata name them.
const (
	ModeDynamic = "int8-dynamic"
	ModeStatic  = "int8-static"
)

// MetadataKey is the metadata_props entry Quantize sets to the mode.
const MetadataKey = "corvid.quantization"

// ErrNothingToQuantize reports a model without a single MatMul, Gemm or
// Conv that Quantize can rewrite; the error says why each was skipped.
var ErrNothingToQuantize = errors.New("nothing to quantize")

// Options configures Quantize.
type Options struct {
	// Calibration holds one array per graph input, samples along the first
	// axis, the rest of the shape as the input declares it. Set, it makes
	// the result static (calibrated activation scales); nil, dynamic.
	// float64 arrays are converted for float32 inputs.
	Calibration map[string]*tensor.Tensor
	// Runtime configures the model compiled to calibrate.
	Runtime runtime.Options
}

// Skip is a MatMul, Gemm or Conv node left in float32, and why.
type Skip struct {
	Node, OpType, Reason string
}

// Report describes what Quantize did.
type Report struct {
	Mode string // ModeDynamic or ModeStatic
	// Quantized counts the rewritten nodes by operator (MatMul, Gemm,
	// Conv).
	Quantized       map[string]int
	Skipped         []Skip
	CalibrationRows int // rows of the calibration set (static only)
	BytesBefore     int
	BytesAfter      int
}

// Ops lists the quantized operators with their counts, such as
// "3 MatMul, 1 Conv".
func (r Report) Ops() string {
	var parts []string
	for _, op := range slices.Sorted(maps.Keys(r.Quantized)) {
		parts = append(parts, fmt.Sprintf("%d %s", r.Quantized[op], op))
	}
	return strings.Join(parts, ", ")
}

// Quantize rewrites a float32 ONNX model into int8 (see the package
// documentation) and returns the new model's bytes. Errors wrap
// onnx.ErrInvalidModel or onnx.ErrUnsupported (the model), ErrCalibration
// (the calibration set) or ErrNothingToQuantize.
func Quantize(ctx context.Context, model []byte, opts Options) ([]byte, Report, error) {
	rep := Report{Mode: ModeDynamic, Quantized: map[string]int{}, BytesBefore: len(model)}
	g, err := onnx.Decode(model)
	if err != nil {
		return nil, rep, err
	}
	static := opts.Calibration != nil
	var cal map[string]*tensor.Tensor
	if static {
		rep.Mode = ModeStatic
		if cal, rep.CalibrationRows, err = CheckCalibration(g.Inputs, opts.Calibration); err != nil {
			return nil, rep, err
		}
	}
	opset := g.Opset()
	if opset != 0 && opset < 10 {
		return nil, rep, fmt.Errorf("%w: default operator set version %d; quantized operators need version 10 or later (re-export the model with a newer opset)", onnx.ErrUnsupported, opset)
	}
	var mp onnxpb.ModelProto
	if err := proto.Unmarshal(model, &mp); err != nil {
		return nil, rep, fmt.Errorf("%w: %v", onnx.ErrInvalidModel, err)
	}
	gp := mp.Graph

	r := &rewriter{gp: gp, static: static, names: newNamer(gp), inits: map[string]*onnxpb.TensorProto{}}
	for _, tp := range gp.Initializer {
		r.inits[tp.GetName()] = tp
	}
	if mp.GetIrVersion() >= 4 {
		r.overridable = map[string]bool{}
		for _, vi := range gp.Input {
			r.overridable[vi.GetName()] = true
		}
	}
	plans := map[*onnxpb.NodeProto]*opPlan{}
	var acts []string
	for i, np := range gp.Node {
		if np.GetDomain() != "" && np.GetDomain() != "ai.onnx" {
			continue
		}
		switch np.GetOpType() {
		case "MatMul", "Gemm", "Conv":
		default:
			continue
		}
		p, reason := r.plan(np)
		if reason != "" {
			rep.Skipped = append(rep.Skipped, Skip{Node: cmp.Or(np.GetName(), fmt.Sprintf("#%d", i)), OpType: np.GetOpType(), Reason: reason})
			continue
		}
		plans[np] = p
		acts = append(acts, p.act)
	}
	if len(plans) == 0 {
		var why []string
		for _, s := range rep.Skipped {
			why = append(why, fmt.Sprintf("%s %q: %s", s.OpType, s.Node, s.Reason))
		}
		if len(why) == 0 {
			return nil, rep, fmt.Errorf("%w: the model has no MatMul, Gemm or Conv node", ErrNothingToQuantize)
		}
		return nil, rep, fmt.Errorf("%w: %s", ErrNothingToQuantize, strings.Join(why, "; "))
	}

	// DynamicQuantizeLinear is opset 11; per-axis DequantizeLinear 13.
	need := int64(11)
	if static {
		need = 13
	}
	if opset < need {
		if err := raiseOpset(&mp, opset, need); err != nil {
			return nil, rep, err
		}
	}
	if static {
		ranges, err := Calibrate(ctx, model, acts, []map[string]*tensor.Tensor{cal}, CalibrateOptions{Runtime: opts.Runtime})
		if err != nil {
			return nil, rep, fmt.Errorf("calibrating: %w", err)
		}
		r.ranges = ranges
	}

	var nodes []*onnxpb.NodeProto
	for _, np := range gp.Node {
		p := plans[np]
		if p == nil {
			nodes = append(nodes, np)
			continue
		}
		rewritten, err := r.rewrite(p)
		if err != nil {
			return nil, rep, fmt.Errorf("%s %q: %w", np.GetOpType(), np.GetName(), err)
		}
		nodes = append(nodes, rewritten...)
		rep.Quantized[np.GetOpType()]++
	}
	gp.Node = nodes
	gp.Initializer = append(gp.Initializer, r.added...)
	r.dropUnused()
	setMetadata(&mp, rep.Mode)

	out, err := proto.Marshal(&mp)
	if err != nil {
		return nil, rep, err
	}
	if _, err := onnx.Decode(out); err != nil {
		return nil, rep, fmt.Errorf("quantize: internal error: the quantized model does not decode: %w", err)
	}
	rep.BytesAfter = len(out)
	return out, rep, nil
}

// opPlan is one node to rewrite.
type opPlan struct {
	np     *onnxpb.NodeProto
	act    string         // the float activation input
	weight string         // the weight initializer's name
	w      *tensor.Tensor // its value, Gemm's alpha folded in
	alpha  float32
	transB bool
	// bias: Gemm's C or Conv's B ("" for none). biasT is its value when
	// constant (Gemm's beta folded in), nil when computed.
	bias  string
	biasT *tensor.Tensor
}

type rewriter struct {
	gp          *onnxpb.GraphProto
	static      bool
	names       *namer
	inits       map[string]*onnxpb.TensorProto
	overridable map[string]bool // graph inputs, which may replace initializers of the same name (IR >= 4)
	ranges      map[string]Range

	added    []*onnxpb.TensorProto
	actOut   map[string][3]string // activation -> (input for the op, scale, zero point)
	weights  map[string][3]string // weight key -> (quantized or dequantized, scale, zero point)
	replaced []string             // initializers the rewrite may have left unused
}

// constant returns the value of a float32 initializer, or why it is not
// one.
func (r *rewriter) constant(name, what string) (*tensor.Tensor, string) {
	tp := r.inits[name]
	if tp == nil {
		return nil, fmt.Sprintf("%s %q is not an initializer", what, name)
	}
	if r.overridable[name] {
		return nil, fmt.Sprintf("%s %q is also a graph input, so callers may replace it", what, name)
	}
	if dt := tp.GetDataType(); dt != int32(onnxpb.TensorProto_FLOAT) {
		return nil, fmt.Sprintf("%s %q is %v, want FLOAT", what, name, onnxpb.TensorProto_DataType(dt))
	}
	t, err := initializerValue(tp)
	if err != nil {
		return nil, fmt.Sprintf("%s %q: %v", what, name, err)
	}
	if !finite(t.Data.([]float32)) {
		return nil, fmt.Sprintf("%s %q holds NaN or infinite values", what, name)
	}
	return t, ""
}

// plan decides whether np can be rewritten; the reason is "" when it can.
func (r *rewriter) plan(np *onnxpb.NodeProto) (*opPlan, string) {
	in := np.GetInput()
	if len(in) < 2 || in[0] == "" || in[1] == "" {
		return nil, "inputs missing"
	}
	if _, ok := r.inits[in[0]]; ok {
		return nil, fmt.Sprintf("input %q is constant", in[0])
	}
	p := &opPlan{np: np, act: in[0], weight: in[1], alpha: 1}
	var why string
	switch np.GetOpType() {
	case "MatMul":
		if p.w, why = r.constant(in[1], "B"); why != "" {
			return nil, why
		}
		if len(p.w.Shape) != 2 {
			return nil, fmt.Sprintf("B %q has shape %v, want 2-D", in[1], p.w.Shape)
		}
	case "Gemm":
		if intAttr(np, "transA", 0) != 0 {
			return nil, "transA=1"
		}
		p.transB = intAttr(np, "transB", 0) != 0
		p.alpha = floatAttr(np, "alpha", 1)
		beta := floatAttr(np, "beta", 1)
		if p.w, why = r.constant(in[1], "B"); why != "" {
			return nil, why
		}
		if len(p.w.Shape) != 2 {
			return nil, fmt.Sprintf("B %q has shape %v, want 2-D", in[1], p.w.Shape)
		}
		if p.alpha != 1 {
			w := p.w.Data.([]float32)
			scaled := make([]float32, len(w))
			for i, v := range w {
				scaled[i] = v * p.alpha
			}
			p.w = &tensor.Tensor{DType: tensor.Float32, Shape: p.w.Shape, Data: scaled}
		}
		if len(in) > 2 && in[2] != "" {
			p.bias = in[2]
			c, why := r.constant(in[2], "C")
			switch {
			case why == "":
				if beta != 1 {
					d := c.Data.([]float32)
					scaled := make([]float32, len(d))
					for i, v := range d {
						scaled[i] = v * beta
					}
					c = &tensor.Tensor{DType: tensor.Float32, Shape: c.Shape, Data: scaled}
				}
				p.biasT = c
			case !r.static && beta != 1:
				return nil, fmt.Sprintf("C %q is computed and beta is %g", in[2], beta)
			}
		}
	case "Conv":
		if p.w, why = r.constant(in[1], "W"); why != "" {
			return nil, why
		}
		if len(p.w.Shape) < 3 {
			return nil, fmt.Sprintf("W %q has shape %v, want [M C k...]", in[1], p.w.Shape)
		}
		if len(in) > 2 && in[2] != "" {
			p.bias = in[2]
			b, why := r.constant(in[2], "B")
			switch {
			case why == "":
				p.biasT = b
			case !r.static:
				return nil, fmt.Sprintf("bias B %q is computed", in[2])
			}
		}
	}
	return p, ""
}

// rewrite returns the nodes that replace p's node, in order.
func (r *rewriter) rewrite(p *opPlan) ([]*onnxpb.NodeProto, error) {
	if r.static {
		return r.rewriteStatic(p)
	}
	return r.rewriteDynamic(p)
}

func (r *rewriter) addInit(t *onnxpb.TensorProto) string {
	r.added = append(r.added, t)
	return t.Name
}

// activation returns the nodes that quantize activation a (none when an
// earlier op already did) and the names of its quantized form, scale and
// zero point: DequantizeLinear(QuantizeLinear(a)) in static mode,
// DynamicQuantizeLinear(a)'s outputs in dynamic mode.
func (r *rewriter) activation(a string) ([]*onnxpb.NodeProto, [3]string) {
	if r.actOut == nil {
		r.actOut = map[string][3]string{}
	}
	if out, ok := r.actOut[a]; ok {
		return nil, out
	}
	var nodes []*onnxpb.NodeProto
	var out [3]string
	if r.static {
		rg := r.ranges[a]
		s, z := kernels.QuantParamsU8(rg.Min, rg.Max)
		scale := r.addInit(floatInit(r.names.fresh(a+"_scale"), nil, []float32{s}))
		zp := r.addInit(uint8Init(r.names.fresh(a+"_zero_point"), nil, []uint8{z}))
		q, dq := r.names.fresh(a+"_quantized"), r.names.fresh(a+"_dequantized")
		nodes = append(nodes,
			node(r.names.fresh(a+"_QuantizeLinear"), "QuantizeLinear", []string{a, scale, zp}, []string{q}),
			node(r.names.fresh(a+"_DequantizeLinear"), "DequantizeLinear", []string{q, scale, zp}, []string{dq}))
		out = [3]string{dq, scale, zp}
	} else {
		q, scale, zp := r.names.fresh(a+"_quantized"), r.names.fresh(a+"_scale"), r.names.fresh(a+"_zero_point")
		nodes = append(nodes, node(r.names.fresh(a+"_DynamicQuantizeLinear"), "DynamicQuantizeLinear", []string{a}, []string{q, scale, zp}))
		out = [3]string{q, scale, zp}
	}
	r.actOut[a] = out
	return nodes, out
}

// weight quantizes w per channel along axis into initializers (shared
// between ops that use the same weights the same way) and returns the
// names of the int8 weights, scales and zero points. scaleShape is the
// shape to give the scales (nil: [channels]).
func (r *rewriter) weight(key, base string, w []float32, shape []int64, axis int, scaleShape []int64) ([3]string, error) {
	if r.weights == nil {
		r.weights = map[string][3]string{}
	}
	if out, ok := r.weights[key]; ok {
		return out, nil
	}
	q, scales, err := perChannel(w, shape, axis)
	if err != nil {
		return [3]string{}, err
	}
	if scaleShape == nil {
		scaleShape = []int64{int64(len(scales))}
	}
	out := [3]string{
		r.addInit(int8Init(r.names.fresh(base+"_quantized"), slices.Clone(shape), q)),
		r.addInit(floatInit(r.names.fresh(base+"_scale"), scaleShape, scales)),
	}
	if r.static {
		out[2] = r.addInit(int8Init(r.names.fresh(base+"_zero_point"), []int64{int64(len(scales))}, make([]int8, len(scales))))
	}
	r.weights[key] = out
	r.replaced = append(r.replaced, base)
	return out, nil
}

// rewriteStatic: the op reads DequantizeLinear(QuantizeLinear(x)) and
// DequantizeLinear(int8 weights, per-channel scale, zero point 0).
func (r *rewriter) rewriteStatic(p *opPlan) ([]*onnxpb.NodeProto, error) {
	nodes, act := r.activation(p.act)
	axis := 0 // Conv [M C k...], Gemm transB [N K]
	if p.np.GetOpType() == "MatMul" || p.np.GetOpType() == "Gemm" && !p.transB {
		axis = 1 // [K N]
	}
	key := fmt.Sprintf("%s|static|%d|%g", p.weight, axis, p.alpha)
	w, err := r.weight(key, p.weight, p.w.Data.([]float32), p.w.Shape, axis, nil)
	if err != nil {
		return nil, err
	}
	dqKey := key + "|dq"
	dq, ok := r.weights[dqKey]
	if !ok {
		dq = [3]string{r.names.fresh(p.weight + "_dequantized")}
		nodes = append(nodes, node(r.names.fresh(p.weight+"_DequantizeLinear"), "DequantizeLinear",
			[]string{w[0], w[1], w[2]}, []string{dq[0]}, intAttrProto("axis", int64(axis))))
		r.weights[dqKey] = dq
	}
	op := proto.Clone(p.np).(*onnxpb.NodeProto)
	op.Input[0], op.Input[1] = act[0], dq[0]
	if op.GetOpType() == "Gemm" {
		dropAttrs(op, "alpha")
		if p.biasT != nil {
			dropAttrs(op, "beta")
			if floatAttr(p.np, "beta", 1) != 1 {
				op.Input[2] = r.addInit(floatInit(r.names.fresh(p.bias+"_scaled"), p.biasT.Shape, p.biasT.Data.([]float32)))
				r.replaced = append(r.replaced, p.bias)
			}
		}
	}
	return append(nodes, op), nil
}

// rewriteDynamic emits ONNX Runtime's dynamic form:
//
//	DynamicQuantizeLinear(x) -> MatMulInteger or ConvInteger(x_q, W_q, x_zp)
//	  -> Cast(float) -> Mul(x_scale * w_scale) [-> Add(bias)]
func (r *rewriter) rewriteDynamic(p *opPlan) ([]*onnxpb.NodeProto, error) {
	nodes, act := r.activation(p.act)
	np := p.np
	out := np.GetOutput()[0]
	base := cmp.Or(np.GetName(), out)
	var integer *onnxpb.NodeProto
	var w [3]string
	var err error
	var bias string
	intOut := r.names.fresh(out + "_int32")
	switch np.GetOpType() {
	case "MatMul", "Gemm":
		wv, shape := p.w.Data.([]float32), p.w.Shape
		if p.transB { // MatMulInteger takes B as [K N]
			wv = transpose2D(wv, int(shape[0]), int(shape[1]))
			shape = []int64{shape[1], shape[0]}
		}
		key := fmt.Sprintf("%s|dynamic|%t|%g", p.weight, p.transB, p.alpha)
		w, err = r.weight(key, p.weight, wv, shape, 1, nil)
		integer = node(r.names.fresh(base+"_MatMulInteger"), "MatMulInteger", []string{act[0], w[0], act[2]}, []string{intOut})
		if p.biasT != nil {
			bias = p.bias
			if floatAttr(np, "beta", 1) != 1 {
				bias = r.addInit(floatInit(r.names.fresh(p.bias+"_scaled"), p.biasT.Shape, p.biasT.Data.([]float32)))
				r.replaced = append(r.replaced, p.bias)
			}
		} else if p.bias != "" {
			bias = p.bias // computed, beta 1 (plan refused others)
		}
	case "Conv":
		// Scales and bias broadcast over [N M spatial...] as [M 1...].
		bshape := []int64{p.w.Shape[0]}
		for range len(p.w.Shape) - 2 {
			bshape = append(bshape, 1)
		}
		w, err = r.weight(p.weight+"|dynamic|conv", p.weight, p.w.Data.([]float32), p.w.Shape, 0, bshape)
		integer = proto.Clone(np).(*onnxpb.NodeProto)
		integer.Name, integer.OpType = r.names.fresh(base+"_ConvInteger"), "ConvInteger"
		integer.Input, integer.Output = []string{act[0], w[0], act[2]}, []string{intOut}
		if p.biasT != nil {
			bias = r.addInit(floatInit(r.names.fresh(p.bias+"_reshaped"), bshape, p.biasT.Data.([]float32)))
			r.replaced = append(r.replaced, p.bias)
		}
	}
	if err != nil {
		return nil, err
	}
	floatOut := r.names.fresh(out + "_float")
	scale := r.names.fresh(out + "_scale")
	scaled := out
	if bias != "" {
		scaled = r.names.fresh(out + "_unbiased")
	}
	nodes = append(nodes, integer,
		node(r.names.fresh(base+"_Cast"), "Cast", []string{intOut}, []string{floatOut}, intAttrProto("to", int64(onnxpb.TensorProto_FLOAT))),
		node(r.names.fresh(base+"_scale_Mul"), "Mul", []string{act[1], w[1]}, []string{scale}),
		node(r.names.fresh(base+"_Mul"), "Mul", []string{floatOut, scale}, []string{scaled}))
	if bias != "" {
		nodes = append(nodes, node(r.names.fresh(base+"_Add"), "Add", []string{scaled, bias}, []string{out}))
	}
	return nodes, nil
}

// dropUnused removes the float initializers the rewrite replaced when no
// node and no graph output reads them any more.
func (r *rewriter) dropUnused() {
	used := map[string]bool{}
	for _, np := range r.gp.Node {
		for _, in := range np.GetInput() {
			used[in] = true
		}
	}
	for _, vi := range r.gp.Output {
		used[vi.GetName()] = true
	}
	drop := map[string]bool{}
	for _, name := range r.replaced {
		if !used[name] {
			drop[name] = true
		}
	}
	r.gp.Initializer = slices.DeleteFunc(r.gp.Initializer, func(tp *onnxpb.TensorProto) bool { return drop[tp.GetName()] })
	r.gp.Input = slices.DeleteFunc(r.gp.Input, func(vi *onnxpb.ValueInfoProto) bool { return drop[vi.GetName()] })
}

// changedSince lists default-domain operators whose meaning or signature
// changed at the given opset version, from 10 on: a model that uses one
// cannot simply import a newer opset.
var changedSince = map[string]int64{
	"Clip": 11, "Pad": 11, "Resize": 11, "Scatter": 11,
	"Dropout": 12,
	"Softmax": 13, "LogSoftmax": 13, "Hardmax": 13, "Split": 13, "Squeeze": 13,
	"Unsqueeze": 13, "ReduceSum": 13, "If": 11, "Loop": 11, "Scan": 11,
}

// raiseOpset makes the model import opset `to` of the default domain, if
// no node changes meaning between from and to.
func raiseOpset(mp *onnxpb.ModelProto, from, to int64) error {
	for _, np := range mp.Graph.Node {
		if d := np.GetDomain(); d != "" && d != "ai.onnx" {
			continue
		}
		if v, ok := changedSince[np.GetOpType()]; ok && v > from && v <= to {
			return fmt.Errorf("%w: the quantized operators need opset %d, the model imports %d, and %s changed meaning at opset %d; re-export the model with opset %d or later",
				onnx.ErrUnsupported, to, from, np.GetOpType(), v, to)
		}
	}
	for _, imp := range mp.OpsetImport {
		if d := imp.GetDomain(); d == "" || d == "ai.onnx" {
			imp.Version = to
		}
	}
	// Opset 13 came with IR version 7.
	mp.IrVersion = max(mp.IrVersion, 7)
	return nil
}

func setMetadata(mp *onnxpb.ModelProto, mode string) {
	mp.MetadataProps = slices.DeleteFunc(mp.MetadataProps, func(e *onnxpb.StringStringEntryProto) bool { return e.GetKey() == MetadataKey })
	mp.MetadataProps = append(mp.MetadataProps, &onnxpb.StringStringEntryProto{Key: MetadataKey, Value: mode + " (corvid quantize)"})
}

// CheckCalibration checks a calibration set against the model's inputs
// and returns it with float64 arrays converted for float32 inputs, and its
// number of rows (samples along the first axis).
func CheckCalibration(inputs []onnx.ValueInfo, cal map[string]*tensor.Tensor) (map[string]*tensor.Tensor, int, error) {
	keys := slices.Sorted(maps.Keys(cal))
	names := make([]string, len(inputs))
	for i, in := range inputs {
		names[i] = in.Name
	}
	for _, k := range keys {
		if !slices.Contains(names, k) {
			return nil, 0, fmt.Errorf("%w: calibration array %q is not an input of the model (inputs: %q)", ErrCalibration, k, names)
		}
	}
	out := make(map[string]*tensor.Tensor, len(inputs))
	rows, rowsOf := -1, ""
	for _, in := range inputs {
		t := cal[in.Name]
		if t == nil {
			return nil, 0, fmt.Errorf("%w: calibration array missing for input %q: got keys %q", ErrCalibration, in.Name, keys)
		}
		if err := t.Validate(); err != nil {
			return nil, 0, fmt.Errorf("%w: calibration array %q: %v", ErrCalibration, in.Name, err)
		}
		if t.DType == tensor.Float64 && in.DType == tensor.Float32 {
			d := t.Data.([]float64)
			f := make([]float32, len(d))
			for i, v := range d {
				f[i] = float32(v)
			}
			t = &tensor.Tensor{DType: tensor.Float32, Shape: t.Shape, Data: f}
		}
		if t.DType != in.DType {
			return nil, 0, fmt.Errorf("%w: calibration array %q is %v, want %v", ErrCalibration, in.Name, t.DType, in.DType)
		}
		if !shapeFits(in.Shape, t.Shape) {
			return nil, 0, fmt.Errorf("%w: calibration array %q has shape %v, want %s (samples along the first axis)", ErrCalibration, in.Name, t.Shape, onnx.FormatShape(in.Shape))
		}
		if len(t.Shape) > 0 {
			if rows >= 0 && int(t.Shape[0]) != rows {
				return nil, 0, fmt.Errorf("%w: calibration array %q has %d rows, %q has %d", ErrCalibration, in.Name, t.Shape[0], rowsOf, rows)
			}
			rows, rowsOf = int(t.Shape[0]), in.Name
		}
		out[in.Name] = t
	}
	if rows == 0 {
		return nil, 0, fmt.Errorf("%w: the calibration arrays have no rows", ErrCalibration)
	}
	return out, max(rows, 1), nil
}

// shapeFits reports whether a calibration array of shape got can feed an
// input declared decl: the same rank and static dimensions, except that a
// declared first dimension of 1 (a model compiled for one sample) takes
// any number of rows.
func shapeFits(decl []int64, got []int64) bool {
	if decl == nil {
		return true
	}
	if len(decl) != len(got) {
		return false
	}
	for i, d := range decl {
		if d >= 0 && d != got[i] && !(i == 0 && d == 1) {
			return false
		}
	}
	return true
}
