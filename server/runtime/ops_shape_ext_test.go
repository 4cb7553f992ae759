package runtime_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/runtime"
	"github.com/corvidml/corvid/server/tensor"
)

// nodeTestShapeInputs lists, per operator, the inputs that decide its
// output's shape. Corvid needs them constant; ONNX's node tests feed most of them
// as graph inputs, so TestShapeOpsNodeTestsWithConstantInputs makes those
// initializers holding the test's values.
var nodeTestShapeInputs = map[string][]int{
	"Squeeze":         {1},
	"Unsqueeze":       {1},
	"Split":           {1},
	"Slice":           {1, 2, 3, 4},
	"Expand":          {1},
	"Tile":            {1},
	"Pad":             {1, 3}, // not constant_value (2): it is data, and stays a graph input
	"ConstantOfShape": {0},
	"Range":           {0, 1, 2},
	"Reshape":         {1},
}

// shapeOpTests are the name prefixes of the node tests of the shape and
// index operators.
var shapeOpTests = []string{
	"test_transpose", "test_squeeze", "test_unsqueeze", "test_concat", "test_split_", "test_slice",
	"test_gather_", "test_shape", "test_size", "test_expand", "test_tile", "test_constant_pad",
	"test_edge_pad", "test_reflect_pad", "test_wrap_pad", "test_constantofshape", "test_range",
	"test_identity", "test_constant", "test_center_crop_pad",
}

// TestShapeOpsNodeTestsWithConstantInputs runs ONNX's node tests of the
// shape and index operators (`make node-tests`) with their shape-deciding
// graph inputs turned into initializers, so that the kernels behind the
// tests TestONNXNodeConformance counts as unsupported are checked against
// ONNX's expected outputs too. CORVID_NODE_TEST_PREFIX narrows the run to
// the tests with that prefix.
func TestShapeOpsNodeTestsWithConstantInputs(t *testing.T) {
	dir := cmp.Or(os.Getenv("CORVID_ONNX_NODE_TESTS"), defaultNodeTestsDir)
	entries := nodeTestNames(t, dir)
	prefixes := shapeOpTests
	if p := os.Getenv("CORVID_NODE_TEST_PREFIX"); p != "" {
		prefixes = []string{p}
	}
	passed, unsupported := 0, map[string]string{}
	for _, name := range entries {
		if !slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(name, p) }) {
			continue
		}
		reason, err := runWithConstantInputs(filepath.Join(dir, name))
		switch {
		case err != nil:
			t.Errorf("%s: %v", name, err)
		case strings.Contains(reason, "must be a constant"):
			t.Errorf("%s: still refused once its shape inputs are initializers: %s", name, reason)
		case reason != "":
			unsupported[name] = reason
		default:
			passed++
		}
	}
	t.Logf("%d passed, %d unsupported", passed, len(unsupported))
	for name, reason := range unsupported {
		t.Logf("unsupported: %s: %s", name, reason)
	}
}

// runWithConstantInputs runs one node test whose shape-deciding graph
// inputs become initializers. It returns why the test cannot run when
// Corvid does not support it for another reason (a dtype, a sequence).
func runWithConstantInputs(dir string) (unsupported string, err error) {
	data, err := os.ReadFile(filepath.Join(dir, "model.onnx"))
	if err != nil {
		return "", err
	}
	g, err := onnx.Decode(data)
	if errors.Is(err, onnx.ErrUnsupported) {
		return err.Error(), nil
	}
	if err != nil {
		return "", err
	}
	sets, err := loadDataSets(dir)
	if errors.Is(err, onnx.ErrUnsupported) {
		return err.Error(), nil
	}
	if err != nil {
		return "", err
	}
	// The shape-deciding inputs, and small integer inputs that reach one
	// through arithmetic (CenterCropPad's target shape), but not indices:
	// those are data.
	consts, indices := map[string]bool{}, map[string]bool{}
	for _, n := range g.Nodes {
		for _, i := range nodeTestShapeInputs[n.OpType] {
			if name := n.Input(i); name != "" {
				consts[name] = true
			}
		}
		if n.OpType == "Gather" || n.OpType == "GatherElements" {
			indices[n.Input(1)] = true
		}
	}
	for _, v := range g.Inputs {
		if (v.DType == tensor.Int64 || v.DType == tensor.Int32) && len(v.Shape) <= 1 && !indices[v.Name] {
			consts[v.Name] = true
		}
	}
	g.Inputs = slices.DeleteFunc(g.Inputs, func(v onnx.ValueInfo) bool { return consts[v.Name] })
	for _, s := range sets {
		// Each data set gets a model of its own: its inputs are now part
		// of the model.
		inits := map[string]*tensor.Tensor{}
		for name, t := range g.Initializers {
			inits[name] = t
		}
		inputs := map[string]*tensor.Tensor{}
		for name, t := range s.inputs {
			if consts[name] {
				inits[name] = t
			} else {
				inputs[name] = t
			}
		}
		gs := *g
		gs.Initializers = inits
		m, err := runtime.Compile(&gs, runtime.Options{Workers: 1})
		if errors.Is(err, onnx.ErrUnsupported) {
			return err.Error(), nil
		}
		if err != nil {
			return "", err
		}
		got, err := m.Run(context.Background(), inputs, nil)
		m.Close()
		if err != nil {
			return "", err
		}
		for _, want := range s.outputs {
			if err := compareTensorsWithin(got[want.name], want.t, nodeTestTolerance); err != nil {
				return "", err
			}
		}
	}
	return "", nil
}

// tensorOf makes a tensor of T's dtype; a nil vals is all zeros.
func tensorOf[T float32 | float64 | int8 | uint8 | int32 | int64 | bool](shape []int64, vals ...T) *tensor.Tensor {
	var dt tensor.DType
	switch any(*new(T)).(type) {
	case float32:
		dt = tensor.Float32
	case float64:
		dt = tensor.Float64
	case int8:
		dt = tensor.Int8
	case uint8:
		dt = tensor.Uint8
	case int32:
		dt = tensor.Int32
	case int64:
		dt = tensor.Int64
	case bool:
		dt = tensor.Bool
	}
	if vals == nil {
		n, _ := tensor.NumElements(shape)
		vals = make([]T, n)
	}
	return &tensor.Tensor{DType: dt, Shape: shape, Data: vals}
}

func iota32(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(i)
	}
	return v
}

func listAttr(v ...int64) onnx.Attr { return onnx.Attr{Type: onnx.AttrInts, Ints: v} }
func numAttr(v int64) onnx.Attr     { return onnx.Attr{Type: onnx.AttrInt, Int: v} }

// shapeCase is one node run on its own: inputs are fed at run time, inits are
// initializers, want holds the expected outputs by name.
type shapeCase struct {
	name   string
	opset  int64
	op     string
	in     []string // the node's inputs, in order ("" for an omitted one)
	attrs  map[string]onnx.Attr
	inputs map[string]*tensor.Tensor
	inits  map[string]*tensor.Tensor
	want   map[string]*tensor.Tensor // by output name, in the node's output order of outNames
	outs   []string
}

func (c shapeCase) graph() *onnx.Graph {
	g := &onnx.Graph{
		Opsets:       map[string]int64{onnx.DomainDefault: cmp.Or(c.opset, 17)},
		Initializers: c.inits,
		Nodes:        []onnx.Node{{Name: "n", OpType: c.op, Inputs: c.in, Outputs: c.outs, Attrs: c.attrs}},
	}
	for _, name := range c.in {
		if t, ok := c.inputs[name]; ok && !slices.ContainsFunc(g.Inputs, func(v onnx.ValueInfo) bool { return v.Name == name }) {
			g.Inputs = append(g.Inputs, onnx.ValueInfo{Name: name, DType: t.DType, Shape: t.Shape})
		}
	}
	for _, name := range c.outs {
		g.Outputs = append(g.Outputs, onnx.ValueInfo{Name: name, DType: c.want[name].DType})
	}
	return g
}

func (c shapeCase) run(t *testing.T) (map[string]*tensor.Tensor, error) {
	t.Helper()
	if c.outs == nil {
		c.outs = []string{"y"}
	}
	m, err := runtime.Compile(c.graph(), runtime.Options{Workers: 1})
	if err != nil {
		return nil, err
	}
	defer m.Close()
	return m.Run(context.Background(), c.inputs, nil)
}

// TestShapeOps covers what ONNX's node tests do not: the attribute forms
// of the opsets before inputs replaced them, dtypes other than float32
// (the kernels move 1-, 4- and 8-byte words), and edge cases.
func TestShapeOps(t *testing.T) {
	x23 := tensorOf([]int64{2, 3}, iota32(6)...)
	tests := []shapeCase{
		{name: "Unsqueeze opset 11 attribute", opset: 11, op: "Unsqueeze", in: []string{"x"},
			attrs: map[string]onnx.Attr{"axes": listAttr(0, -1)}, inputs: map[string]*tensor.Tensor{"x": x23},
			want: map[string]*tensor.Tensor{"y": tensorOf([]int64{1, 2, 3, 1}, iota32(6)...)}},
		{name: "Unsqueeze input", opset: 13, op: "Unsqueeze", in: []string{"x", "a"},
			inputs: map[string]*tensor.Tensor{"x": x23}, inits: map[string]*tensor.Tensor{"a": tensorOf([]int64{2}, int64(3), 1)},
			want: map[string]*tensor.Tensor{"y": tensorOf([]int64{2, 1, 3, 1}, iota32(6)...)}},
		{name: "Squeeze opset 11 attribute", opset: 11, op: "Squeeze", in: []string{"x"},
			attrs:  map[string]onnx.Attr{"axes": listAttr(-2)},
			inputs: map[string]*tensor.Tensor{"x": tensorOf([]int64{1, 2, 1, 3}, iota32(6)...)},
			want:   map[string]*tensor.Tensor{"y": tensorOf([]int64{1, 2, 3}, iota32(6)...)}},
		{name: "Squeeze every size-1 axis", opset: 13, op: "Squeeze", in: []string{"x"},
			inputs: map[string]*tensor.Tensor{"x": tensorOf([]int64{1, 2, 1, 3}, iota32(6)...)},
			want:   map[string]*tensor.Tensor{"y": tensorOf([]int64{2, 3}, iota32(6)...)}},
		{name: "Split opset 11 attribute", opset: 11, op: "Split", in: []string{"x"}, outs: []string{"a", "b"},
			attrs: map[string]onnx.Attr{"axis": numAttr(1), "split": listAttr(1, 2)}, inputs: map[string]*tensor.Tensor{"x": x23},
			want: map[string]*tensor.Tensor{"a": tensorOf([]int64{2, 1}, float32(0), 3), "b": tensorOf([]int64{2, 2}, float32(1), 2, 4, 5)}},
		{name: "Split opset 18 num_outputs", opset: 18, op: "Split", in: []string{"x"}, outs: []string{"a", "b"},
			attrs:  map[string]onnx.Attr{"axis": numAttr(-1), "num_outputs": numAttr(2)},
			inputs: map[string]*tensor.Tensor{"x": tensorOf([]int64{3}, int64(7), 8, 9)},
			want:   map[string]*tensor.Tensor{"a": tensorOf([]int64{2}, int64(7), 8), "b": tensorOf([]int64{1}, int64(9))}},
		{name: "Slice opset 9 attributes", opset: 9, op: "Slice", in: []string{"x"},
			attrs:  map[string]onnx.Attr{"starts": listAttr(1), "ends": listAttr(1000), "axes": listAttr(1)},
			inputs: map[string]*tensor.Tensor{"x": x23},
			want:   map[string]*tensor.Tensor{"y": tensorOf([]int64{2, 2}, float32(1), 2, 4, 5)}},
		{name: "Slice backwards to the start, int32 bounds", opset: 13, op: "Slice", in: []string{"x", "s", "e", "a", "st"},
			inputs: map[string]*tensor.Tensor{"x": tensorOf([]int64{2, 3}, int64(0), 1, 2, 3, 4, 5)},
			inits: map[string]*tensor.Tensor{"s": tensorOf([]int64{2}, int32(-1), 10), "e": tensorOf([]int64{2}, int32(-2147483648), -10),
				"a": tensorOf([]int64{2}, int32(1), 0), "st": tensorOf([]int64{2}, int32(-2), -1)},
			want: map[string]*tensor.Tensor{"y": tensorOf([]int64{2, 2}, int64(5), 3, 2, 0)}},
		{name: "Slice with the largest steps", opset: 13, op: "Slice", in: []string{"x", "s", "e", "a", "st"},
			inputs: map[string]*tensor.Tensor{"x": x23},
			inits: map[string]*tensor.Tensor{"s": tensorOf([]int64{2}, int64(0), math.MaxInt64), "e": tensorOf([]int64{2}, int64(math.MaxInt64), math.MinInt64),
				"a": tensorOf([]int64{2}, int64(0), 1), "st": tensorOf([]int64{2}, int64(math.MaxInt64), math.MinInt64)},
			want: map[string]*tensor.Tensor{"y": tensorOf([]int64{1, 1}, float32(2))}},
		{name: "Slice to nothing", opset: 13, op: "Slice", in: []string{"x", "s", "e"},
			inputs: map[string]*tensor.Tensor{"x": x23},
			inits:  map[string]*tensor.Tensor{"s": tensorOf([]int64{1}, int64(2)), "e": tensorOf([]int64{1}, int64(1))},
			want:   map[string]*tensor.Tensor{"y": tensorOf[float32]([]int64{0, 3})}},
		{name: "Pad opset 10 attributes", opset: 10, op: "Pad", in: []string{"x"},
			attrs:  map[string]onnx.Attr{"pads": listAttr(0, 1, 0, -1), "value": {Type: onnx.AttrFloat, Float: 9}},
			inputs: map[string]*tensor.Tensor{"x": tensorOf([]int64{2, 2}, int32(1), 2, 3, 4)},
			want:   map[string]*tensor.Tensor{"y": tensorOf([]int64{2, 2}, int32(9), 1, 9, 3)}},
		{name: "Pad reflect past the edge", opset: 10, op: "Pad", in: []string{"x"},
			attrs:  map[string]onnx.Attr{"pads": listAttr(5, 4), "mode": {Type: onnx.AttrString, String: "reflect"}},
			inputs: map[string]*tensor.Tensor{"x": tensorOf([]int64{3}, int64(1), 2, 3)},
			want:   map[string]*tensor.Tensor{"y": tensorOf([]int64{12}, int64(2), 1, 2, 3, 2, 1, 2, 3, 2, 1, 2, 3)}},
		{name: "Pad wrap after cropping", opset: 19, op: "Pad", in: []string{"x", "p"},
			attrs:  map[string]onnx.Attr{"mode": {Type: onnx.AttrString, String: "wrap"}},
			inputs: map[string]*tensor.Tensor{"x": tensorOf([]int64{4}, int64(1), 2, 3, 4)},
			inits:  map[string]*tensor.Tensor{"p": tensorOf([]int64{2}, int64(-1), 2)},
			want:   map[string]*tensor.Tensor{"y": tensorOf([]int64{5}, int64(2), 3, 4, 2, 3)}},
		{name: "Pad edge on axes, bool", opset: 18, op: "Pad", in: []string{"x", "p", "", "a"},
			attrs:  map[string]onnx.Attr{"mode": {Type: onnx.AttrString, String: "edge"}},
			inputs: map[string]*tensor.Tensor{"x": tensorOf([]int64{2, 2}, true, false, false, true)},
			inits:  map[string]*tensor.Tensor{"p": tensorOf([]int64{2}, int64(1), 0), "a": tensorOf([]int64{1}, int64(-1))},
			want:   map[string]*tensor.Tensor{"y": tensorOf([]int64{2, 3}, true, true, false, false, false, true)}},
		{name: "Concat int8 and a constant", op: "Concat", in: []string{"x", "c"}, attrs: map[string]onnx.Attr{"axis": numAttr(-1)},
			inputs: map[string]*tensor.Tensor{"x": tensorOf([]int64{2, 1}, int8(1), 2)},
			inits:  map[string]*tensor.Tensor{"c": tensorOf([]int64{2, 2}, int8(-1), -2, -3, -4)},
			want:   map[string]*tensor.Tensor{"y": tensorOf([]int64{2, 3}, int8(1), -1, -2, 2, -3, -4)}},
		{name: "Transpose float64", op: "Transpose", in: []string{"x"}, attrs: map[string]onnx.Attr{"perm": listAttr(1, 0)},
			inputs: map[string]*tensor.Tensor{"x": tensorOf([]int64{2, 3}, 0.5, 1, 2, 3, 4, 5)},
			want:   map[string]*tensor.Tensor{"y": tensorOf([]int64{3, 2}, 0.5, 3, 1, 4, 2, 5)}},
		{name: "Gather a scalar int32 index along axis 1", op: "Gather", in: []string{"x", "i"}, attrs: map[string]onnx.Attr{"axis": numAttr(1)},
			inputs: map[string]*tensor.Tensor{"x": x23, "i": tensorOf([]int64{}, int32(-1))},
			want:   map[string]*tensor.Tensor{"y": tensorOf([]int64{2}, float32(2), 5)}},
		{name: "Gather a scalar from a vector", op: "Gather", in: []string{"x", "i"},
			inputs: map[string]*tensor.Tensor{"x": tensorOf([]int64{3}, 1.5, 2.5, 3.5), "i": tensorOf([]int64{}, int64(1))},
			want:   map[string]*tensor.Tensor{"y": tensorOf([]int64{}, 2.5)}},
		{name: "Unsqueeze a scalar", opset: 13, op: "Unsqueeze", in: []string{"x", "a"},
			inputs: map[string]*tensor.Tensor{"x": tensorOf([]int64{}, int64(4))}, inits: map[string]*tensor.Tensor{"a": tensorOf([]int64{1}, int64(0))},
			want: map[string]*tensor.Tensor{"y": tensorOf([]int64{1}, int64(4))}},
		{name: "Gather rows of a constant table", op: "Gather", in: []string{"w", "i"},
			inputs: map[string]*tensor.Tensor{"i": tensorOf([]int64{2, 2}, int64(1), 0, 1, 1)},
			inits:  map[string]*tensor.Tensor{"w": tensorOf([]int64{2, 2}, uint8(1), 2, 3, 4)},
			want:   map[string]*tensor.Tensor{"y": tensorOf([]int64{2, 2, 2}, uint8(3), 4, 1, 2, 3, 4, 3, 4)}},
		{name: "GatherElements smaller indices", op: "GatherElements", in: []string{"x", "i"}, attrs: map[string]onnx.Attr{"axis": numAttr(1)},
			inputs: map[string]*tensor.Tensor{"x": x23, "i": tensorOf([]int64{1, 2}, int32(2), -3)},
			want:   map[string]*tensor.Tensor{"y": tensorOf([]int64{1, 2}, float32(2), 0)}},
		{name: "Expand both ways", op: "Expand", in: []string{"x", "s"},
			inputs: map[string]*tensor.Tensor{"x": tensorOf([]int64{2, 1, 1}, int32(1), 2)},
			inits:  map[string]*tensor.Tensor{"s": tensorOf([]int64{2}, int64(2), 1)},
			want:   map[string]*tensor.Tensor{"y": tensorOf([]int64{2, 2, 1}, int32(1), 1, 2, 2)}},
		{name: "Tile int64", op: "Tile", in: []string{"x", "r"},
			inputs: map[string]*tensor.Tensor{"x": tensorOf([]int64{1, 2}, int64(1), 2)},
			inits:  map[string]*tensor.Tensor{"r": tensorOf([]int64{2}, int64(2), 2)},
			want:   map[string]*tensor.Tensor{"y": tensorOf([]int64{2, 4}, int64(1), 2, 1, 2, 1, 2, 1, 2)}},
		{name: "ConstantOfShape default", op: "ConstantOfShape", in: []string{"s"},
			inits: map[string]*tensor.Tensor{"s": tensorOf([]int64{2}, int64(1), 2)},
			want:  map[string]*tensor.Tensor{"y": tensorOf[float32]([]int64{1, 2})}},
		{name: "ConstantOfShape int32 scalar", op: "ConstantOfShape", in: []string{"s"},
			attrs: map[string]onnx.Attr{"value": {Type: onnx.AttrTensor, Tensor: tensorOf([]int64{1}, int32(7))}},
			inits: map[string]*tensor.Tensor{"s": tensorOf[int64]([]int64{0})},
			want:  map[string]*tensor.Tensor{"y": tensorOf([]int64{}, int32(7))}},
		{name: "Range int64 down", op: "Range", in: []string{"a", "b", "c"},
			inits: map[string]*tensor.Tensor{"a": tensorOf([]int64{}, int64(10)), "b": tensorOf([]int64{}, int64(4)), "c": tensorOf([]int64{}, int64(-3))},
			want:  map[string]*tensor.Tensor{"y": tensorOf([]int64{2}, int64(10), 7)}},
		{name: "Range float empty", op: "Range", in: []string{"a", "b", "c"},
			inits: map[string]*tensor.Tensor{"a": tensorOf([]int64{}, float32(1)), "b": tensorOf([]int64{}, float32(0)), "c": tensorOf([]int64{}, float32(0.5))},
			want:  map[string]*tensor.Tensor{"y": tensorOf[float32]([]int64{0})}},
		{name: "Shape of a slice of axes", opset: 15, op: "Shape", in: []string{"x"}, attrs: map[string]onnx.Attr{"start": numAttr(-1), "end": numAttr(10)},
			inputs: map[string]*tensor.Tensor{"x": x23},
			want:   map[string]*tensor.Tensor{"y": tensorOf([]int64{1}, int64(3))}},
		{name: "Size", op: "Size", in: []string{"x"}, inputs: map[string]*tensor.Tensor{"x": x23},
			want: map[string]*tensor.Tensor{"y": tensorOf([]int64{}, int64(6))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.run(t)
			if err != nil {
				t.Fatal(err)
			}
			for name, want := range tt.want {
				if err := compareTensors(got[name], want); err != nil {
					t.Errorf("output %s: %v", name, err)
				}
			}
		})
	}
}

// TestShapeOpsRefuse checks load-time refusals: inputs that must be
// constants (ErrUnsupported), and forms the model's opset does not define
// (ErrInvalidModel).
func TestShapeOpsRefuse(t *testing.T) {
	x23 := tensorOf[float32]([]int64{2, 3})
	i1 := tensorOf([]int64{1}, int64(0))
	tests := []struct {
		c     shapeCase
		want  error
		words []string
	}{
		{shapeCase{op: "Unsqueeze", opset: 13, in: []string{"x"}, attrs: map[string]onnx.Attr{"axes": listAttr(0)}, inputs: map[string]*tensor.Tensor{"x": x23}},
			onnx.ErrInvalidModel, []string{`attribute "axes" was replaced by input 1 in opset 13`}},
		{shapeCase{op: "Unsqueeze", opset: 11, in: []string{"x", "a"}, inputs: map[string]*tensor.Tensor{"x": x23}, inits: map[string]*tensor.Tensor{"a": i1}},
			onnx.ErrInvalidModel, []string{"input 1 (axes) is defined from opset 13"}},
		{shapeCase{op: "Unsqueeze", opset: 11, in: []string{"x"}, attrs: map[string]onnx.Attr{"axes": listAttr(1, -3)}, inputs: map[string]*tensor.Tensor{"x": x23}},
			onnx.ErrInvalidModel, []string{"axes [1 -3] name axis 1 twice"}},
		{shapeCase{op: "Squeeze", opset: 11, in: []string{"x"}, attrs: map[string]onnx.Attr{"axes": listAttr(1)}, inputs: map[string]*tensor.Tensor{"x": x23}},
			onnx.ErrInvalidModel, []string{"cannot squeeze axis 1 of shape [2 3]: its size is 3, want 1"}},
		{shapeCase{op: "Transpose", in: []string{"x"}, attrs: map[string]onnx.Attr{"perm": listAttr(0, 0)}, inputs: map[string]*tensor.Tensor{"x": x23}},
			onnx.ErrInvalidModel, []string{"perm [0 0] is not a permutation of 0..1"}},
		{shapeCase{op: "Concat", in: []string{"x", "x"}, inputs: map[string]*tensor.Tensor{"x": x23}},
			onnx.ErrInvalidModel, []string{`attribute "axis" is required`}},
		{shapeCase{op: "Concat", in: []string{"x", "c"}, attrs: map[string]onnx.Attr{"axis": numAttr(0)}, inputs: map[string]*tensor.Tensor{"x": x23},
			inits: map[string]*tensor.Tensor{"c": tensorOf[float32]([]int64{2, 2})}},
			onnx.ErrInvalidModel, []string{"input 1 has shape [2 2], want [2 3] except along axis 0"}},
		{shapeCase{op: "Split", opset: 18, in: []string{"x", "s"}, outs: []string{"a", "b"}, attrs: map[string]onnx.Attr{"num_outputs": numAttr(2)},
			inputs: map[string]*tensor.Tensor{"x": x23}, inits: map[string]*tensor.Tensor{"s": tensorOf([]int64{2}, int64(1), 1)}},
			onnx.ErrInvalidModel, []string{"both the split input and the num_outputs attribute are set"}},
		{shapeCase{op: "Split", opset: 18, in: []string{"x"}, outs: []string{"a", "b", "c"}, attrs: map[string]onnx.Attr{"num_outputs": numAttr(3)},
			inputs: map[string]*tensor.Tensor{"x": tensorOf[float32]([]int64{4})}},
			onnx.ErrInvalidModel, []string{"cannot split size 4 of axis 0 into 3 parts: parts of 2 leave 0 for the last"}},
		{shapeCase{op: "Split", opset: 13, in: []string{"x"}, outs: []string{"a", "b"}, attrs: map[string]onnx.Attr{"axis": numAttr(1)}, inputs: map[string]*tensor.Tensor{"x": x23}},
			onnx.ErrInvalidModel, []string{"cannot split size 3 of axis 1 into 2 equal parts"}},
		{shapeCase{op: "Split", opset: 13, in: []string{"x"}, outs: []string{"a", "b"}, attrs: map[string]onnx.Attr{"num_outputs": numAttr(2)}, inputs: map[string]*tensor.Tensor{"x": x23}},
			onnx.ErrInvalidModel, []string{`attribute "num_outputs" is defined from opset 18`}},
		{shapeCase{op: "Slice", opset: 9, in: []string{"x", "s"}, inputs: map[string]*tensor.Tensor{"x": x23}, inits: map[string]*tensor.Tensor{"s": i1}},
			onnx.ErrInvalidModel, []string{"before opset 10 starts, ends and axes are attributes"}},
		{shapeCase{op: "Slice", opset: 13, in: []string{"x", "s", "e", "", "st"}, inputs: map[string]*tensor.Tensor{"x": x23},
			inits: map[string]*tensor.Tensor{"s": i1, "e": i1, "st": tensorOf([]int64{1}, int64(0))}},
			onnx.ErrInvalidModel, []string{"steps [0] has a 0"}},
		{shapeCase{op: "Pad", opset: 18, in: []string{"x", "p"}, attrs: map[string]onnx.Attr{"mode": {Type: onnx.AttrString, String: "wrap"}},
			inputs: map[string]*tensor.Tensor{"x": x23}, inits: map[string]*tensor.Tensor{"p": tensorOf[int64]([]int64{4})}},
			onnx.ErrInvalidModel, []string{`mode "wrap" is defined from opset 19`}},
		{shapeCase{op: "Pad", opset: 13, in: []string{"x", "p"}, attrs: map[string]onnx.Attr{"mode": {Type: onnx.AttrString, String: "symmetric"}},
			inputs: map[string]*tensor.Tensor{"x": x23}, inits: map[string]*tensor.Tensor{"p": tensorOf[int64]([]int64{4})}},
			onnx.ErrInvalidModel, []string{`mode "symmetric" is not one of constant, reflect, edge, wrap`}},
		{shapeCase{op: "Pad", opset: 13, in: []string{"x", "p"}, attrs: map[string]onnx.Attr{"mode": {Type: onnx.AttrString, String: "edge"}},
			inputs: map[string]*tensor.Tensor{"x": x23}, inits: map[string]*tensor.Tensor{"p": tensorOf([]int64{4}, int64(0), -3, 0, 1)}},
			onnx.ErrInvalidModel, []string{"mode edge cannot pad axis 1: it has no elements left"}},
		{shapeCase{op: "Pad", opset: 13, in: []string{"x", "p"}, inputs: map[string]*tensor.Tensor{"x": x23}, inits: map[string]*tensor.Tensor{"p": tensorOf[int64]([]int64{2})}},
			onnx.ErrInvalidModel, []string{"pads [0 0] has 2 entries, want 2 per axis: 4"}},
		{shapeCase{op: "Shape", opset: 13, in: []string{"x"}, attrs: map[string]onnx.Attr{"start": numAttr(1)}, inputs: map[string]*tensor.Tensor{"x": x23}},
			onnx.ErrInvalidModel, []string{`attribute "start" is defined from opset 15`}},
		{shapeCase{op: "Gather", in: []string{"x", "i"}, inputs: map[string]*tensor.Tensor{"x": x23}, inits: map[string]*tensor.Tensor{"i": tensorOf([]int64{1}, int64(2))}},
			onnx.ErrInvalidModel, []string{"index 2 is out of range [-2, 2)"}},
		{shapeCase{op: "Expand", in: []string{"x", "s"}, inputs: map[string]*tensor.Tensor{"x": x23}, inits: map[string]*tensor.Tensor{"s": tensorOf([]int64{1}, int64(2))}},
			onnx.ErrInvalidModel, []string{"input shape [2 3] does not broadcast to [2]"}},
		{shapeCase{op: "Tile", in: []string{"x", "r"}, inputs: map[string]*tensor.Tensor{"x": x23}, inits: map[string]*tensor.Tensor{"r": tensorOf([]int64{1}, int64(2))}},
			onnx.ErrInvalidModel, []string{"repeats [2] has 1 entries, want the input's rank 2"}},
		{shapeCase{op: "Range", in: []string{"a", "b", "c"},
			inits: map[string]*tensor.Tensor{"a": tensorOf([]int64{}, int64(0)), "b": tensorOf([]int64{}, int64(1)<<40), "c": tensorOf([]int64{}, int64(1))}},
			onnx.ErrInvalidModel, []string{"has more than 2147483647 elements"}},
	}
	for _, tt := range tests {
		t.Run(tt.c.op+" "+tt.words[len(tt.words)-1], func(t *testing.T) {
			tt.c.want = map[string]*tensor.Tensor{"y": x23, "a": x23, "b": x23, "c": x23}
			_, err := tt.c.run(t)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			for _, w := range tt.words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// TestGatherIndexOutOfRangeAtRun checks that data-dependent indices are
// checked on every run: an error, not a panic or a read out of bounds.
func TestGatherIndexOutOfRangeAtRun(t *testing.T) {
	for _, op := range []string{"Gather", "GatherElements"} {
		c := shapeCase{op: op, in: []string{"x", "i"}, inputs: map[string]*tensor.Tensor{
			"x": tensorOf[float32]([]int64{2, 3}), "i": tensorOf([]int64{2, 3}, int64(0), 1, 0, 1, 0, -3)},
			want: map[string]*tensor.Tensor{"y": tensorOf[float32](nil)}}
		_, err := c.run(t)
		if !errors.Is(err, runtime.ErrInternal) || !strings.Contains(err.Error(), "index -3 is out of range [-2, 2)") {
			t.Errorf("%s: got %v, want ErrInternal saying index -3 is out of range [-2, 2)", op, err)
		}
	}
}

// batchChain is what PyTorch exports for y = x.view(x.size(0), -1) and
// w = x.transpose(1, 2)[:, :, 1:] / x.size(-1), x of shape [N 3 4]: shape
// arithmetic on Shape(x) that must fold to constants in each batch
// bucket's graph.
func batchChain() *onnx.Graph {
	node := func(op string, in []string, out string, attrs map[string]onnx.Attr) onnx.Node {
		return onnx.Node{Name: out, OpType: op, Inputs: in, Outputs: []string{out}, Attrs: attrs}
	}
	return &onnx.Graph{
		Opsets:  map[string]int64{onnx.DomainDefault: 13},
		Inputs:  []onnx.ValueInfo{{Name: "x", DType: tensor.Float32, Shape: []int64{-1, 3, 4}}},
		Outputs: []onnx.ValueInfo{{Name: "y", DType: tensor.Float32, Shape: []int64{-1, 12}}, {Name: "w", DType: tensor.Float32, Shape: []int64{-1, 4, 2}}},
		Initializers: map[string]*tensor.Tensor{
			"zero": tensorOf([]int64{}, int64(0)), "last": tensorOf([]int64{}, int64(-1)), "axes0": tensorOf([]int64{1}, int64(0)),
			"minus1": tensorOf([]int64{1}, int64(-1)), "one": tensorOf([]int64{1}, int64(1)), "end": tensorOf([]int64{1}, int64(1)<<62),
			"axes2": tensorOf([]int64{1}, int64(2)),
		},
		Nodes: []onnx.Node{
			node("Shape", []string{"x"}, "s", nil),
			node("Gather", []string{"s", "zero"}, "n", nil),
			node("Unsqueeze", []string{"n", "axes0"}, "n1", nil),
			node("Concat", []string{"n1", "minus1"}, "shp", map[string]onnx.Attr{"axis": numAttr(0)}),
			node("Reshape", []string{"x", "shp"}, "y", nil),
			node("Transpose", []string{"x"}, "t", map[string]onnx.Attr{"perm": listAttr(0, 2, 1)}),
			node("Slice", []string{"t", "one", "end", "axes2"}, "z", nil),
			node("Gather", []string{"s", "last"}, "d", nil),
			node("Cast", []string{"d"}, "df", map[string]onnx.Attr{"to": numAttr(1)}),
			node("Div", []string{"z", "df"}, "w", nil),
		},
	}
}

// TestShapeArithmeticWithBatching runs batchChain at batch sizes that fall
// in different buckets, padded or not.
func TestShapeArithmeticWithBatching(t *testing.T) {
	m, err := runtime.Compile(batchChain(), runtime.Options{MaxBatch: 16, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, n := range []int{1, 3, 8, 11, 16} {
		x := iota32(n * 12)
		got, err := m.Run(context.Background(), map[string]*tensor.Tensor{"x": tensorOf([]int64{int64(n), 3, 4}, x...)}, nil)
		if err != nil {
			t.Fatalf("batch %d: %v", n, err)
		}
		if err := compareTensors(got["y"], tensorOf([]int64{int64(n), 12}, x...)); err != nil {
			t.Errorf("batch %d: y: %v", n, err)
		}
		w := make([]float32, 0, n*8)
		for b := range n {
			for j := range 4 {
				for i := 1; i < 3; i++ {
					w = append(w, x[b*12+i*4+j]/4)
				}
			}
		}
		if err := compareTensors(got["w"], tensorOf([]int64{int64(n), 4, 2}, w...)); err != nil {
			t.Errorf("batch %d: w: %v", n, err)
		}
	}
}

// TestShapeOpsAcrossTheBatch checks the graphs that padding a batch would
// change, which shapes alone do not show.
func TestShapeOpsAcrossTheBatch(t *testing.T) {
	x := onnx.ValueInfo{Name: "x", DType: tensor.Float32, Shape: []int64{-1, 4}}
	tests := []struct {
		name  string
		nodes []onnx.Node
		words string
	}{
		{"concatenating along the batch",
			[]onnx.Node{{Name: "c", OpType: "Concat", Inputs: []string{"x", "x"}, Outputs: []string{"y"}, Attrs: map[string]onnx.Attr{"axis": numAttr(0)}}},
			`node "c" (Concat) moves data along axis 0 of input "x", which follows the batch`},
		{"slicing the batch",
			[]onnx.Node{{Name: "s", OpType: "Slice", Inputs: []string{"x", "one", "big"}, Outputs: []string{"y"}}},
			`node "s" (Slice) moves data along axis 0`},
		{"dividing by the batch size",
			[]onnx.Node{
				{Name: "size", OpType: "Size", Inputs: []string{"x"}, Outputs: []string{"n"}},
				{Name: "cast", OpType: "Cast", Inputs: []string{"n"}, Outputs: []string{"nf"}, Attrs: map[string]onnx.Attr{"to": numAttr(1)}},
				{Name: "div", OpType: "Div", Inputs: []string{"x", "nf"}, Outputs: []string{"y"}},
			},
			`node "div" (Div) computes with the batch size (input "nf")`},
		{"returning the batch size",
			[]onnx.Node{
				{Name: "shape", OpType: "Shape", Inputs: []string{"x"}, Outputs: []string{"s"}},
				{Name: "cast", OpType: "Cast", Inputs: []string{"s"}, Outputs: []string{"sf"}, Attrs: map[string]onnx.Attr{"to": numAttr(1)}},
				{Name: "add", OpType: "Add", Inputs: []string{"sf", "zero"}, Outputs: []string{"y"}},
			},
			`output "y" is computed from the batch size`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &onnx.Graph{
				Opsets:  map[string]int64{onnx.DomainDefault: 13},
				Inputs:  []onnx.ValueInfo{x},
				Outputs: []onnx.ValueInfo{{Name: "y", DType: tensor.Float32}},
				Initializers: map[string]*tensor.Tensor{"one": tensorOf([]int64{1}, int64(1)), "big": tensorOf([]int64{1}, int64(1)<<40),
					"zero": tensorOf([]int64{1}, float32(0))},
				Nodes: tt.nodes,
			}
			_, err := runtime.Compile(g, runtime.Options{MaxBatch: 8})
			if !errors.Is(err, onnx.ErrUnsupported) || !strings.Contains(err.Error(), tt.words) {
				t.Fatalf("got %v, want ErrUnsupported saying %s", err, tt.words)
			}
			// Served one item at a time, nothing is padded.
			m, err := runtime.Compile(g, runtime.Options{MaxBatch: 1})
			if err != nil {
				t.Fatalf("MaxBatch 1: %v", err)
			}
			m.Close()
		})
	}
}

// TestSliceAndTransposeRandom checks Slice and Transpose on random shapes
// against direct index arithmetic: the kernels merge and reorder axes, and
// a mistake there shows on shapes the node tests do not have.
func TestSliceAndTransposeRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := range 300 {
		rank := 1 + r.IntN(5)
		shape := make([]int64, rank)
		for i := range shape {
			shape[i] = 1 + r.Int64N(4)
		}
		n, _ := tensor.NumElements(shape)
		x := tensorOf(shape, iota32(n)...)

		// Transpose by a random permutation.
		perm := r.Perm(rank)
		tshape := make([]int64, rank)
		for i, p := range perm {
			tshape[i] = shape[p]
		}
		want := make([]float32, 0, n)
		forEachIndex(tshape, func(idx []int64) {
			src := make([]int64, rank)
			for i, p := range perm {
				src[p] = idx[i]
			}
			want = append(want, float32(flatIndex(shape, src)))
		})
		permAttr := make([]int64, rank)
		for i, p := range perm {
			permAttr[i] = int64(p)
		}
		c := shapeCase{op: "Transpose", in: []string{"x"}, attrs: map[string]onnx.Attr{"perm": listAttr(permAttr...)},
			inputs: map[string]*tensor.Tensor{"x": x}, want: map[string]*tensor.Tensor{"y": tensorOf(tshape, want...)}}
		checkCase(t, fmt.Sprintf("trial %d: Transpose %v by %v", trial, shape, perm), c)

		// Slice a random subset of axes, in a random order, with random
		// bounds (often out of range) and steps.
		var starts, ends, axes, steps []int64
		sshape := slices.Clone(shape)
		first, step := make([]int64, rank), slices.Repeat([]int64{1}, rank)
		for _, a := range r.Perm(rank)[:1+r.IntN(rank)] {
			st, en, sp := r.Int64N(13)-6, r.Int64N(13)-6, r.Int64N(7)-3
			if sp == 0 {
				sp = 1
			}
			f, cnt := specSlice(st, en, sp, shape[a])
			starts, ends, steps = append(starts, st), append(ends, en), append(steps, sp)
			axes = append(axes, int64(a)-int64(rank)*r.Int64N(2)) // sometimes negative
			sshape[a], first[a], step[a] = cnt, f, sp
		}
		want = want[:0]
		forEachIndex(sshape, func(idx []int64) {
			src := make([]int64, rank)
			for i := range idx {
				src[i] = first[i] + idx[i]*step[i]
			}
			want = append(want, float32(flatIndex(shape, src)))
		})
		k := int64(len(starts))
		c = shapeCase{op: "Slice", in: []string{"x", "s", "e", "a", "st"}, inputs: map[string]*tensor.Tensor{"x": x},
			inits: map[string]*tensor.Tensor{"s": tensorOf([]int64{k}, starts...), "e": tensorOf([]int64{k}, ends...),
				"a": tensorOf([]int64{k}, axes...), "st": tensorOf([]int64{k}, steps...)},
			want: map[string]*tensor.Tensor{"y": tensorOf(sshape, want...)}}
		checkCase(t, fmt.Sprintf("trial %d: Slice %v starts %v ends %v axes %v steps %v", trial, shape, starts, ends, axes, steps), c)
	}
}

func checkCase(t *testing.T, what string, c shapeCase) {
	t.Helper()
	got, err := c.run(t)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if err := compareTensors(got["y"], c.want["y"]); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// specSlice resolves one axis of a Slice as the ONNX specification words
// it (and ONNX Runtime computes it), written independently of the
// runtime's: the first index taken and how many are. It differs from
// numpy when a negative step starts before the axis (start < -n): ONNX
// clamps the start to 0 and takes element 0, numpy takes nothing.
func specSlice(start, end, step, n int64) (first, count int64) {
	if start < 0 {
		start += n
	}
	if end < 0 {
		end += n
	}
	if step < 0 {
		start, end = min(max(start, 0), n-1), min(max(end, -1), n-1)
	} else {
		start, end = min(max(start, 0), n), min(max(end, 0), n)
	}
	return start, max(int64(math.Ceil(float64(end-start)/float64(step))), 0)
}

// forEachIndex calls f with every index of shape in row-major order.
func forEachIndex(shape []int64, f func([]int64)) {
	if slices.Contains(shape, 0) {
		return
	}
	idx := make([]int64, len(shape))
	for {
		f(idx)
		d := len(idx) - 1
		for ; d >= 0; d-- {
			if idx[d]++; idx[d] < shape[d] {
				break
			}
			idx[d] = 0
		}
		if d < 0 {
			return
		}
	}
}

func flatIndex(shape, idx []int64) int64 {
	var off int64
	for i, d := range shape {
		off = off*d + idx[i]
	}
	return off
}
