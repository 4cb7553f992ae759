package runtime

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/corvidml/corvid/kernels"
	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/tensor"
)

// Fusion: after constant folding, newPlan rewrites the chains that carry
// almost all of a model's arithmetic into single nodes of Corvid's own
// (domain fusedDomain, which no model file can use):
//
//	MatMul(x, W) [-> Add(·, b)] [-> Relu]      x [.. K], W a constant [K N]
//	Gemm(x, W, c) [-> Relu]                     transA = 0, W constant, c a constant vector
//	Conv(x, W, b) [-> Relu]                     W constant
//
// W is packed once per model and shared by every worker's graphs, and the
// bias and ReLU run in the GEMM's epilogue instead of as passes of their own
// (PERF.md: a broadcast add copies the bias, ReLU is a second pass). How the
// product is computed follows the model's Quantization:
//
//   - QuantFP32: float32 SGEMM on the pre-packed weights.
//   - QuantInt8Dynamic: weights quantized per output channel, symmetric int8,
//     at load; activations quantized to uint8 at run time, per row (per
//     image for Conv), so a request's result never depends on the other
//     requests batched with it; u8 x s8 -> s32 GEMM; dequantized in the
//     epilogue with scale_x[row] * scale_w[channel].
//   - QuantInt8Static: the same with a fixed activation scale and zero
//     point per tensor, from ranges measured on a calibration set.
//
// Whatever the mode, a QDQ pattern written by a quantizer (ONNX Runtime's
// quantize_static, `corvid quantize --calibration`) runs on the int8 GEMM as
// written: x -> QuantizeLinear(s, z) -> DequantizeLinear(s, z) -> op, with
// W = DequantizeLinear(int8 constant, per-channel scales, zero point 0).
// The op quantizes x with s and z exactly as QuantizeLinear does and
// multiplies the int8 weights as stored, so it computes what the QDQ graph
// defines, up to the order of float additions.

// unfused turns fusion off for float32 models, for tests that compare the
// fused nodes with the nodes they replace.
var unfused = false

// fusedDomain is the domain of the fused nodes. onnx.Decode refuses any
// domain it has no schema for, so a model file cannot name these nodes.
const fusedDomain = "corvid.fused"

// Quantization selects how the float MatMul, Gemm and Conv nodes with
// constant weights run.
type Quantization int

// The quantization modes.
const (
	// QuantFP32 computes in float32 (the default).
	QuantFP32 Quantization = iota
	// QuantInt8Dynamic quantizes weights at load and activations per row
	// at run time.
	QuantInt8Dynamic
	// QuantInt8Static quantizes activations with ranges measured on a
	// calibration set (Options.Ranges).
	QuantInt8Static
)

func (q Quantization) String() string {
	switch q {
	case QuantFP32:
		return "fp32"
	case QuantInt8Dynamic:
		return "int8-dynamic"
	case QuantInt8Static:
		return "int8-static"
	}
	return fmt.Sprintf("Quantization(%d)", int(q))
}

// ParseQuantization reads a mode as model.yaml spells it.
func ParseQuantization(s string) (Quantization, error) {
	switch s {
	case "", "fp32", "none":
		return QuantFP32, nil
	case "int8-dynamic":
		return QuantInt8Dynamic, nil
	case "int8-static":
		return QuantInt8Static, nil
	}
	return QuantFP32, fmt.Errorf("quantization %q: want fp32, int8-dynamic or int8-static", s)
}

// Range is the interval a value took on a calibration set.
type Range struct{ Min, Max float32 }

// fusedDense is a MatMul or Gemm with its bias and ReLU: out[r] = x[r] W +
// bias, then max(·, 0) if relu. Immutable once made; every graph of a model
// shares it.
type fusedDense struct {
	desc string
	k, n int
	bias []float32 // nil or n values
	// biasShape is the shape the bias had in the graph: a [1 N] bias
	// makes the output of a 1-D x [1 N] rather than [N].
	biasShape []int
	relu      bool

	// Exactly one of fp and q is set.
	fp *kernels.SgemmPackedB
	q  *fusedInt8
}

// fusedInt8 is the int8 form of a weight matrix and how its activations
// are quantized.
type fusedInt8 struct {
	packed *kernels.PackedB // s8 [K N]
	wScale []float32        // per output channel
	static bool             // activations use sx, zx; else per row
	sx     float32
	zx     uint8
	qdq    bool // sx and zx come from the model's QuantizeLinear
}

func (q *fusedInt8) String() string {
	switch {
	case q.qdq:
		return fmt.Sprintf("int8 qdq x_scale=%g x_zero=%d", q.sx, q.zx)
	case q.static:
		return fmt.Sprintf("int8-static x_scale=%g x_zero=%d", q.sx, q.zx)
	}
	return "int8-dynamic"
}

// fusedConv is a Conv with its ReLU, and how it is quantized (q nil:
// float32).
type fusedConv struct {
	relu bool
	q    *fusedInt8     // packed unused: the weights are wq
	wq   *tensor.Tensor // s8, W's shape
}

// fusion is what the rewrite found, by fused node name.
type fusion struct {
	dense map[string]*fusedDense
	conv  map[string]*fusedConv
}

// fuse rewrites p.steps (see the top of this file). ranges holds the
// calibrated range of each fused op's input for QuantInt8Static.
func (p *plan) fuse(mode Quantization, ranges map[string]Range) error {
	p.fused = fusion{dense: map[string]*fusedDense{}, conv: map[string]*fusedConv{}}
	f := &fuser{p: p, mode: mode, ranges: ranges, uses: map[string]int{}, producer: map[string]*onnx.Node{}}
	for _, n := range p.steps {
		for _, in := range n.Inputs {
			f.uses[in]++
		}
		for _, out := range n.Outputs {
			f.producer[out] = n
		}
	}
	for _, o := range p.g.Outputs {
		f.uses[o.Name]++
	}
	for i := range p.g.Nodes {
		for _, out := range p.g.Nodes[i].Outputs {
			if _, ok := f.producer[out]; !ok {
				f.constProducer(out, &p.g.Nodes[i])
			}
		}
	}
	var steps []*onnx.Node
	removed := map[*onnx.Node]bool{}
	for _, n := range p.steps {
		if removed[n] {
			continue
		}
		fn, absorbed, err := f.try(n)
		if err != nil {
			return err
		}
		if fn == nil {
			steps = append(steps, n)
			continue
		}
		for _, a := range absorbed {
			removed[a] = true
		}
		steps = append(steps, fn)
	}
	p.steps = dropDead(steps, p.g.Outputs)
	// The fused ops hold their weights packed: drop the constants no step
	// reads any more, and the graph's copies, so that the float weights
	// are not kept twice. p.g is a shallow copy: the caller's graph is
	// untouched.
	read := map[string]bool{}
	for _, n := range p.steps {
		for _, in := range n.Inputs {
			read[in] = true
		}
	}
	for _, o := range p.g.Outputs {
		read[o.Name] = true
	}
	for name := range p.consts {
		if !read[name] {
			delete(p.consts, name)
		}
	}
	g := *p.g
	g.Initializers = nil
	p.g = &g
	return nil
}

// dropDead removes the steps none of whose outputs is read: the
// QuantizeLinear and DequantizeLinear a fused QDQ op no longer needs.
func dropDead(steps []*onnx.Node, outputs []onnx.ValueInfo) []*onnx.Node {
	live := map[string]bool{}
	for _, o := range outputs {
		live[o.Name] = true
	}
	keep := make([]bool, len(steps))
	for i := len(steps) - 1; i >= 0; i-- {
		n := steps[i]
		for _, out := range n.Outputs {
			keep[i] = keep[i] || (out != "" && live[out])
		}
		if keep[i] {
			for _, in := range n.Inputs {
				live[in] = true
			}
		}
	}
	var kept []*onnx.Node
	for i, n := range steps {
		if keep[i] {
			kept = append(kept, n)
		}
	}
	return kept
}

type fuser struct {
	p      *plan
	mode   Quantization
	ranges map[string]Range
	// uses counts the readers of each value among the steps and the graph
	// outputs; producer maps a computed value to its step.
	uses     map[string]int
	producer map[string]*onnx.Node
	// dq maps a folded constant to the DequantizeLinear node that made it
	// from an int8 constant.
	dq map[string]*onnx.Node
}

func (f *fuser) constProducer(out string, n *onnx.Node) {
	if n.Domain == onnx.DomainDefault && n.OpType == "DequantizeLinear" {
		if f.dq == nil {
			f.dq = map[string]*onnx.Node{}
		}
		f.dq[out] = n
	}
}

// float32Const returns the constant named name if it is float32.
func (f *fuser) float32Const(name string) *tensor.Tensor {
	t := f.p.consts[name]
	if t == nil || t.DType != tensor.Float32 {
		return nil
	}
	return t
}

// only returns the single step reading value, if value has exactly one
// reader, is not a graph output, and that reader is a step of type op.
func (f *fuser) only(value, op string) *onnx.Node {
	if f.uses[value] != 1 {
		return nil
	}
	for _, o := range f.p.g.Outputs {
		if o.Name == value {
			return nil
		}
	}
	for _, n := range f.p.steps {
		if n.Domain == onnx.DomainDefault && n.OpType == op && slices.Contains(n.Inputs, value) {
			return n
		}
	}
	return nil
}

// try fuses the chain starting at n, returning the fused node and the
// steps it replaces, or nil when n starts no chain.
func (f *fuser) try(n *onnx.Node) (*onnx.Node, []*onnx.Node, error) {
	if n.Domain != onnx.DomainDefault {
		return nil, nil, nil
	}
	switch n.OpType {
	case "MatMul", "Gemm":
		return f.tryDense(n)
	case "Conv":
		return f.tryConv(n)
	}
	return nil, nil, nil
}

func (f *fuser) tryDense(n *onnx.Node) (*onnx.Node, []*onnx.Node, error) {
	if len(n.Inputs) < 2 || f.p.consts[n.Inputs[0]] != nil {
		return nil, nil, nil
	}
	w := f.float32Const(n.Inputs[1])
	if w == nil || len(w.Shape) != 2 {
		return nil, nil, nil
	}
	wData := w.Data.([]float32)
	k, nn := int(w.Shape[0]), int(w.Shape[1])
	transB := false
	alpha := float32(1)
	var bias []float32
	var biasShape []int
	if n.OpType == "Gemm" {
		if n.Int("transA", 0) != 0 {
			return nil, nil, nil
		}
		transB = n.Int("transB", 0) != 0
		if transB {
			k, nn = nn, k
		}
		alpha = n.Float("alpha", 1)
		if c := n.Input(2); c != "" && n.Float("beta", 1) != 0 {
			ct := f.float32Const(c)
			if ct == nil {
				return nil, nil, nil
			}
			if bias = biasVector(ct, nn); bias == nil {
				return nil, nil, nil
			}
			beta := n.Float("beta", 1)
			for j := range bias {
				bias[j] *= beta
			}
		}
	}
	if k == 0 || nn == 0 || math.IsNaN(float64(alpha)) {
		return nil, nil, nil
	}
	chain := []*onnx.Node{n}
	out := n.Outputs[0]
	if n.OpType == "MatMul" {
		if add := f.only(out, "Add"); add != nil {
			other := add.Inputs[0]
			if other == out {
				other = add.Input(1)
			}
			if bt := f.float32Const(other); bt != nil && add.Inputs[0] != add.Input(1) && len(bt.Shape) <= 2 {
				if bias = biasVector(bt, nn); bias != nil {
					biasShape = intShape(bt.Shape)
					chain = append(chain, add)
					out = add.Outputs[0]
				}
			}
		}
	}
	relu := false
	if r := f.only(out, "Relu"); r != nil {
		relu = true
		chain = append(chain, r)
		out = r.Outputs[0]
	}
	fd := &fusedDense{k: k, n: nn, bias: bias, biasShape: biasShape, relu: relu}
	x := n.Inputs[0]
	q, err := f.quantFor(x, n, nn)
	if err != nil {
		return nil, nil, err
	}
	if q != nil {
		// An int8 constant behind a per-channel DequantizeLinear is used as
		// stored; other weights are quantized here.
		wq, scales := f.dqWeights(n.Inputs[1], transB, k, nn)
		if wq == nil || alpha != 1 {
			wf := weightsKN(wData, transB, k, nn, alpha)
			if wq, scales, err = kernels.QuantizeWeightsS8(wf, k, nn); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", n.Describe(), err)
			}
		}
		q.wScale = scales
		if q.packed, err = kernels.PackBChecked(wq, k, nn); err != nil {
			return nil, nil, fmt.Errorf("%w: %s: %v", onnx.ErrUnsupported, n.Describe(), err)
		}
		fd.q = q
	} else {
		wf, _ := flushSubnormals(wData)
		if alpha != 1 {
			wf = weightsKN(wf, transB, k, nn, alpha)
			transB = false
		}
		ld := nn
		if transB {
			ld = k
		}
		fd.fp = kernels.PackSgemmB(transB, k, nn, wf, ld)
	}
	ops := make([]string, len(chain))
	for i, c := range chain {
		ops[i] = c.OpType
	}
	mode := "fp32"
	if fd.q != nil {
		mode = fd.q.String()
	}
	fd.desc = fmt.Sprintf("Dense[%s](%dx%d, %s)", strings.Join(ops, "+"), k, nn, mode)
	// The fused node keeps the first node's name and operator, so that
	// errors name what the model calls it.
	fn := &onnx.Node{
		Name:    n.Name,
		OpType:  n.OpType,
		Domain:  fusedDomain,
		Inputs:  []string{f.activation(x, fd.q)},
		Outputs: []string{out},
	}
	f.p.fused.dense[fn.Name] = fd
	return fn, chain, nil
}

// activation is the value a fused op reads: for a QDQ input, the float
// value before the QuantizeLinear, which the op quantizes itself.
func (f *fuser) activation(x string, q *fusedInt8) string {
	if q != nil && q.qdq {
		dq := f.producer[x]
		return f.producer[dq.Inputs[0]].Inputs[0]
	}
	return x
}

// biasVector returns c's n values when c broadcasts along the columns of
// an [M N] product without adding rows: [N], [1 N], or a scalar.
func biasVector(c *tensor.Tensor, n int) []float32 {
	d := c.Data.([]float32)
	switch {
	case len(d) == 1 && len(c.Shape) <= 2:
		v := make([]float32, n)
		setAll(v, d[0])
		return v
	case len(d) == n && (len(c.Shape) == 1 || (len(c.Shape) == 2 && c.Shape[0] == 1)):
		return slices.Clone(d)
	}
	return nil
}

// weightsKN returns alpha * op(W) as [K N], op transposing when transB.
func weightsKN(w []float32, transB bool, k, n int, alpha float32) []float32 {
	out := make([]float32, k*n)
	for r := range k {
		for c := range n {
			v := w[r*n+c]
			if transB {
				v = w[c*k+r]
			}
			out[r*n+c] = alpha * v
		}
	}
	return out
}

// quantFor decides how the fused op reading x quantizes, nil for float32.
// outC is its number of output channels.
func (f *fuser) quantFor(x string, n *onnx.Node, outC int) (*fusedInt8, error) {
	if sx, zx, ok := f.qdqActivation(x); ok {
		return &fusedInt8{static: true, sx: sx, zx: zx, qdq: true}, nil
	}
	switch f.mode {
	case QuantInt8Dynamic:
		return &fusedInt8{}, nil
	case QuantInt8Static:
		r, ok := f.ranges[x]
		if !ok {
			return nil, fmt.Errorf("%w: %s: int8-static: the calibration gave no range for its input %q", onnx.ErrInvalidModel, n.Describe(), x)
		}
		if math.IsNaN(float64(r.Min)) || math.IsNaN(float64(r.Max)) || math.IsInf(float64(r.Min), 0) || math.IsInf(float64(r.Max), 0) {
			return nil, fmt.Errorf("%w: %s: int8-static: calibrated range of %q is [%v, %v], want finite bounds", onnx.ErrInvalidModel, n.Describe(), x, r.Min, r.Max)
		}
		sx, zx := kernels.QuantParamsU8(r.Min, r.Max)
		return &fusedInt8{static: true, sx: sx, zx: zx}, nil
	}
	return nil, nil
}

// qdqActivation recognises x = DequantizeLinear(QuantizeLinear(v, s, z), s,
// z) with one scalar float32 scale and uint8 zero point, both constants,
// and x read by one op only.
func (f *fuser) qdqActivation(x string) (float32, uint8, bool) {
	dq := f.producer[x]
	if dq == nil || dq.Domain != onnx.DomainDefault || dq.OpType != "DequantizeLinear" || f.uses[x] != 1 {
		return 0, 0, false
	}
	q := f.producer[dq.Inputs[0]]
	if q == nil || q.OpType != "QuantizeLinear" || q.Domain != onnx.DomainDefault || f.uses[dq.Inputs[0]] != 1 {
		return 0, 0, false
	}
	if q.Has("output_dtype") || q.Has("block_size") || q.Int("saturate", 1) != 1 {
		return 0, 0, false
	}
	s1, z1, ok1 := f.scalarQParams(q.Input(1), q.Input(2))
	s2, z2, ok2 := f.scalarQParams(dq.Input(1), dq.Input(2))
	if !ok1 || !ok2 || s1 != s2 || z1 != z2 || !(s1 > 0) || math.IsInf(float64(s1), 0) {
		return 0, 0, false
	}
	if v := f.float32Const(q.Inputs[0]); v != nil { // folded already
		return 0, 0, false
	}
	return s1, z1, true
}

// scalarQParams reads a scalar float32 scale and a uint8 or int8 zero
// point (uint8 0 when absent, as QuantizeLinear has it). An int8 zero point
// z comes back as the uint8 z+128: quantizing to uint8 with it gives the
// int8 result plus 128, and the same (q - z) differences.
func (f *fuser) scalarQParams(scale, zero string) (float32, uint8, bool) {
	s := f.float32Const(scale)
	if s == nil || len(s.Data.([]float32)) != 1 {
		return 0, 0, false
	}
	if zero == "" {
		return s.Data.([]float32)[0], 0, true
	}
	z := f.p.consts[zero]
	if z == nil {
		return 0, 0, false
	}
	switch d := z.Data.(type) {
	case []uint8:
		if len(d) == 1 {
			return s.Data.([]float32)[0], d[0], true
		}
	case []int8:
		if len(d) == 1 {
			return s.Data.([]float32)[0], uint8(int32(d[0]) + 128), true
		}
	}
	return 0, 0, false
}

// dqWeights returns the int8 [K N] weights and per-column scales behind a
// folded DequantizeLinear(int8 W, scales, 0) with one scale per output
// channel, or nil.
func (f *fuser) dqWeights(name string, transB bool, k, n int) ([]int8, []float32) {
	dq := f.dq[name]
	if dq == nil || dq.Has("block_size") {
		return nil, nil
	}
	w := f.p.consts[dq.Inputs[0]]
	s := f.float32Const(dq.Input(1))
	if w == nil || w.DType != tensor.Int8 || s == nil || len(w.Shape) != 2 {
		return nil, nil
	}
	if z := dq.Input(2); z != "" {
		zt := f.p.consts[z]
		if zt == nil || zt.DType != tensor.Int8 || slices.ContainsFunc(zt.Data.([]int8), func(v int8) bool { return v != 0 }) {
			return nil, nil
		}
	}
	axis := int(dq.Int("axis", 1))
	if axis < 0 {
		axis += 2
	}
	colAxis := 1
	if transB {
		colAxis = 0
	}
	sd := s.Data.([]float32)
	scales := make([]float32, n)
	switch {
	case len(sd) == 1:
		setAll(scales, sd[0])
	case len(sd) == n && axis == colAxis:
		copy(scales, sd)
	default:
		return nil, nil
	}
	wd := w.Data.([]int8)
	out := make([]int8, k*n)
	for r := range k {
		for c := range n {
			if transB {
				out[r*n+c] = wd[c*k+r]
			} else {
				out[r*n+c] = wd[r*n+c]
			}
		}
	}
	return out, scales
}

func (f *fuser) tryConv(n *onnx.Node) (fn *onnx.Node, _ []*onnx.Node, _ error) {
	if len(n.Inputs) < 2 || f.p.consts[n.Inputs[0]] != nil {
		return nil, nil, nil
	}
	w := f.float32Const(n.Inputs[1])
	if w == nil || len(w.Shape) < 3 || w.Shape[0] == 0 {
		return nil, nil, nil
	}
	if b := n.Input(2); b != "" && f.float32Const(b) == nil {
		return nil, nil, nil
	}
	chain := []*onnx.Node{n}
	out := n.Outputs[0]
	fc := &fusedConv{}
	if r := f.only(out, "Relu"); r != nil {
		fc.relu = true
		chain = append(chain, r)
		out = r.Outputs[0]
	}
	outC := int(w.Shape[0])
	x := n.Inputs[0]
	q, err := f.quantFor(x, n, outC)
	if err != nil {
		return nil, nil, err
	}
	if q != nil {
		per := len(w.Data.([]float32)) / outC
		wq, scales := f.dqConvWeights(n.Inputs[1], outC)
		if wq == nil {
			// Per output channel m, W[m] is one column of the GEMM.
			wq, scales, err = kernels.QuantizeWeightsS8(transposeF32(w.Data.([]float32), outC, per), per, outC)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", n.Describe(), err)
			}
			wq = transposeS8(wq, per, outC)
		}
		q.wScale = scales
		fc.q = q
		fc.wq = &tensor.Tensor{DType: tensor.Int8, Shape: slices.Clone(w.Shape), Data: wq}
	}
	if flushed, changed := flushSubnormals(w.Data.([]float32)); q == nil && changed {
		name := "corvid.ftz:" + n.Inputs[1]
		f.p.consts[name] = &tensor.Tensor{DType: tensor.Float32, Shape: slices.Clone(w.Shape), Data: flushed}
		defer func() { fn.Inputs[1] = name }()
	}
	fn = &onnx.Node{
		Name:    n.Name,
		OpType:  "Conv",
		Domain:  fusedDomain,
		Inputs:  slices.Clone(n.Inputs),
		Outputs: []string{out},
		Attrs:   n.Attrs,
	}
	fn.Inputs[0] = f.activation(x, q)
	f.p.fused.conv[fn.Name] = fc
	return fn, chain, nil
}

// dqConvWeights is dqWeights for Conv weights [M C/group kernel...]: the
// int8 constant and one scale per output channel (axis 0).
func (f *fuser) dqConvWeights(name string, outC int) ([]int8, []float32) {
	dq := f.dq[name]
	if dq == nil || dq.Has("block_size") {
		return nil, nil
	}
	w := f.p.consts[dq.Inputs[0]]
	s := f.float32Const(dq.Input(1))
	if w == nil || w.DType != tensor.Int8 || s == nil {
		return nil, nil
	}
	if z := dq.Input(2); z != "" {
		zt := f.p.consts[z]
		if zt == nil || zt.DType != tensor.Int8 || slices.ContainsFunc(zt.Data.([]int8), func(v int8) bool { return v != 0 }) {
			return nil, nil
		}
	}
	sd := s.Data.([]float32)
	scales := make([]float32, outC)
	switch {
	case len(sd) == 1:
		setAll(scales, sd[0])
	case len(sd) == outC && dq.Int("axis", 1) == 0:
		copy(scales, sd)
	default:
		return nil, nil
	}
	return slices.Clone(w.Data.([]int8)), scales
}

// flushSubnormals returns w with its subnormal values (|w| < 2^-126) set
// to zero (a copy, and changed), or w itself when it has none. x86 multiplies by a subnormal tens
// of times slower than by a normal number (measured: the digits model's
// first layer, with 259 subnormal weights of 4096, ran 10x slower at batch
// 64), and such weights change no result anyone could see: each product
// is below 2^-126 times the input.
func flushSubnormals(w []float32) ([]float32, bool) {
	const smallest = 0x1p-126
	var out []float32
	for i, v := range w {
		if v != 0 && v > -smallest && v < smallest {
			if out == nil {
				out = slices.Clone(w)
			}
			out[i] = 0
		}
	}
	if out == nil {
		return w, false
	}
	return out, true
}

func transposeF32(x []float32, rows, cols int) []float32 {
	out := make([]float32, len(x))
	for r := range rows {
		for c := range cols {
			out[c*rows+r] = x[r*cols+c]
		}
	}
	return out
}

func transposeS8(x []int8, rows, cols int) []int8 {
	out := make([]int8, len(x))
	for r := range rows {
		for c := range cols {
			out[c*rows+r] = x[r*cols+c]
		}
	}
	return out
}

// QuantizableInputs lists the values QuantInt8Static needs a calibrated
// Range for: the inputs of the MatMul, Gemm and Conv nodes the int8 modes
// quantize (those with constant float weights and no QDQ of their own),
// each once, in execution order.
func QuantizableInputs(g *onnx.Graph) ([]string, error) {
	p, err := newPlan(g, QuantFP32, nil)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, n := range p.steps {
		if n.Domain != fusedDomain || slices.Contains(names, n.Inputs[0]) {
			continue
		}
		if fd := p.fused.dense[n.Name]; fd != nil && fd.q == nil {
			names = append(names, n.Inputs[0])
		}
		if fc := p.fused.conv[n.Name]; fc != nil && fc.q == nil {
			names = append(names, n.Inputs[0])
		}
	}
	return names, nil
}
