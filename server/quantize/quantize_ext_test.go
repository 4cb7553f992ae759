package quantize_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	onnxpb "github.com/corvidml/corvid/gen/go/onnx"
	"github.com/corvidml/corvid/kernels"
	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/quantize"
	"github.com/corvidml/corvid/server/tensor"
)

// ---- building models --------------------------------------------------------

type graph struct {
	nodes  []*onnxpb.NodeProto
	inits  []*onnxpb.TensorProto
	inputs []*onnxpb.ValueInfoProto
	output string
	opset  int64
}

func (g graph) bytes(t *testing.T) []byte {
	t.Helper()
	opset := g.opset
	if opset == 0 {
		opset = 17
	}
	b, err := proto.Marshal(&onnxpb.ModelProto{
		IrVersion: 8, ProducerName: "quantize test", OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: opset}},
		MetadataProps: []*onnxpb.StringStringEntryProto{{Key: "owner", Value: "tests"}},
		Graph: &onnxpb.GraphProto{Name: "g", Node: g.nodes, Initializer: g.inits, Input: g.inputs,
			Output: []*onnxpb.ValueInfoProto{info(g.output, onnxpb.TensorProto_FLOAT)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// info declares a tensor value; dims of -1 are the batch "N".
func info(name string, et onnxpb.TensorProto_DataType, dims ...int64) *onnxpb.ValueInfoProto {
	var shape *onnxpb.TensorShapeProto
	if dims != nil {
		shape = &onnxpb.TensorShapeProto{}
		for _, d := range dims {
			dim := &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}}
			if d < 0 {
				dim.Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "N"}
			}
			shape.Dim = append(shape.Dim, dim)
		}
	}
	return &onnxpb.ValueInfoProto{Name: name, Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
		TensorType: &onnxpb.TypeProto_Tensor{ElemType: int32(et), Shape: shape}}}}
}

func init32(name string, t *tensor.Tensor) *onnxpb.TensorProto {
	return &onnxpb.TensorProto{Name: name, Dims: t.Shape, DataType: int32(onnxpb.TensorProto_FLOAT), FloatData: t.Data.([]float32)}
}

func mk(name, op string, ins []string, outs []string, attrs ...*onnxpb.AttributeProto) *onnxpb.NodeProto {
	return &onnxpb.NodeProto{Name: name, OpType: op, Input: ins, Output: outs, Attribute: attrs}
}

func iattr(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_INT, I: v}
}

func fattr(name string, v float32) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_FLOAT, F: v}
}

func intsAttr(name string, v ...int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_INTS, Ints: v}
}

// random returns normal values; with channelAxis >= 0 each index along
// that axis is scaled by a different power of ten, so that one scale for
// the whole tensor would lose the small channels.
func random(r *rand.Rand, channelAxis int, shape ...int64) *tensor.Tensor {
	t, _ := tensor.New(tensor.Float32, shape)
	d := t.Data.([]float32)
	inner := 1
	if channelAxis >= 0 {
		for _, s := range shape[channelAxis+1:] {
			inner *= int(s)
		}
	}
	for i := range d {
		d[i] = float32(r.NormFloat64())
		if channelAxis >= 0 {
			c := (i / inner) % int(shape[channelAxis])
			d[i] *= float32(math.Pow(10, float64(c%3-1)))
		}
	}
	return t
}

// ---- the quantization error bound --------------------------------------------

// gemmBound is the largest error int8 quantization may cause in
// y = x·w (x [m k], w [k n]), element by element: with the activation
// step sx (rounding error <= sx/2 per element, x within its quantized
// range) and the weight steps sw[j] = max_k |w[k][j]| / 127 (error <=
// sw[j]/2),
//
//	|Δy[i][j]| <= Σ_k |x[i][k]|·sw[j]/2 + (sx/2)·|w[k][j]| + (sx/2)·(sw[j]/2)
//
// plus float32 rounding, bounded by 1e-5 of Σ_k |x|·|w|.
func gemmBound(x []float32, w []float32, m, k, n int, sx float32) []float64 {
	sw := make([]float64, n)
	for kk := range k {
		for j := range n {
			sw[j] = max(sw[j], math.Abs(float64(w[kk*n+j]))/127)
		}
	}
	b := make([]float64, m*n)
	for i := range m {
		for j := range n {
			var s, mag float64
			for kk := range k {
				ax, aw := math.Abs(float64(x[i*k+kk])), math.Abs(float64(w[kk*n+j]))
				s += ax*sw[j]/2 + float64(sx)/2*aw + float64(sx)/2*sw[j]/2
				mag += ax * aw
			}
			b[i*n+j] = s + 1e-5*mag + 1e-6
		}
	}
	return b
}

// activationStep is the scale DynamicQuantizeLinear picks for x, which is
// also the static scale when x is its own calibration set.
func activationStep(x []float32) float32 {
	s, _ := kernels.QuantParamsU8(kernels.MinMax(x))
	return s
}

func transpose(w []float32, r, c int) []float32 {
	t := make([]float32, len(w))
	for i := range r {
		for j := range c {
			t[j*r+i] = w[i*c+j]
		}
	}
	return t
}

// ---- tests ------------------------------------------------------------------

func opTypes(t *testing.T, model []byte) []string {
	t.Helper()
	var mp onnxpb.ModelProto
	if err := proto.Unmarshal(model, &mp); err != nil {
		t.Fatal(err)
	}
	var ops []string
	for _, n := range mp.Graph.Node {
		ops = append(ops, n.OpType)
	}
	return ops
}

func modes(x *tensor.Tensor) []struct {
	name string
	cal  map[string]*tensor.Tensor
} {
	return []struct {
		name string
		cal  map[string]*tensor.Tensor
	}{{quantize.ModeDynamic, nil}, {quantize.ModeStatic, map[string]*tensor.Tensor{"x": x}}}
}

func TestQuantizeMatMulGemm(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const m, k, n = 16, 24, 9
	x := random(r, -1, m, k)
	w := random(r, 1, k, n)   // [K N], channel = column
	wt := random(r, 0, n, k)  // [N K] for transB=1, channel = row
	c := random(r, -1, n)     // Gemm bias
	c2 := random(r, -1, 1, n) // Gemm bias, 2-D
	const alpha, beta = 0.5, 2

	xs := x.Data.([]float32)
	tests := []struct {
		name string
		g    graph
		// want: y = alpha · x·wKN + beta · bias
		wKN   []float32
		alpha float32
		bias  []float32
		beta  float32
		ops   map[string][]string // per mode, the expected op sequence
	}{
		{
			name: "MatMul",
			g: graph{nodes: []*onnxpb.NodeProto{mk("mm", "MatMul", []string{"x", "w"}, []string{"y"})},
				inits: []*onnxpb.TensorProto{init32("w", w)}, inputs: []*onnxpb.ValueInfoProto{info("x", onnxpb.TensorProto_FLOAT, -1, k)}, output: "y"},
			wKN: w.Data.([]float32), alpha: 1,
			ops: map[string][]string{
				quantize.ModeDynamic: {"DynamicQuantizeLinear", "MatMulInteger", "Cast", "Mul", "Mul"},
				quantize.ModeStatic:  {"QuantizeLinear", "DequantizeLinear", "DequantizeLinear", "MatMul"},
			},
		},
		{
			name: "Gemm transB=0 alpha beta bias",
			g: graph{nodes: []*onnxpb.NodeProto{mk("gemm", "Gemm", []string{"x", "w", "c"}, []string{"y"}, fattr("alpha", alpha), fattr("beta", beta))},
				inits: []*onnxpb.TensorProto{init32("w", w), init32("c", c)}, inputs: []*onnxpb.ValueInfoProto{info("x", onnxpb.TensorProto_FLOAT, -1, k)}, output: "y"},
			wKN: w.Data.([]float32), alpha: alpha, bias: c.Data.([]float32), beta: beta,
			ops: map[string][]string{
				quantize.ModeDynamic: {"DynamicQuantizeLinear", "MatMulInteger", "Cast", "Mul", "Mul", "Add"},
				quantize.ModeStatic:  {"QuantizeLinear", "DequantizeLinear", "DequantizeLinear", "Gemm"},
			},
		},
		{
			name: "Gemm transB=1 bias",
			g: graph{nodes: []*onnxpb.NodeProto{mk("gemm", "Gemm", []string{"x", "wt", "c2"}, []string{"y"}, iattr("transB", 1))},
				inits: []*onnxpb.TensorProto{init32("wt", wt), init32("c2", c2)}, inputs: []*onnxpb.ValueInfoProto{info("x", onnxpb.TensorProto_FLOAT, -1, k)}, output: "y"},
			wKN: transpose(wt.Data.([]float32), n, k), alpha: 1, bias: c2.Data.([]float32), beta: 1,
			ops: map[string][]string{
				quantize.ModeDynamic: {"DynamicQuantizeLinear", "MatMulInteger", "Cast", "Mul", "Mul", "Add"},
				quantize.ModeStatic:  {"QuantizeLinear", "DequantizeLinear", "DequantizeLinear", "Gemm"},
			},
		},
	}
	for _, tt := range tests {
		model := tt.g.bytes(t)
		// The exact result, computed here rather than by any runtime.
		scaled := make([]float32, len(tt.wKN))
		for i, v := range tt.wKN {
			scaled[i] = v * tt.alpha
		}
		want := make([]float64, m*n)
		for i := range m {
			for j := range n {
				var s float64
				for kk := range k {
					s += float64(xs[i*k+kk]) * float64(scaled[kk*n+j])
				}
				if tt.bias != nil {
					s += float64(tt.beta) * float64(tt.bias[j])
				}
				want[i*n+j] = s
			}
		}
		bound := gemmBound(xs, scaled, m, k, n, activationStep(xs))
		for _, mode := range modes(x) {
			t.Run(tt.name+"/"+mode.name, func(t *testing.T) {
				out, rep, err := quantize.Quantize(context.Background(), model, quantize.Options{Calibration: mode.cal})
				if err != nil {
					t.Fatal(err)
				}
				op := tt.g.nodes[0].OpType
				if rep.Quantized[op] != 1 || rep.Mode != mode.name {
					t.Errorf("report %+v, want one %s in %s", rep, op, mode.name)
				}
				if got := opTypes(t, out); !slices.Equal(got, tt.ops[mode.name]) {
					t.Errorf("ops %v, want %v", got, tt.ops[mode.name])
				}
				checkModel(t, out, mode.name)
				y := runModel(t, out, map[string]*tensor.Tensor{"x": x})["y"].Data.([]float32)
				var worst, ratio float64
				for i := range want {
					e := math.Abs(float64(y[i]) - want[i])
					if e > bound[i] {
						t.Errorf("y[%d] = %v, want %v within %.3g (error %.3g)", i, y[i], want[i], bound[i], e)
					}
					worst, ratio = max(worst, e), max(ratio, e/bound[i])
				}
				t.Logf("max error %.3g, at most %.2f of the bound", worst, ratio)
			})
		}
	}
}

// checkModel checks what every quantized model must have: the mode in its
// metadata beside the original entries, int8 weight initializers with
// zero points of 0 in static mode, per-axis DequantizeLinear of weights.
func checkModel(t *testing.T, model []byte, mode string) {
	t.Helper()
	var mp onnxpb.ModelProto
	if err := proto.Unmarshal(model, &mp); err != nil {
		t.Fatal(err)
	}
	meta := map[string]string{}
	for _, e := range mp.MetadataProps {
		meta[e.Key] = e.Value
	}
	if !strings.HasPrefix(meta[quantize.MetadataKey], mode) || meta["owner"] != "tests" {
		t.Errorf("metadata %v, want %s=%s... and owner=tests kept", meta, quantize.MetadataKey, mode)
	}
	if mp.ProducerName != "quantize test" {
		t.Errorf("producer %q, want it kept", mp.ProducerName)
	}
	inits := map[string]*onnxpb.TensorProto{}
	for _, tp := range mp.Graph.Initializer {
		inits[tp.Name] = tp
	}
	for _, n := range mp.Graph.Node {
		if n.OpType != "DequantizeLinear" || inits[n.Input[0]] == nil {
			continue
		}
		w, zp := inits[n.Input[0]], inits[n.Input[2]]
		if w.DataType != int32(onnxpb.TensorProto_INT8) || zp == nil || zp.DataType != int32(onnxpb.TensorProto_INT8) || strings.Trim(string(zp.RawData), "\x00") != "" {
			t.Errorf("weight DequantizeLinear %s: weights %v, zero point %v; want int8 and int8 zeros", n.Name, w.DataType, zp)
		}
		if len(n.Attribute) != 1 || n.Attribute[0].Name != "axis" {
			t.Errorf("weight DequantizeLinear %s has attributes %v, want axis", n.Name, n.Attribute)
		}
	}
}

func TestQuantizeConvRelu(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const batch, inC, outC, side = 3, 3, 5, 7
	x := random(r, -1, batch, inC, side, side)
	w := random(r, 0, outC, inC, 3, 3)
	b := random(r, -1, outC)
	g := graph{
		nodes: []*onnxpb.NodeProto{
			mk("conv", "Conv", []string{"x", "w", "b"}, []string{"c"}, intsAttr("pads", 1, 1, 1, 1), intsAttr("kernel_shape", 3, 3)),
			mk("relu", "Relu", []string{"c"}, []string{"y"}),
		},
		inits:  []*onnxpb.TensorProto{init32("w", w), init32("b", b)},
		inputs: []*onnxpb.ValueInfoProto{info("x", onnxpb.TensorProto_FLOAT, -1, inC, side, side)},
		output: "y",
	}
	model := g.bytes(t)
	in := map[string]*tensor.Tensor{"x": x}
	ref := runModel(t, model, in)["y"].Data.([]float32)

	// Each output of channel m sums kc = inC·3·3 products; Relu does not
	// increase an error. Per product: |x|·sw/2 + (sx/2)·|w| + (sx/2)(sw/2)
	// with the channel's step sw = max|w_m|/127, bounded with the largest
	// |x| and the channel's largest |w|, plus float32 rounding.
	xs, ws := x.Data.([]float32), w.Data.([]float32)
	lo, hi := kernels.MinMax(xs)
	maxX := math.Max(-float64(lo), float64(hi))
	sx := float64(activationStep(xs))
	kc := inC * 9
	bound := make([]float64, outC)
	for m := range outC {
		var maxW float64
		for _, v := range ws[m*kc : (m+1)*kc] {
			maxW = max(maxW, math.Abs(float64(v)))
		}
		sw := maxW / 127
		bound[m] = float64(kc)*(maxX*sw/2+sx/2*maxW+sx*sw/4) + 1e-4
	}

	for _, mode := range modes(x) {
		t.Run(mode.name, func(t *testing.T) {
			out, rep, err := quantize.Quantize(context.Background(), model, quantize.Options{Calibration: mode.cal})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Quantized["Conv"] != 1 {
				t.Errorf("report %+v, want one Conv", rep)
			}
			want := map[string][]string{
				quantize.ModeDynamic: {"DynamicQuantizeLinear", "ConvInteger", "Cast", "Mul", "Mul", "Add", "Relu"},
				quantize.ModeStatic:  {"QuantizeLinear", "DequantizeLinear", "DequantizeLinear", "Conv", "Relu"},
			}[mode.name]
			if got := opTypes(t, out); !slices.Equal(got, want) {
				t.Errorf("ops %v, want %v", got, want)
			}
			checkModel(t, out, mode.name)
			y := runModel(t, out, in)["y"].Data.([]float32)
			var ratio float64
			for i := range ref {
				m := i / (side * side) % outC
				e := math.Abs(float64(y[i] - ref[i]))
				if e > bound[m] {
					t.Errorf("y[%d] (channel %d) = %v, want %v within %.3g", i, m, y[i], ref[i], bound[m])
				}
				ratio = max(ratio, e/bound[m])
			}
			t.Logf("max error at most %.2f of the bound", ratio)
		})
	}
}

// TestQuantizeSharedActivation: two ops reading one activation share one
// quantization of it; ops that cannot be quantized are reported and kept.
func TestQuantizeSharedActivation(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	x := random(r, -1, 4, 8)
	g := graph{
		nodes: []*onnxpb.NodeProto{
			mk("a", "MatMul", []string{"x", "w1"}, []string{"a"}),
			mk("b", "MatMul", []string{"x", "w2"}, []string{"b"}),
			mk("c", "MatMul", []string{"a", "b3"}, []string{"c"}), // B is computed
			mk("sum", "Add", []string{"c", "b"}, []string{"y"}),
			mk("b3", "Transpose", []string{"b"}, []string{"b3"}),
		},
		inits:  []*onnxpb.TensorProto{init32("w1", random(r, -1, 8, 4)), init32("w2", random(r, -1, 8, 4))},
		inputs: []*onnxpb.ValueInfoProto{info("x", onnxpb.TensorProto_FLOAT, 4, 8)},
		output: "y",
	}
	// Put Transpose before its consumer: ONNX wants topological order.
	g.nodes = []*onnxpb.NodeProto{g.nodes[0], g.nodes[1], g.nodes[4], g.nodes[2], g.nodes[3]}
	model := g.bytes(t)
	for _, mode := range modes(x) {
		t.Run(mode.name, func(t *testing.T) {
			out, rep, err := quantize.Quantize(context.Background(), model, quantize.Options{Calibration: mode.cal})
			if err != nil {
				t.Fatal(err)
			}
			wantSkip := []quantize.Skip{{Node: "c", OpType: "MatMul", Reason: `B "b3" is not an initializer`}}
			if rep.Quantized["MatMul"] != 2 || !slices.Equal(rep.Skipped, wantSkip) {
				t.Errorf("report %+v, want 2 MatMul and skipped %v", rep, wantSkip)
			}
			ops := opTypes(t, out)
			count := func(op string) int {
				n := 0
				for _, o := range ops {
					if o == op {
						n++
					}
				}
				return n
			}
			if q, d := count("QuantizeLinear"), count("DynamicQuantizeLinear"); q+d != 1 {
				t.Errorf("ops %v: %d QuantizeLinear and %d DynamicQuantizeLinear, want one quantization of x", ops, q, d)
			}
			runModel(t, out, map[string]*tensor.Tensor{"x": x})
		})
	}
}

func TestQuantizeErrors(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	w := init32("w", random(r, -1, 8, 4))
	mm := graph{nodes: []*onnxpb.NodeProto{mk("mm", "MatMul", []string{"x", "w"}, []string{"y"})},
		inits: []*onnxpb.TensorProto{w}, inputs: []*onnxpb.ValueInfoProto{info("x", onnxpb.TensorProto_FLOAT, -1, 8)}, output: "y"}
	old := mm
	old.opset = 9
	softmax12 := mm
	softmax12.opset = 12
	softmax12.nodes = []*onnxpb.NodeProto{mk("mm", "MatMul", []string{"x", "w"}, []string{"z"}), mk("sm", "Softmax", []string{"z"}, []string{"y"})}
	relu := graph{nodes: []*onnxpb.NodeProto{mk("r", "Relu", []string{"x"}, []string{"y"})},
		inputs: []*onnxpb.ValueInfoProto{info("x", onnxpb.TensorProto_FLOAT, -1, 8)}, output: "y"}
	overridable := mm
	overridable.inputs = append(slices.Clone(mm.inputs), info("w", onnxpb.TensorProto_FLOAT, 8, 4))

	x := random(r, -1, 5, 8)
	tests := []struct {
		name    string
		model   []byte
		cal     map[string]*tensor.Tensor
		wantErr error
		want    string
	}{
		{"not onnx", []byte("\x80\x04pickle"), nil, onnx.ErrInvalidModel, "pickle"},
		{"opset 9", old.bytes(t), nil, onnx.ErrUnsupported, "default operator set version 9; quantized operators need version 10 or later"},
		{"softmax changes at 13", softmax12.bytes(t), map[string]*tensor.Tensor{"x": x}, onnx.ErrUnsupported, "the quantized operators need opset 13, the model imports 12, and Softmax changed meaning at opset 13"},
		{"no ops", relu.bytes(t), nil, quantize.ErrNothingToQuantize, "no MatMul, Gemm or Conv node"},
		{"weight is an input", overridable.bytes(t), nil, quantize.ErrNothingToQuantize, `MatMul "mm": B "w" is also a graph input, so callers may replace it`},
		{"calibration key missing", mm.bytes(t), map[string]*tensor.Tensor{"input": x}, quantize.ErrCalibration, `calibration array "input" is not an input of the model (inputs: ["x"])`},
		{"calibration empty", mm.bytes(t), map[string]*tensor.Tensor{}, quantize.ErrCalibration, `calibration array missing for input "x": got keys []`},
		{"calibration shape", mm.bytes(t), map[string]*tensor.Tensor{"x": random(r, -1, 5, 7)}, quantize.ErrCalibration, `calibration array "x" has shape [5 7], want [N 8]`},
		{"calibration dtype", mm.bytes(t), map[string]*tensor.Tensor{"x": {DType: tensor.Int64, Shape: []int64{1, 8}, Data: make([]int64, 8)}}, quantize.ErrCalibration, `calibration array "x" is int64, want fp32`},
		{"calibration no rows", mm.bytes(t), map[string]*tensor.Tensor{"x": {DType: tensor.Float32, Shape: []int64{0, 8}, Data: []float32{}}}, quantize.ErrCalibration, "no rows"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := quantize.Quantize(context.Background(), tt.model, quantize.Options{Calibration: tt.cal})
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Quantize: %v; want %v containing %q", err, tt.wantErr, tt.want)
			}
		})
	}
}

// TestQuantizeRaisesOpset: an opset-11 model becomes opset 13 for static
// QDQ and runs the same.
func TestQuantizeRaisesOpset(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	x := random(r, -1, 6, 8)
	g := graph{nodes: []*onnxpb.NodeProto{mk("mm", "MatMul", []string{"x", "w"}, []string{"z"}), mk("r", "Relu", []string{"z"}, []string{"y"})},
		inits: []*onnxpb.TensorProto{init32("w", random(r, 1, 8, 4))}, inputs: []*onnxpb.ValueInfoProto{info("x", onnxpb.TensorProto_FLOAT, -1, 8)}, output: "y", opset: 11}
	for _, mode := range modes(x) {
		t.Run(mode.name, func(t *testing.T) {
			out, _, err := quantize.Quantize(context.Background(), g.bytes(t), quantize.Options{Calibration: mode.cal})
			if err != nil {
				t.Fatal(err)
			}
			dec, err := onnx.Decode(out)
			if err != nil {
				t.Fatal(err)
			}
			want := int64(11)
			if mode.name == quantize.ModeStatic {
				want = 13
			}
			if dec.Opset() != want {
				t.Errorf("opset %d, want %d", dec.Opset(), want)
			}
			runModel(t, out, map[string]*tensor.Tensor{"x": x})
		})
	}
}

func TestCalibrate(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	w := random(r, -1, 8, 4)
	g := graph{nodes: []*onnxpb.NodeProto{mk("mm", "MatMul", []string{"x", "w"}, []string{"z"}), mk("r", "Relu", []string{"z"}, []string{"y"})},
		inits: []*onnxpb.TensorProto{init32("w", w)}, inputs: []*onnxpb.ValueInfoProto{info("x", onnxpb.TensorProto_FLOAT, -1, 8)}, output: "y"}
	model := g.bytes(t)
	// 10 rows in one batch and 3 in another; MaxBatch 4 makes Calibrate
	// cut the first into 4+4+2.
	b1, b2 := random(r, -1, 10, 8), random(r, -1, 3, 8)
	got, err := quantize.Calibrate(context.Background(), model, []string{"x", "z", "y", "w", "z"},
		[]map[string]*tensor.Tensor{{"x": b1}, {"x": b2}}, quantize.CalibrateOptions{Runtime: runtimeOpts(4)})
	if err != nil {
		t.Fatal(err)
	}
	// The same ranges, computed here.
	want := map[string]quantize.Range{}
	grow := func(name string, v float32) {
		rg, ok := want[name]
		if !ok {
			rg = quantize.Range{Min: v, Max: v}
		}
		want[name] = quantize.Range{Min: min(rg.Min, v), Max: max(rg.Max, v)}
	}
	ws := w.Data.([]float32)
	for _, v := range ws {
		grow("w", v)
	}
	for _, b := range []*tensor.Tensor{b1, b2} {
		xs := b.Data.([]float32)
		for i := range int(b.Shape[0]) {
			for j := range 4 {
				var s float32
				for k := range 8 {
					grow("x", xs[i*8+k])
					s += xs[i*8+k] * ws[k*4+j]
				}
				grow("z", s)
				grow("y", max(s, 0))
			}
		}
	}
	for name, w := range want {
		g := got[name]
		if math.Abs(float64(g.Min-w.Min)) > 1e-5 || math.Abs(float64(g.Max-w.Max)) > 1e-5 {
			t.Errorf("range of %s = %+v, want %+v", name, g, w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got ranges for %d values, want %d", len(got), len(want))
	}

	_, err = quantize.Calibrate(context.Background(), model, []string{"nope"}, []map[string]*tensor.Tensor{{"x": b1}}, quantize.CalibrateOptions{})
	if !errors.Is(err, quantize.ErrCalibration) || !strings.Contains(err.Error(), `value "nope" is not in the model`) {
		t.Errorf("Calibrate(unknown value) = %v", err)
	}
	_, err = quantize.Calibrate(context.Background(), model, []string{"z"}, []map[string]*tensor.Tensor{{"y": b1}}, quantize.CalibrateOptions{})
	if !errors.Is(err, quantize.ErrCalibration) || !strings.Contains(err.Error(), `no array for input "x": got [y]`) {
		t.Errorf("Calibrate(wrong input) = %v", err)
	}
}

// TestQuantizeFloat64Calibration: numpy's default float64 arrays calibrate
// a float32 input as the same rows in float32 do.
func TestQuantizeFloat64Calibration(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	g := graph{nodes: []*onnxpb.NodeProto{mk("mm", "MatMul", []string{"x", "w"}, []string{"y"})},
		inits: []*onnxpb.TensorProto{init32("w", random(r, 1, 8, 4))}, inputs: []*onnxpb.ValueInfoProto{info("x", onnxpb.TensorProto_FLOAT, -1, 8)}, output: "y"}
	model := g.bytes(t)
	x := random(r, -1, 70, 8) // more rows than MaxBatch's default of 64
	x64 := make([]float64, x.Len())
	for i, v := range x.Data.([]float32) {
		x64[i] = float64(v)
	}
	want, _, err := quantize.Quantize(context.Background(), model, quantize.Options{Calibration: map[string]*tensor.Tensor{"x": x}})
	if err != nil {
		t.Fatal(err)
	}
	got, rep, err := quantize.Quantize(context.Background(), model, quantize.Options{
		Calibration: map[string]*tensor.Tensor{"x": {DType: tensor.Float64, Shape: x.Shape, Data: x64}}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.CalibrationRows != 70 {
		t.Errorf("CalibrationRows = %d, want 70", rep.CalibrationRows)
	}
	if !proto.Equal(unmarshal(t, got), unmarshal(t, want)) {
		t.Error("float64 calibration gives another model than the same rows in float32")
	}
}

func unmarshal(t *testing.T, b []byte) *onnxpb.ModelProto {
	t.Helper()
	var mp onnxpb.ModelProto
	if err := proto.Unmarshal(b, &mp); err != nil {
		t.Fatal(err)
	}
	return &mp
}
