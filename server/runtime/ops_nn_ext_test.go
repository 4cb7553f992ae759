package runtime_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/runtime"
	"github.com/corvidml/corvid/server/tensor"
)

// nnNodeTestPrefixes select the ONNX node tests of the neural-network
// operators (ops_conv.go, ops_pool.go, ops_norm.go, MatMul and Gemm).
// CORVID_NN_NODE_TESTS, a comma-separated list of prefixes, overrides it.
var nnNodeTestPrefixes = []string{
	"test_basic_conv_", "test_conv_", "test_convtranspose",
	"test_maxpool_", "test_averagepool_", "test_globalaveragepool", "test_globalmaxpool",
	"test_batchnorm_", "test_layer_normalization_", "test_instancenorm_",
	"test_dropout_", "test_training_dropout",
	"test_matmul_", "test_gemm_",
}

// nnKnownFailures are node tests of these operators that Corvid refuses on
// purpose, with the reason.
var nnKnownFailures = map[string]string{
	"test_batchnorm_epsilon_training_mode": "training mode is refused at load",
	"test_batchnorm_example_training_mode": "training mode is refused at load",
	"test_training_dropout":                "random training-mode dropout is refused on the request",
	"test_training_dropout_default":        "random training-mode dropout is refused on the request",
	"test_training_dropout_default_mask":   "random training-mode dropout is refused on the request",
	"test_training_dropout_mask":           "random training-mode dropout is refused on the request",
}

// TestNNNodeTests runs ONNX's backend node tests of the neural-network
// operators against their expected outputs, within |got-want| <= 1e-5 +
// 1e-3*|want|. Tests of other operators' expansions (the *_expanded
// variants) run too when those operators exist, and are skipped when
// Decode refuses them as unsupported.
func TestNNNodeTests(t *testing.T) {
	dir := cmp.Or(os.Getenv("CORVID_ONNX_NODE_TESTS"), "../../.build/onnx-node-tests")
	prefixes := nnNodeTestPrefixes
	if env := os.Getenv("CORVID_NN_NODE_TESTS"); env != "" {
		prefixes = strings.Split(env, ",")
	}
	for _, name := range nodeTestNames(t, dir) {
		if !slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(name, p) }) {
			continue
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			err := runNNNodeTest(filepath.Join(dir, name))
			reason, known := nnKnownFailures[name]
			switch {
			case errors.Is(err, onnx.ErrUnsupported) && !known:
				t.Skipf("unsupported: %v", err)
			case err != nil && known:
				t.Skipf("known failure (%s): %v", reason, err)
			case err != nil:
				t.Error(err)
			case known:
				t.Errorf("passes, but is listed as a known failure (%s)", reason)
			}
		})
	}
}

func runNNNodeTest(dir string) error {
	data, err := os.ReadFile(filepath.Join(dir, "model.onnx"))
	if err != nil {
		return err
	}
	g, err := onnx.Decode(data)
	if err != nil {
		return fmt.Errorf("Decode: %w", err)
	}
	sets, err := loadDataSets(dir)
	if err != nil {
		return err
	}
	m, err := runtime.Compile(g, runtime.Options{Workers: 1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return fmt.Errorf("Compile: %w", err)
	}
	defer m.Close()
	for _, s := range sets {
		got, err := m.Run(context.Background(), s.inputs, nil)
		if err != nil {
			return fmt.Errorf("%s: Run: %w", s.dir, err)
		}
		for _, want := range s.outputs {
			if err := nnCompare(got[want.name], want.t); err != nil {
				return fmt.Errorf("%s: output %q: %w", s.dir, want.name, err)
			}
		}
	}
	return nil
}

// nnCompare wants the same dtype and shape, floats within 1e-5 +
// 1e-3*|want| (NaN matching NaN), everything else equal.
func nnCompare(got, want *tensor.Tensor) error {
	if got == nil {
		return errors.New("missing")
	}
	if got.DType != want.DType || !slices.Equal(got.Shape, want.Shape) {
		return fmt.Errorf("got %v%v, want %v%v", got.DType, got.Shape, want.DType, want.Shape)
	}
	switch w := want.Data.(type) {
	case []float32:
		return nnCompareFloats(got.Data.([]float32), w)
	case []float64:
		return nnCompareFloats(got.Data.([]float64), w)
	}
	return compareTensors(got, want) // integers and bools: exact
}

func nnCompareFloats[T float32 | float64](got, want []T) error {
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		if math.IsNaN(w) && math.IsNaN(g) {
			continue
		}
		if !(math.Abs(g-w) <= 1e-5+1e-3*math.Abs(w)) {
			return fmt.Errorf("element %d: got %v, want %v", i, g, w)
		}
	}
	return nil
}

// nnGraph is a one-node graph whose inputs are the given tensors,
// constants as initializers, and whose outputs are outs (an empty name
// omits an output).
func nnGraph(opset int64, op string, attrs map[string]onnx.Attr, ins []nnInput, outs ...onnx.ValueInfo) *onnx.Graph {
	g := &onnx.Graph{
		Opsets:       map[string]int64{onnx.DomainDefault: opset},
		Initializers: map[string]*tensor.Tensor{},
	}
	n := onnx.Node{Name: "n", OpType: op, Attrs: attrs}
	for _, in := range ins {
		n.Inputs = append(n.Inputs, in.name)
		switch {
		case in.name == "":
		case in.konst:
			g.Initializers[in.name] = in.t
		default:
			g.Inputs = append(g.Inputs, onnx.ValueInfo{Name: in.name, DType: in.t.DType, Shape: in.t.Shape})
		}
	}
	for _, o := range outs {
		n.Outputs = append(n.Outputs, o.Name)
		if o.Name != "" {
			g.Outputs = append(g.Outputs, o)
		}
	}
	g.Nodes = []onnx.Node{n}
	return g
}

// nnF32Out is the usual output: float32 "y", shape not declared.
var nnF32Out = onnx.ValueInfo{Name: "y", DType: tensor.Float32}

type nnInput struct {
	name  string
	t     *tensor.Tensor
	konst bool
}

func nnIn(name string, t *tensor.Tensor) nnInput    { return nnInput{name: name, t: t} }
func nnConst(name string, t *tensor.Tensor) nnInput { return nnInput{name: name, t: t, konst: true} }

func nnZeros(dt tensor.DType, shape ...int64) *tensor.Tensor {
	t, err := tensor.New(dt, shape)
	if err != nil {
		panic(err)
	}
	return t
}

func nnInts(v ...int64) onnx.Attr { return onnx.Attr{Type: onnx.AttrInts, Ints: v} }
func nnInt(v int64) onnx.Attr     { return onnx.Attr{Type: onnx.AttrInt, Int: v} }
func nnFloat(v float32) onnx.Attr { return onnx.Attr{Type: onnx.AttrFloat, Float: v} }
func nnString(s string) onnx.Attr { return onnx.Attr{Type: onnx.AttrString, String: s} }

// TestNNBuildErrors checks that attribute values which do not fit the
// shapes are refused at load, with messages giving what was expected and
// what was received.
func TestNNBuildErrors(t *testing.T) {
	f32 := func(shape ...int64) *tensor.Tensor { return nnZeros(tensor.Float32, shape...) }
	x := nnIn("x", f32(1, 3, 8, 8))
	w := nnIn("w", f32(4, 3, 3, 3))
	type attrs = map[string]onnx.Attr
	tests := []struct {
		name        string
		opset       int64
		op          string
		attrs       attrs
		ins         []nnInput
		outs        []string
		unsupported bool // onnx.ErrUnsupported rather than ErrInvalidModel
		want        string
	}{
		{name: "conv stride 0", op: "Conv", attrs: attrs{"strides": nnInts(0, 1)}, ins: []nnInput{x, w},
			want: "strides[0] is 0, want >= 1"},
		{name: "conv strides per axis", op: "Conv", attrs: attrs{"strides": nnInts(1)}, ins: []nnInput{x, w},
			want: "strides has 1 values, want 2"},
		{name: "conv negative pad", op: "Conv", attrs: attrs{"pads": nnInts(0, -1, 0, 0)}, ins: []nnInput{x, w},
			want: "pads[1] is -1, want >= 0"},
		{name: "conv kernel larger than padded input", op: "Conv", attrs: attrs{"pads": nnInts(0, 0, 1, 0)},
			ins:  []nnInput{nnIn("x", f32(1, 3, 3, 3)), nnIn("w", f32(4, 3, 5, 5))},
			want: "along spatial axis 0 the kernel spans 5 (size 5, dilation 1), more than the padded input's 4"},
		{name: "conv dilated kernel too large with VALID", op: "Conv", attrs: attrs{"auto_pad": nnString("VALID"), "dilations": nnInts(4, 1)},
			ins:  []nnInput{x, w},
			want: "the kernel spans 9 (size 3, dilation 4), more than the input's 8 with auto_pad VALID"},
		{name: "conv channels", op: "Conv", ins: []nnInput{x, nnIn("w", f32(4, 2, 3, 3))},
			want: "X [1 3 8 8] has 3 channels, but W [4 2 3 3] with group 1 expects 2"},
		{name: "conv group divides", op: "Conv", attrs: attrs{"group": nnInt(2)}, ins: []nnInput{x, nnIn("w", f32(4, 1, 3, 3))},
			want: "group 2 does not divide the 3 input and 4 output channels"},
		{name: "conv group 0", op: "Conv", attrs: attrs{"group": nnInt(0)}, ins: []nnInput{x, w},
			want: "group is 0, want >= 1"},
		{name: "conv bias", op: "Conv", ins: []nnInput{x, w, nnIn("b", f32(3))},
			want: "bias B [3] must be [4], one per output channel"},
		{name: "conv kernel_shape", op: "Conv", attrs: attrs{"kernel_shape": nnInts(2, 2)}, ins: []nnInput{x, w},
			want: "kernel_shape [2 2] does not match the weights' spatial shape [3 3]"},
		{name: "conv auto_pad value", op: "Conv", attrs: attrs{"auto_pad": nnString("SAME")}, ins: []nnInput{x, w},
			want: `auto_pad is "SAME", want one of NOTSET, SAME_UPPER, SAME_LOWER, VALID`},
		{name: "conv pads and auto_pad", op: "Conv", attrs: attrs{"auto_pad": nnString("SAME_UPPER"), "pads": nnInts(1, 1, 1, 1)}, ins: []nnInput{x, w},
			want: `pads [1 1 1 1] and auto_pad "SAME_UPPER" are both set`},
		{name: "conv weights rank", op: "Conv", ins: []nnInput{x, nnIn("w", f32(4, 3, 3))},
			want: "weights W [4 3 3] must have the rank of X [1 3 8 8]"},
		{name: "conv 4 spatial dims", op: "Conv", ins: []nnInput{nnIn("x", f32(1, 1, 2, 2, 2, 2)), nnIn("w", f32(1, 1, 1, 1, 1, 1))},
			unsupported: true, want: "want [N C D1 ... Dk] with 1 to 3 spatial dimensions"},
		{name: "conv int64", op: "Conv", ins: []nnInput{nnIn("x", nnZeros(tensor.Int64, 1, 1, 3, 3)), nnIn("w", nnZeros(tensor.Int64, 1, 1, 1, 1))},
			unsupported: true, want: "input X has dtype int64"},
		{name: "convtranspose output_padding", op: "ConvTranspose", attrs: attrs{"strides": nnInts(2, 2), "output_padding": nnInts(2, 0)},
			ins:  []nnInput{x, nnIn("w", f32(3, 2, 3, 3))},
			want: "output_padding[0] is 2, want less than the stride 2 or the dilation 1"},
		{name: "convtranspose channels", op: "ConvTranspose", ins: []nnInput{x, nnIn("w", f32(2, 2, 3, 3))},
			want: "X [1 3 8 8] has 3 channels, but W [2 2 3 3] is for 2"},
		{name: "convtranspose output_shape", op: "ConvTranspose", attrs: attrs{"output_shape": nnInts(10)},
			ins:  []nnInput{x, nnIn("w", f32(3, 2, 3, 3))},
			want: "output_shape [10] has 1 values, want 2"},
		{name: "maxpool kernel_shape", op: "MaxPool", ins: []nnInput{x},
			want: "attribute kernel_shape is required"},
		{name: "maxpool pad as wide as kernel", op: "MaxPool", attrs: attrs{"kernel_shape": nnInts(3, 3), "pads": nnInts(3, 0, 0, 0)}, ins: []nnInput{x},
			want: "pads[0] is 3, want less than the kernel's 3"},
		{name: "maxpool storage_order", op: "MaxPool", attrs: attrs{"kernel_shape": nnInts(2, 2), "storage_order": nnInt(2)}, ins: []nnInput{x},
			want: "storage_order is 2"},
		{name: "maxpool kernel larger than input", op: "MaxPool", attrs: attrs{"kernel_shape": nnInts(9, 2)}, ins: []nnInput{x},
			want: "the kernel spans 9 (size 9, dilation 1), more than the padded input's 8"},
		{name: "averagepool ceil_mode", op: "AveragePool", attrs: attrs{"kernel_shape": nnInts(2, 2), "ceil_mode": nnInt(2)}, ins: []nnInput{x},
			want: "ceil_mode is 2, want 0 or 1"},
		{name: "averagepool count_include_pad", op: "AveragePool", attrs: attrs{"kernel_shape": nnInts(2, 2), "count_include_pad": nnInt(3)}, ins: []nnInput{x},
			want: "count_include_pad is 3, want 0 or 1"},
		{name: "batchnorm training", opset: 15, op: "BatchNormalization", attrs: attrs{"training_mode": nnInt(1)},
			ins:         []nnInput{x, nnIn("s", f32(3)), nnIn("b", f32(3)), nnIn("m", f32(3)), nnIn("v", f32(3))},
			unsupported: true, want: "training_mode is 1"},
		{name: "batchnorm training outputs", opset: 9, op: "BatchNormalization",
			ins:  []nnInput{x, nnIn("s", f32(3)), nnIn("b", f32(3)), nnIn("m", f32(3)), nnIn("v", f32(3))},
			outs: []string{"y", "mean"}, unsupported: true, want: `output 1 ("mean") holds statistics computed in training mode`},
		{name: "batchnorm scale shape", op: "BatchNormalization",
			ins:  []nnInput{x, nnIn("s", f32(4)), nnIn("b", f32(3)), nnIn("m", f32(3)), nnIn("v", f32(3))},
			want: "scale has shape [4], want [3]"},
		{name: "batchnorm spatial after opset 9", opset: 9, op: "BatchNormalization", attrs: attrs{"spatial": nnInt(0)},
			ins:  []nnInput{x, nnIn("s", f32(3)), nnIn("b", f32(3)), nnIn("m", f32(3)), nnIn("v", f32(3))},
			want: "attribute spatial was removed in opset 9"},
		{name: "layernorm stash_type", op: "LayerNormalization", attrs: attrs{"stash_type": nnInt(11)},
			ins: []nnInput{x, nnIn("s", f32(8))}, unsupported: true, want: "stash_type is 11; only 1"},
		{name: "layernorm axis", op: "LayerNormalization", attrs: attrs{"axis": nnInt(4)},
			ins: []nnInput{x, nnIn("s", f32(8))}, want: "axis 4 is out of range for rank 4"},
		{name: "layernorm scale", op: "LayerNormalization",
			ins: []nnInput{x, nnIn("s", f32(7))}, want: "Scale [7] does not broadcast to the normalised shape [8]"},
		{name: "layernorm epsilon", op: "LayerNormalization", attrs: attrs{"epsilon": nnFloat(float32(math.NaN()))},
			ins: []nnInput{x, nnIn("s", f32(8))}, want: "epsilon is NaN"},
		{name: "instancenorm scale", op: "InstanceNormalization",
			ins: []nnInput{x, nnIn("s", f32(3, 1)), nnIn("b", f32(3))}, want: "scale has shape [3 1], want [3]"},
		{name: "dropout training", opset: 13, op: "Dropout",
			ins: []nnInput{x, nnConst("r", &tensor.Tensor{DType: tensor.Float32, Shape: []int64{}, Data: []float32{0.5}}),
				nnConst("t", &tensor.Tensor{DType: tensor.Bool, Shape: []int64{}, Data: []bool{true}})},
			unsupported: true, want: "training_mode is true with ratio 0.5"},
		{name: "dropout ratio", opset: 10, op: "Dropout", attrs: attrs{"ratio": nnFloat(1)}, ins: []nnInput{x},
			want: "ratio is 1, want a value in [0, 1)"},
		{name: "dropout ratio attribute at opset 13", opset: 13, op: "Dropout", attrs: attrs{"ratio": nnFloat(0.1)}, ins: []nnInput{x},
			want: "attribute ratio became an input in opset 12"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			outs := []onnx.ValueInfo{{Name: "y", DType: tensor.Float32}}
			for _, name := range tt.outs[min(1, len(tt.outs)):] {
				outs = append(outs, onnx.ValueInfo{Name: name, DType: tensor.Float32})
			}
			g := nnGraph(cmp.Or(tt.opset, 19), tt.op, tt.attrs, tt.ins, outs...)
			m, err := runtime.Compile(g, runtime.Options{Workers: 1})
			if err == nil {
				m.Close()
				t.Fatalf("Compile succeeded, want an error containing %q", tt.want)
			}
			kind := onnx.ErrInvalidModel
			if tt.unsupported {
				kind = onnx.ErrUnsupported
			}
			if !errors.Is(err, kind) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), `node "n"`) {
				t.Errorf("Compile: %v\nwant %v naming node \"n\" and containing %q", err, kind, tt.want)
			}
		})
	}
}

// convCase is a random Conv or ConvTranspose configuration, lifted to
// three spatial dimensions like the kernels (leading ones of size 1), so
// that the direct loops below serve 1-D to 3-D.
type convCase struct {
	nsp, batch, inC, outC, group int
	in, kernel, stride, dil      [3]int
	padB, padE, outPad           [3]int
}

func (c convCase) ints(vals [3]int) []int64 {
	out := make([]int64, c.nsp)
	for i := range out {
		out[i] = int64(vals[3-c.nsp+i])
	}
	return out
}

func randConvCase(r *rand.Rand, transposed bool) convCase {
	c := convCase{nsp: 1 + r.IntN(3), batch: 1 + r.IntN(2), group: 1 + r.IntN(2)}
	c.inC, c.outC = c.group*(1+r.IntN(3)), c.group*(1+r.IntN(3))
	for d := range 3 {
		c.in[d], c.kernel[d], c.stride[d], c.dil[d] = 1, 1, 1, 1
		if d >= 3-c.nsp {
			c.in[d], c.kernel[d], c.stride[d], c.dil[d] = 3+r.IntN(5), 1+r.IntN(3), 1+r.IntN(3), 1+r.IntN(2)
			c.padB[d], c.padE[d] = r.IntN(3), r.IntN(3)
			if transposed {
				c.outPad[d] = r.IntN(max(c.stride[d], c.dil[d]))
			}
		}
	}
	return c
}

// out is the output's spatial size; ok is false when it would be empty.
func (c convCase) out(transposed bool) (out [3]int, ok bool) {
	for d := range 3 {
		ek := (c.kernel[d]-1)*c.dil[d] + 1
		if transposed {
			out[d] = c.stride[d]*(c.in[d]-1) + c.outPad[d] + ek - c.padB[d] - c.padE[d]
		} else if span := c.in[d] + c.padB[d] + c.padE[d] - ek; span >= 0 {
			out[d] = span/c.stride[d] + 1
		}
		if out[d] <= 0 {
			return out, false
		}
	}
	return out, true
}

// refConv is the direct convolution (or, transposed, its scatter form),
// accumulated in float64.
func refConv(c convCase, transposed bool, x, w, bias []float32) []float32 {
	out, _ := c.out(transposed)
	cg, mg := c.inC/c.group, c.outC/c.group
	inSize, outSize, kSize := c.in[0]*c.in[1]*c.in[2], out[0]*out[1]*out[2], c.kernel[0]*c.kernel[1]*c.kernel[2]
	y := make([]float64, c.batch*c.outC*outSize)
	for n := range c.batch {
		for oc := range c.outC {
			for p := range outSize {
				y[(n*c.outC+oc)*outSize+p] = float64(bias[oc])
			}
		}
		for g := range c.group {
			for ci := range cg {
				for m := range mg {
					ic, oc := g*cg+ci, g*mg+m
					// The weight of (input channel ic, output channel oc).
					wAt := func(k int) float32 { return w[(oc*cg+ci)*kSize+k] }
					if transposed {
						wAt = func(k int) float32 { return w[(ic*mg+m)*kSize+k] }
					}
					for k := range kSize {
						kk := [3]int{k / (c.kernel[1] * c.kernel[2]), k / c.kernel[2] % c.kernel[1], k % c.kernel[2]}
						// Pair every input position with the output
						// position this tap connects it to.
						for i := range inSize {
							ii := [3]int{i / (c.in[1] * c.in[2]), i / c.in[2] % c.in[1], i % c.in[2]}
							o, ok := 0, true
							for d := range 3 {
								var od int
								if transposed {
									od = ii[d]*c.stride[d] + kk[d]*c.dil[d] - c.padB[d]
								} else {
									// Conv: input = o*stride + k*dil - pad.
									num := ii[d] - kk[d]*c.dil[d] + c.padB[d]
									if num < 0 || num%c.stride[d] != 0 {
										ok = false
										break
									}
									od = num / c.stride[d]
								}
								if od < 0 || od >= out[d] {
									ok = false
									break
								}
								o = o*out[d] + od
							}
							if ok {
								y[(n*c.outC+oc)*outSize+o] += float64(x[(n*c.inC+ic)*inSize+i]) * float64(wAt(k))
							}
						}
					}
				}
			}
		}
	}
	y32 := make([]float32, len(y))
	for i, v := range y {
		y32[i] = float32(v)
	}
	return y32
}

// TestNNConvReference compares Conv and ConvTranspose with direct loops on
// random shapes, groups, strides, dilations and asymmetric padding, the
// weights both constants and graph inputs.
func TestNNConvReference(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	for i := range 300 {
		transposed := i%2 == 1
		c := randConvCase(r, transposed)
		out, ok := c.out(transposed)
		if !ok {
			continue
		}
		op := "Conv"
		wShape := append([]int64{int64(c.outC), int64(c.inC / c.group)}, c.ints(c.kernel)...)
		if transposed {
			op = "ConvTranspose"
			wShape = append([]int64{int64(c.inC), int64(c.outC / c.group)}, c.ints(c.kernel)...)
		}
		x := randTensor(r, append([]int64{int64(c.batch), int64(c.inC)}, c.ints(c.in)...)...)
		w := randTensor(r, wShape...)
		bias := randTensor(r, int64(c.outC))
		attrs := map[string]onnx.Attr{
			"group": nnInt(int64(c.group)), "strides": nnInts(c.ints(c.stride)...), "dilations": nnInts(c.ints(c.dil)...),
			"pads": nnInts(append(c.ints(c.padB), c.ints(c.padE)...)...),
		}
		if transposed {
			attrs["output_padding"] = nnInts(c.ints(c.outPad)...)
		}
		wIn, feeds := nnIn("w", w), map[string]*tensor.Tensor{"x": x, "w": w}
		if i%4 < 2 {
			wIn = nnConst("w", w)
			delete(feeds, "w")
		}
		name := fmt.Sprintf("%d/%s%+v", i, op, c)
		g := nnGraph(17, op, attrs, []nnInput{nnIn("x", x), wIn, nnConst("b", bias)}, nnF32Out)
		m, err := runtime.Compile(g, runtime.Options{Workers: 1})
		if err != nil {
			t.Fatalf("%s: Compile: %v", name, err)
		}
		got, err := m.Run(context.Background(), feeds, nil)
		m.Close()
		if err != nil {
			t.Fatalf("%s: Run: %v", name, err)
		}
		want := &tensor.Tensor{DType: tensor.Float32, Data: refConv(c, transposed, x.Data.([]float32), w.Data.([]float32), bias.Data.([]float32)),
			Shape: append([]int64{int64(c.batch), int64(c.outC)}, convCase{nsp: c.nsp}.ints(out)...)}
		if err := nnCompare(got["y"], want); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestNNDropoutTrainingInput: with training_mode a graph input, the
// request decides: false (or a zero ratio) passes X through, true with a
// ratio fails the request rather than dropping at random.
func TestNNDropoutTrainingInput(t *testing.T) {
	x := &tensor.Tensor{DType: tensor.Float32, Shape: []int64{2, 2}, Data: []float32{1, 2, 3, 4}}
	scalarF := func(v float32) *tensor.Tensor {
		return &tensor.Tensor{DType: tensor.Float32, Shape: []int64{}, Data: []float32{v}}
	}
	scalarB := func(v bool) *tensor.Tensor {
		return &tensor.Tensor{DType: tensor.Bool, Shape: []int64{}, Data: []bool{v}}
	}
	g := nnGraph(13, "Dropout", nil, []nnInput{nnIn("x", x), nnIn("r", scalarF(0)), nnIn("t", scalarB(false))},
		nnF32Out, onnx.ValueInfo{Name: "mask", DType: tensor.Bool})
	m, err := runtime.Compile(g, runtime.Options{Workers: 1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, tc := range []struct {
		ratio    float32
		training bool
		fails    bool
	}{{0.5, false, false}, {0, true, false}, {0.5, true, true}} {
		got, err := m.Run(context.Background(), map[string]*tensor.Tensor{"x": x, "r": scalarF(tc.ratio), "t": scalarB(tc.training)}, nil)
		if tc.fails {
			if err == nil || !strings.Contains(err.Error(), "training-mode dropout is random and not supported") {
				t.Errorf("ratio %v, training: got %v, want the request refused", tc.ratio, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("ratio %v, training %v: %v", tc.ratio, tc.training, err)
		}
		if !slices.Equal(got["y"].Data.([]float32), x.Data.([]float32)) || !slices.Equal(got["mask"].Data.([]bool), []bool{true, true, true, true}) {
			t.Errorf("ratio %v, training %v: got y %v, mask %v; want X and all true", tc.ratio, tc.training, got["y"].Data, got["mask"].Data)
		}
	}
}

// BenchmarkNNConvLeNet is LeNet's first layer, 1x28x28 -> 6 5x5 filters,
// through Run (so with the TapeMachine's own cost, see PERF.md).
func BenchmarkNNConvLeNet(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, batch := range []int64{1, 32} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			x := randTensor(r, batch, 1, 28, 28)
			g := nnGraph(17, "Conv", nil, []nnInput{nnIn("x", x), nnConst("w", randTensor(r, 6, 1, 5, 5)), nnConst("b", randTensor(r, 6))}, nnF32Out)
			m, err := runtime.Compile(g, runtime.Options{Workers: 1})
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			inputs := map[string]*tensor.Tensor{"x": x}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Run(ctx, inputs, nil); err != nil {
					b.Fatal(err)
				}
			}
			macs := float64(batch * 6 * 24 * 24 * 25)
			b.ReportMetric(2*macs*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
		})
	}
}

// TestNNConcurrentRuns runs a Conv (whose kernel keeps im2col scratch
// between runs) from many goroutines on two workers: each worker's graph
// must own its scratch (run with -race).
func TestNNConcurrentRuns(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	w, bias := randTensor(r, 4, 2, 3, 3), randTensor(r, 4)
	g := nnGraph(17, "Conv", map[string]onnx.Attr{"pads": nnInts(1, 1, 1, 1)},
		[]nnInput{nnIn("x", randTensor(r, 1, 2, 6, 6)), nnConst("w", w), nnConst("b", bias)}, nnF32Out)
	m, err := runtime.Compile(g, runtime.Options{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	c := convCase{nsp: 2, batch: 1, inC: 2, outC: 4, group: 1,
		in: [3]int{1, 6, 6}, kernel: [3]int{1, 3, 3}, stride: [3]int{1, 1, 1}, dil: [3]int{1, 1, 1},
		padB: [3]int{0, 1, 1}, padE: [3]int{0, 1, 1}}
	xs := make([]*tensor.Tensor, 8)
	for i := range xs {
		xs[i] = randTensor(r, 1, 2, 6, 6)
	}
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			x := xs[i%len(xs)]
			got, err := m.Run(context.Background(), map[string]*tensor.Tensor{"x": x}, nil)
			if err != nil {
				t.Error(err)
				return
			}
			want := &tensor.Tensor{DType: tensor.Float32, Shape: []int64{1, 4, 6, 6},
				Data: refConv(c, false, x.Data.([]float32), w.Data.([]float32), bias.Data.([]float32))}
			if err := nnCompare(got["y"], want); err != nil {
				t.Errorf("run %d: %v", i, err)
			}
		})
	}
	wg.Wait()
}
