package runtime

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	gt "gorgonia.org/tensor"

	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/tensor"
)

// Tests of the math, activation, reduction and logic operators beyond
// ONNX's node tests, which use each operator's newest opset only: the
// older opsets' attribute forms, the refusals, and edge cases (NaN, ties,
// empty reductions, overflow).

// opCase is one node run on its own: inputs are graph inputs, except those
// listed in konst, which are initializers (as axes and k must be).
type opCase struct {
	opset  int64
	op     string
	attrs  map[string]onnx.Attr
	in     []*tensor.Tensor // nil: an omitted optional input
	konst  []int
	outDTs []tensor.DType
}

// run compiles the one-node graph and runs it once.
func (c opCase) run() ([]*tensor.Tensor, error) {
	g := &onnx.Graph{
		Opsets:       map[string]int64{onnx.DomainDefault: c.opset},
		Initializers: map[string]*tensor.Tensor{},
	}
	feeds := map[string]*tensor.Tensor{}
	n := onnx.Node{Name: "n", OpType: c.op, Attrs: c.attrs}
	for i, t := range c.in {
		name := ""
		if t != nil {
			name = fmt.Sprintf("in%d", i)
			if slices.Contains(c.konst, i) {
				g.Initializers[name] = t
			} else {
				g.Inputs = append(g.Inputs, onnx.ValueInfo{Name: name, DType: t.DType, Shape: slices.Clone(t.Shape)})
				feeds[name] = t
			}
		}
		n.Inputs = append(n.Inputs, name)
	}
	for i, dt := range c.outDTs {
		name := fmt.Sprintf("out%d", i)
		n.Outputs = append(n.Outputs, name)
		g.Outputs = append(g.Outputs, onnx.ValueInfo{Name: name, DType: dt})
	}
	g.Nodes = []onnx.Node{n}
	m, err := Compile(g, Options{Workers: 1})
	if err != nil {
		return nil, err
	}
	defer m.Close()
	got, err := m.Run(context.Background(), feeds, nil)
	if err != nil {
		return nil, err
	}
	outs := make([]*tensor.Tensor, len(c.outDTs))
	for i := range outs {
		outs[i] = got[fmt.Sprintf("out%d", i)]
	}
	return outs, nil
}

// The tensor makers take a nil shape for a scalar.

func f32s(shape []int64, v ...float32) *tensor.Tensor {
	return &tensor.Tensor{DType: tensor.Float32, Shape: scalarIfNil(shape), Data: v}
}

func f64s(shape []int64, v ...float64) *tensor.Tensor {
	return &tensor.Tensor{DType: tensor.Float64, Shape: scalarIfNil(shape), Data: v}
}

func i64s(shape []int64, v ...int64) *tensor.Tensor {
	return &tensor.Tensor{DType: tensor.Int64, Shape: scalarIfNil(shape), Data: v}
}

func i8s(shape []int64, v ...int8) *tensor.Tensor {
	return &tensor.Tensor{DType: tensor.Int8, Shape: scalarIfNil(shape), Data: v}
}

func bools(shape []int64, v ...bool) *tensor.Tensor {
	return &tensor.Tensor{DType: tensor.Bool, Shape: scalarIfNil(shape), Data: v}
}

func scalarIfNil(shape []int64) []int64 {
	if shape == nil {
		return []int64{}
	}
	return shape
}

func aInt(v int64) onnx.Attr               { return onnx.Attr{Type: onnx.AttrInt, Int: v} }
func aInts(v ...int64) onnx.Attr           { return onnx.Attr{Type: onnx.AttrInts, Ints: v} }
func aFloat(v float32) onnx.Attr           { return onnx.Attr{Type: onnx.AttrFloat, Float: v} }
func aString(v string) onnx.Attr           { return onnx.Attr{Type: onnx.AttrString, String: v} }
func dts(d ...tensor.DType) []tensor.DType { return d }

var nan = float32(math.NaN())

// sameTensor compares exactly, NaN equal to NaN; floats within 1e-6
// relative.
func sameTensor(got, want *tensor.Tensor) error {
	if got == nil {
		return errors.New("missing")
	}
	if got.DType != want.DType || !slices.Equal(got.Shape, want.Shape) {
		return fmt.Errorf("got %v%v, want %v%v", got.DType, got.Shape, want.DType, want.Shape)
	}
	close := func(g, w float64) bool {
		return g == w || (g != g && w != w) || math.Abs(g-w) <= 1e-6*math.Abs(w)
	}
	switch w := want.Data.(type) {
	case []float32:
		g := got.Data.([]float32)
		for i := range w {
			if !close(float64(g[i]), float64(w[i])) {
				return fmt.Errorf("got %v, want %v", g, w)
			}
		}
		return nil
	case []float64:
		g := got.Data.([]float64)
		for i := range w {
			if !close(g[i], w[i]) {
				return fmt.Errorf("got %v, want %v", g, w)
			}
		}
		return nil
	}
	if fmt.Sprint(got.Data) != fmt.Sprint(want.Data) {
		return fmt.Errorf("got %v, want %v", got.Data, want.Data)
	}
	return nil
}

func TestMathOps(t *testing.T) {
	f := tensor.Float32
	tests := []struct {
		name string
		c    opCase
		want []*tensor.Tensor
	}{
		// Opset-dependent forms ONNX's node tests do not reach.
		{"Clip attributes (opset 10)",
			opCase{opset: 10, op: "Clip", attrs: map[string]onnx.Attr{"min": aFloat(-1), "max": aFloat(2)},
				in: []*tensor.Tensor{f32s([]int64{4}, -5, 0, 3, nan)}, outDTs: dts(f)},
			[]*tensor.Tensor{f32s([]int64{4}, -1, 0, 2, nan)}},
		{"Clip default attributes are ∓FLT_MAX (opset 7)",
			opCase{opset: 7, op: "Clip", in: []*tensor.Tensor{f32s([]int64{2}, float32(math.Inf(-1)), float32(math.Inf(1)))}, outDTs: dts(f)},
			[]*tensor.Tensor{f32s([]int64{2}, -math.MaxFloat32, math.MaxFloat32)}},
		{"Clip min > max gives max",
			opCase{opset: 13, op: "Clip", in: []*tensor.Tensor{f32s([]int64{3}, -1, 5, 9), f32s(nil, 4), f32s(nil, 2)}, outDTs: dts(f)},
			[]*tensor.Tensor{f32s([]int64{3}, 2, 2, 2)}},
		{"Clip int8 with only a max",
			opCase{opset: 13, op: "Clip", in: []*tensor.Tensor{i8s([]int64{3}, -128, 0, 127), nil, i8s(nil, 10)}, outDTs: dts(tensor.Int8)},
			[]*tensor.Tensor{i8s([]int64{3}, -128, 0, 10)}},
		{"ReduceSum axes attribute (opset 11)",
			opCase{opset: 11, op: "ReduceSum", attrs: map[string]onnx.Attr{"axes": aInts(1), "keepdims": aInt(0)},
				in: []*tensor.Tensor{f32s([]int64{2, 3}, 1, 2, 3, 4, 5, 6)}, outDTs: dts(f)},
			[]*tensor.Tensor{f32s([]int64{2}, 6, 15)}},
		{"ReduceMean axes attribute (opset 17), middle axis",
			opCase{opset: 17, op: "ReduceMean", attrs: map[string]onnx.Attr{"axes": aInts(-2)},
				in: []*tensor.Tensor{f32s([]int64{2, 2, 2}, 1, 2, 3, 4, 5, 6, 7, 8)}, outDTs: dts(f)},
			[]*tensor.Tensor{f32s([]int64{2, 1, 2}, 2, 3, 6, 7)}},
		{"ReduceProd of every axis (opset 13, no axes)",
			opCase{opset: 13, op: "ReduceProd", attrs: map[string]onnx.Attr{"keepdims": aInt(0)},
				in: []*tensor.Tensor{i64s([]int64{2, 2}, 1, 2, 3, 4)}, outDTs: dts(tensor.Int64)},
			[]*tensor.Tensor{i64s([]int64{}, 24)}},
		{"ReduceSum noop_with_empty_axes",
			opCase{opset: 18, op: "ReduceSum", attrs: map[string]onnx.Attr{"noop_with_empty_axes": aInt(1)},
				in: []*tensor.Tensor{f32s([]int64{2}, 1, 2)}, outDTs: dts(f)},
			[]*tensor.Tensor{f32s([]int64{2}, 1, 2)}},
		{"ReduceL2 axes input (opset 18), outer axes",
			opCase{opset: 18, op: "ReduceL2", in: []*tensor.Tensor{f64s([]int64{2, 1, 2}, 3, 0, 4, 1), i64s([]int64{2}, 0, 1)},
				konst: []int{1}, outDTs: dts(tensor.Float64)},
			[]*tensor.Tensor{f64s([]int64{1, 1, 2}, 5, 1)}},
		{"ReduceMax propagates NaN; empty gives -Inf",
			opCase{opset: 18, op: "ReduceMax", in: []*tensor.Tensor{f32s([]int64{2, 2}, 1, nan, 2, 3), i64s([]int64{1}, 1)},
				konst: []int{1}, outDTs: dts(f)},
			[]*tensor.Tensor{f32s([]int64{2, 1}, nan, 3)}},
		{"ReduceMin of bools is all",
			opCase{opset: 20, op: "ReduceMin", in: []*tensor.Tensor{bools([]int64{2, 2}, true, false, true, true), i64s([]int64{1}, 1)},
				konst: []int{1}, outDTs: dts(tensor.Bool)},
			[]*tensor.Tensor{bools([]int64{2, 1}, false, true)}},
		{"ReduceMax of bools is any",
			opCase{opset: 20, op: "ReduceMax", in: []*tensor.Tensor{bools([]int64{2, 3}, false, true, false, false, false, false), i64s([]int64{1}, 1)},
				konst: []int{1}, outDTs: dts(tensor.Bool)},
			[]*tensor.Tensor{bools([]int64{2, 1}, true, false)}},
		{"TopK attribute k (opset 9)",
			opCase{opset: 9, op: "TopK", attrs: map[string]onnx.Attr{"k": aInt(2)},
				in: []*tensor.Tensor{f32s([]int64{2, 3}, 1, 3, 2, 6, 5, 4)}, outDTs: dts(f, tensor.Int64)},
			[]*tensor.Tensor{f32s([]int64{2, 2}, 3, 2, 6, 5), i64s([]int64{2, 2}, 1, 2, 0, 1)}},
		{"TopK smallest along axis 0, ties by index, NaN last",
			opCase{opset: 11, op: "TopK", attrs: map[string]onnx.Attr{"axis": aInt(0), "largest": aInt(0)},
				in: []*tensor.Tensor{f32s([]int64{4, 1}, nan, 2, 1, 2), i64s([]int64{1}, 3)}, konst: []int{1}, outDTs: dts(f, tensor.Int64)},
			[]*tensor.Tensor{f32s([]int64{3, 1}, 1, 2, 2), i64s([]int64{3, 1}, 2, 1, 3)}},
		{"TopK largest ranks NaN first",
			opCase{opset: 11, op: "TopK", in: []*tensor.Tensor{f32s([]int64{4}, 1, nan, 5, 5), i64s([]int64{1}, 4)}, konst: []int{1}, outDTs: dts(f, tensor.Int64)},
			[]*tensor.Tensor{f32s([]int64{4}, nan, 5, 5, 1), i64s([]int64{4}, 1, 2, 3, 0)}},
		{"LogSoftmax coerced to 2-D (opset 11)",
			opCase{opset: 11, op: "LogSoftmax", in: []*tensor.Tensor{f64s([]int64{1, 2, 2}, 0, 0, 0, 0)}, outDTs: dts(tensor.Float64)},
			[]*tensor.Tensor{f64s([]int64{1, 2, 2}, -math.Log(4), -math.Log(4), -math.Log(4), -math.Log(4))}},
		{"LogSoftmax does not underflow",
			opCase{opset: 13, op: "LogSoftmax", in: []*tensor.Tensor{f32s([]int64{2}, 0, 1000)}, outDTs: dts(f)},
			[]*tensor.Tensor{f32s([]int64{2}, -1000, 0)}},
		{"ArgMin last index (opset 12)",
			opCase{opset: 12, op: "ArgMin", attrs: map[string]onnx.Attr{"axis": aInt(1), "select_last_index": aInt(1), "keepdims": aInt(0)},
				in: []*tensor.Tensor{i64s([]int64{2, 3}, 1, 0, 0, 5, 4, 6)}, outDTs: dts(tensor.Int64)},
			[]*tensor.Tensor{i64s([]int64{2}, 2, 1)}},

		// Elementwise edge cases.
		{"Round halves to even",
			opCase{opset: 11, op: "Round", in: []*tensor.Tensor{f32s([]int64{5}, 0.5, 1.5, 2.5, -0.5, -1.5)}, outDTs: dts(f)},
			[]*tensor.Tensor{f32s([]int64{5}, 0, 2, 2, 0, -2)}},
		{"Sign keeps NaN and zero",
			opCase{opset: 13, op: "Sign", in: []*tensor.Tensor{f32s([]int64{4}, -3, 0, 7, nan)}, outDTs: dts(f)},
			[]*tensor.Tensor{f32s([]int64{4}, -1, 0, 1, nan)}},
		{"Abs of int8 wraps like C",
			opCase{opset: 13, op: "Abs", in: []*tensor.Tensor{i8s([]int64{3}, -128, -5, 5)}, outDTs: dts(tensor.Int8)},
			[]*tensor.Tensor{i8s([]int64{3}, -128, 5, 5)}},
		{"Softplus neither overflows nor loses small results",
			opCase{opset: 13, op: "Softplus", in: []*tensor.Tensor{f64s([]int64{3}, 1000, -50, 0)}, outDTs: dts(tensor.Float64)},
			[]*tensor.Tensor{f64s([]int64{3}, 1000, math.Exp(-50), math.Ln2)}},
		{"Elu is exact near 0",
			opCase{opset: 13, op: "Elu", in: []*tensor.Tensor{f64s([]int64{1}, -1e-10)}, outDTs: dts(tensor.Float64)},
			[]*tensor.Tensor{f64s([]int64{1}, math.Expm1(-1e-10))}},
		{"Pow of ints with a float exponent",
			opCase{opset: 15, op: "Pow", in: []*tensor.Tensor{i64s([]int64{3}, 2, 3, -2), f32s([]int64{1}, 3)}, outDTs: dts(tensor.Int64)},
			[]*tensor.Tensor{i64s([]int64{3}, 8, 27, -8)}},
		{"Max propagates NaN",
			opCase{opset: 13, op: "Max", in: []*tensor.Tensor{f32s([]int64{3}, 1, nan, 3), f32s([]int64{3}, nan, 2, 1)}, outDTs: dts(f)},
			[]*tensor.Tensor{f32s([]int64{3}, nan, nan, 3)}},
		{"Mean of three broadcasting inputs",
			opCase{opset: 13, op: "Mean", in: []*tensor.Tensor{f32s([]int64{2, 1}, 3, 6), f32s([]int64{3}, 0, 3, 6), f32s(nil, 0)}, outDTs: dts(f)},
			[]*tensor.Tensor{f32s([]int64{2, 3}, 1, 2, 3, 2, 3, 4)}},
		{"Min of one input is a copy",
			opCase{opset: 13, op: "Min", in: []*tensor.Tensor{i64s([]int64{2}, 4, -4)}, outDTs: dts(tensor.Int64)},
			[]*tensor.Tensor{i64s([]int64{2}, 4, -4)}},
		{"PRelu with a per-channel slope",
			opCase{opset: 16, op: "PRelu", in: []*tensor.Tensor{f32s([]int64{2, 2, 1}, -1, -1, 2, -2), f32s([]int64{2, 1}, 0.5, 2)}, outDTs: dts(f)},
			[]*tensor.Tensor{f32s([]int64{2, 2, 1}, -0.5, -2, 2, -4)}},
		{"Where with a scalar and a row",
			opCase{opset: 16, op: "Where", in: []*tensor.Tensor{bools([]int64{2, 1}, true, false), f32s(nil, 7), f32s([]int64{2}, 1, 2)}, outDTs: dts(f)},
			[]*tensor.Tensor{f32s([]int64{2, 2}, 7, 7, 1, 2)}},
		{"Equal of bools broadcast",
			opCase{opset: 13, op: "Equal", in: []*tensor.Tensor{bools([]int64{2, 1}, true, false), bools([]int64{2}, true, false)}, outDTs: dts(tensor.Bool)},
			[]*tensor.Tensor{bools([]int64{2, 2}, true, false, false, true)}},
		{"comparisons with NaN are false",
			opCase{opset: 13, op: "LessOrEqual", in: []*tensor.Tensor{f32s([]int64{2}, nan, 1), f32s([]int64{2}, 1, 1)}, outDTs: dts(tensor.Bool)},
			[]*tensor.Tensor{bools([]int64{2}, false, true)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.c.run()
			if err != nil {
				t.Fatal(err)
			}
			for i, w := range tt.want {
				if err := sameTensor(got[i], w); err != nil {
					t.Errorf("output %d: %v", i, err)
				}
			}
		})
	}
}

// TestMathOpsRefuse checks that what Corvid does not run, or what the
// model's opset does not define, is refused when the model loads, with an
// error naming the attribute, input or value.
func TestMathOpsRefuse(t *testing.T) {
	f := tensor.Float32
	x := f32s([]int64{2, 3}, 1, 2, 3, 4, 5, 6)
	tests := []struct {
		name        string
		c           opCase
		unsupported bool // ErrUnsupported rather than ErrInvalidModel
		want        string
	}{
		{"Clip attribute from opset 11",
			opCase{opset: 11, op: "Clip", attrs: map[string]onnx.Attr{"min": aFloat(0)}, in: []*tensor.Tensor{x}, outDTs: dts(f)},
			false, `attribute "min" is defined before opset 11 only; the model imports opset 11`},
		{"Clip bound inputs before opset 11",
			opCase{opset: 10, op: "Clip", in: []*tensor.Tensor{x, f32s(nil, 0)}, outDTs: dts(f)},
			false, "before opset 11 Clip takes 1"},
		{"Clip bound that is not a scalar",
			opCase{opset: 13, op: "Clip", in: []*tensor.Tensor{x, f32s([]int64{2}, 0, 1)}, outDTs: dts(f)},
			false, "bound (input 1) has shape [2], want a scalar"},
		{"ReduceMean axes attribute from opset 18",
			opCase{opset: 18, op: "ReduceMean", attrs: map[string]onnx.Attr{"axes": aInts(0)}, in: []*tensor.Tensor{x}, outDTs: dts(f)},
			false, `attribute "axes" is defined before opset 18 only`},
		{"ReduceSum noop_with_empty_axes before opset 13",
			opCase{opset: 12, op: "ReduceSum", attrs: map[string]onnx.Attr{"noop_with_empty_axes": aInt(1)}, in: []*tensor.Tensor{x}, outDTs: dts(f)},
			false, `attribute "noop_with_empty_axes" is defined from opset 13; the model imports opset 12`},
		{"reduction axis twice",
			opCase{opset: 13, op: "ReduceMin", attrs: map[string]onnx.Attr{"axes": aInts(1, -1)}, in: []*tensor.Tensor{x}, outDTs: dts(f)},
			false, "axes [1 -1] name axis 1 twice"},
		{"reduction axis out of range",
			opCase{opset: 13, op: "ReduceMin", attrs: map[string]onnx.Attr{"axes": aInts(2)}, in: []*tensor.Tensor{x}, outDTs: dts(f)},
			false, "axis 2 is out of range for rank 2"},
		{"Gelu approximation Corvid does not know",
			opCase{opset: 20, op: "Gelu", attrs: map[string]onnx.Attr{"approximate": aString("fast")}, in: []*tensor.Tensor{x}, outDTs: dts(f)},
			false, `attribute "approximate" is "fast", want "none" or "tanh"`},
		{"Gelu before opset 20",
			opCase{opset: 17, op: "Gelu", in: []*tensor.Tensor{x}, outDTs: dts(f)},
			false, "Gelu is defined from opset 20; the model imports opset 17"},
		{"TopK k larger than the axis",
			opCase{opset: 11, op: "TopK", in: []*tensor.Tensor{x, i64s([]int64{1}, 4)}, konst: []int{1}, outDTs: dts(f, tensor.Int64)},
			false, "k = 4 is out of range [0, 3] for axis 1 of shape [2 3]"},
		{"TopK largest before opset 11",
			opCase{opset: 10, op: "TopK", attrs: map[string]onnx.Attr{"largest": aInt(0)}, in: []*tensor.Tensor{x, i64s([]int64{1}, 1)}, konst: []int{1}, outDTs: dts(f, tensor.Int64)},
			false, `attribute "largest" is defined from opset 11`},
		{"shapes that do not broadcast",
			opCase{opset: 13, op: "Greater", in: []*tensor.Tensor{x, f32s([]int64{2}, 1, 2)}, outDTs: dts(tensor.Bool)},
			false, "shapes [2 3] and [2] do not broadcast"},
		{"variadic inputs of different dtypes",
			opCase{opset: 13, op: "Sum", in: []*tensor.Tensor{x, f64s([]int64{1}, 1)}, outDTs: dts(f)},
			false, "input 1 has dtype fp64, want fp32 like input 0"},
		{"PRelu slope that would grow the output",
			opCase{opset: 16, op: "PRelu", in: []*tensor.Tensor{f32s([]int64{3}, 1, 2, 3), f32s([]int64{2, 3}, 1, 2, 3, 4, 5, 6)}, outDTs: dts(f)},
			false, "slope of shape [2 3] does not broadcast to the input's shape [3]"},
		{"Neg of uint8",
			opCase{opset: 13, op: "Neg", in: []*tensor.Tensor{{DType: tensor.Uint8, Shape: []int64{1}, Data: []uint8{1}}}, outDTs: dts(tensor.Uint8)},
			true, "input has dtype uint8 (supported: fp32, fp64, int8, int32, int64)"},
		{"And of numbers",
			opCase{opset: 13, op: "And", in: []*tensor.Tensor{x, x}, outDTs: dts(tensor.Bool)},
			true, "input A has dtype fp32 (supported: bool)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.c.run()
			if err == nil {
				t.Fatal("ran, want an error")
			}
			kind := onnx.ErrInvalidModel
			if tt.unsupported {
				kind = onnx.ErrUnsupported
			}
			if !errors.Is(err, kind) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %q, want an error wrapping %q saying %q", err, kind, tt.want)
			}
		})
	}
}

// TestLogSoftmaxAcrossTheBatch: padding a batch would change a LogSoftmax
// along the batch axis, so such a model is refused unless unbatched.
func TestLogSoftmaxAcrossTheBatch(t *testing.T) {
	for _, axis := range []int64{0, 1} {
		g := &onnx.Graph{
			Opsets:  map[string]int64{onnx.DomainDefault: 13},
			Inputs:  []onnx.ValueInfo{{Name: "x", DType: tensor.Float32, Shape: []int64{-1, 4}}},
			Outputs: []onnx.ValueInfo{{Name: "y", DType: tensor.Float32, Shape: []int64{-1, 4}}},
			Nodes: []onnx.Node{{Name: "ls", OpType: "LogSoftmax", Inputs: []string{"x"}, Outputs: []string{"y"},
				Attrs: map[string]onnx.Attr{"axis": aInt(axis)}}},
		}
		m, err := Compile(g, Options{Workers: 1, MaxBatch: 8})
		if axis == 0 {
			if !errors.Is(err, onnx.ErrUnsupported) || !strings.Contains(err.Error(), "normalises across the batch") {
				t.Errorf("axis 0: got %v, want the model refused", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("axis 1: %v", err)
		}
		m.Close()
	}
}

func TestNaryBcastPlan(t *testing.T) {
	tests := []struct {
		out      []int
		operands [][]int
		dims     []int
		str      [][]int
	}{
		{[]int{3, 4}, [][]int{{3, 4}, {3, 4}, {3, 4}}, []int{12}, [][]int{{1}, {1}, {1}}},
		{[]int{2, 3, 4}, [][]int{{2, 3, 4}, {4}, {}}, []int{6, 4}, [][]int{{4, 1}, {0, 1}, {0, 0}}},
		{[]int{2, 3}, [][]int{{2, 1}, {1, 3}, {2, 3}}, []int{2, 3}, [][]int{{1, 0}, {0, 1}, {3, 1}}},
		{[]int{1, 1}, [][]int{{1}, {1, 1}}, []int{1}, [][]int{{0}, {0}}},
		{[]int{2, 0}, [][]int{{2, 0}, {1}}, []int{0}, [][]int{{1}, {0}}},
	}
	for _, tt := range tests {
		p := newNaryBcast(tt.out, tt.operands...)
		if !slices.Equal(p.dims, tt.dims) || !slices.EqualFunc(p.str, tt.str, slices.Equal) {
			t.Errorf("%v from %v: got dims %v strides %v, want %v %v", tt.out, tt.operands, p.dims, p.str, tt.dims, tt.str)
		}
	}
}

func TestReducePlan(t *testing.T) {
	tests := []struct {
		shape         []int
		reduced       []bool
		kept, keptStr []int
		red, redStr   []int
		count         int
	}{
		{[]int{2, 3, 4}, []bool{false, false, true}, []int{6}, []int{4}, []int{4}, []int{1}, 4},
		{[]int{2, 3, 4}, []bool{true, false, false}, []int{12}, []int{1}, []int{2}, []int{12}, 2},
		{[]int{2, 3, 4, 5}, []bool{false, true, true, false}, []int{2, 5}, []int{60, 1}, []int{12}, []int{5}, 12},
		{[]int{2, 1, 4}, []bool{true, true, false}, []int{4}, []int{1}, []int{2}, []int{4}, 2},
		{[]int{3}, []bool{false}, []int{3}, []int{1}, []int{1}, []int{0}, 1},
		{[]int{}, []bool{}, []int{1}, []int{0}, []int{1}, []int{0}, 1},
		{[]int{2, 0, 4}, []bool{false, true, false}, []int{2, 4}, []int{0, 1}, []int{0}, []int{4}, 0},
	}
	for _, tt := range tests {
		p := newReducePlan(tt.shape, tt.reduced)
		if !slices.Equal(p.kept, tt.kept) || !slices.Equal(p.keptStr, tt.keptStr) || !slices.Equal(p.red, tt.red) ||
			!slices.Equal(p.redStr, tt.redStr) || p.count != tt.count {
			t.Errorf("%v reducing %v: got %+v, want kept %v/%v red %v/%v count %d",
				tt.shape, tt.reduced, p, tt.kept, tt.keptStr, tt.red, tt.redStr, tt.count)
		}
	}
}

// TestMathKernelsDoNotAllocate: a run writes into the op's own output and
// allocates nothing else.
func TestMathKernelsDoNotAllocate(t *testing.T) {
	dense := func(dt gt.Dtype, shape ...int) *gt.Dense { return gt.New(gt.Of(dt), gt.WithShape(shape...)) }
	x, y, c := dense(gt.Float32, 8, 16), dense(gt.Float32, 16), dense(gt.Bool, 8, 1)
	b2 := newNaryBcast([]int{8, 16}, []int{8, 16}, []int{16})
	kernels := []struct {
		name string
		k    kernel
		out  *gt.Dense
		ins  []*gt.Dense
	}{
		{"map", &mapKernel{desc: "Exp", f: math.Exp}, dense(gt.Float32, 8, 16), []*gt.Dense{x}},
		{"pow", &powKernel{p: b2}, dense(gt.Float32, 8, 16), []*gt.Dense{x, y}},
		{"clip", &clipKernel{hasLo: true}, dense(gt.Float32, 8, 16), []*gt.Dense{x, dense(gt.Float32)}},
		{"variadic", &variadicKernel{op: varMean, plans: []naryBcast{newNaryBcast([]int{8, 16}, []int{8, 16}), newNaryBcast([]int{8, 16}, []int{16})}},
			dense(gt.Float32, 8, 16), []*gt.Dense{x, y}},
		{"prelu", &preluKernel{p: b2}, dense(gt.Float32, 8, 16), []*gt.Dense{x, y}},
		{"logsoftmax", &softmaxKernel{axisLayout: layoutAround([]int{8, 16}, 1), log: true}, dense(gt.Float32, 8, 16), []*gt.Dense{x}},
		{"reduce", &reduceKernel{op: redMean, p: newReducePlan([]int{8, 16}, []bool{true, false})}, dense(gt.Float32, 16), []*gt.Dense{x}},
		{"reduce max", &reduceKernel{op: redMax, p: newReducePlan([]int{8, 16}, []bool{false, true})}, dense(gt.Float32, 8), []*gt.Dense{x}},
		{"argmin", &argKernel{axisLayout: layoutAround([]int{8, 16}, 1), min: true}, dense(gt.Int64, 8), []*gt.Dense{x}},
		{"topk", &topkKernel{axisLayout: layoutAround([]int{8, 16}, 1), k: 3, heap: make([]int, 3)}, dense(gt.Int64, 8, 3), []*gt.Dense{x}},
		{"compare", &compareKernel{op: cmpLess, p: b2}, dense(gt.Bool, 8, 16), []*gt.Dense{x, y}},
		{"where", &whereKernel{p: newNaryBcast([]int{8, 16}, []int{8, 1}, []int{8, 16}, []int{16})}, dense(gt.Float32, 8, 16), []*gt.Dense{c, x, y}},
	}
	for _, kk := range kernels {
		allocs := testing.AllocsPerRun(20, func() {
			if err := kk.k.run(kk.out, kk.ins); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per run, want 0", kk.name, allocs)
		}
	}
}
