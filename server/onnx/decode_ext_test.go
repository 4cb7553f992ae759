package onnx_test

import (
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	onnxpb "github.com/corvidml/corvid/gen/go/onnx"
	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/tensor"
)

// baseModel is a small valid model: y = Relu(x + b), x fp32 [N 3], b an
// initializer; each refusal case breaks one thing in it.
func baseModel() *onnxpb.ModelProto {
	return &onnxpb.ModelProto{
		IrVersion:   8,
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: "", Version: 17}},
		Graph: &onnxpb.GraphProto{
			Name: "g",
			Node: []*onnxpb.NodeProto{
				{Name: "add", OpType: "Add", Input: []string{"x", "b"}, Output: []string{"s"}},
				{Name: "relu", OpType: "Relu", Input: []string{"s"}, Output: []string{"y"}},
			},
			Initializer: []*onnxpb.TensorProto{floatTensor("b", []int64{3}, 1, 2, 3)},
			Input:       []*onnxpb.ValueInfoProto{valueInfo("x", onnxpb.TensorProto_FLOAT, -1, 3)},
			Output:      []*onnxpb.ValueInfoProto{valueInfo("y", onnxpb.TensorProto_FLOAT, -1, 3)},
		},
	}
}

// floatTensor makes an fp32 TensorProto with raw little-endian data.
func floatTensor(name string, dims []int64, vals ...float32) *onnxpb.TensorProto {
	raw := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	return &onnxpb.TensorProto{Name: name, Dims: dims, DataType: int32(onnxpb.TensorProto_FLOAT), RawData: raw}
}

// valueInfo declares a tensor value; a negative dim is a dim_param "N".
func valueInfo(name string, dt onnxpb.TensorProto_DataType, dims ...int64) *onnxpb.ValueInfoProto {
	shape := &onnxpb.TensorShapeProto{}
	for _, d := range dims {
		dim := &onnxpb.TensorShapeProto_Dimension{}
		if d < 0 {
			dim.Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "N"}
		} else {
			dim.Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}
		}
		shape.Dim = append(shape.Dim, dim)
	}
	return &onnxpb.ValueInfoProto{Name: name, Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
		TensorType: &onnxpb.TypeProto_Tensor{ElemType: int32(dt), Shape: shape},
	}}}
}

func marshal(t *testing.T, m *onnxpb.ModelProto) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeBase(t *testing.T) {
	g, err := onnx.Decode(marshal(t, baseModel()))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if got, want := len(g.Nodes), 2; got != want {
		t.Fatalf("got %d nodes, want %d", got, want)
	}
	if got, want := g.Inputs, []onnx.ValueInfo{{Name: "x", DType: tensor.Float32, Shape: []int64{-1, 3}}}; !equalInfos(got, want) {
		t.Errorf("inputs: got %v, want %v", got, want)
	}
	if got, want := g.Initializers["b"].Data, []float32{1, 2, 3}; !slices.Equal(got.([]float32), want) {
		t.Errorf("initializer b: got %v, want %v", got, want)
	}
	if got, want := g.Opset(), int64(17); got != want {
		t.Errorf("opset: got %d, want %d", got, want)
	}
}

func equalInfos(a, b []onnx.ValueInfo) bool {
	return slices.EqualFunc(a, b, func(x, y onnx.ValueInfo) bool {
		return x.Name == y.Name && x.DType == y.DType && slices.Equal(x.Shape, y.Shape)
	})
}

// TestDecodeRefuses checks every refusal: the sentinel it wraps, and words
// the message must contain to tell the user what is wrong and where.
func TestDecodeRefuses(t *testing.T) {
	tests := []struct {
		name   string
		data   []byte                     // used when set
		mutate func(m *onnxpb.ModelProto) // applied to baseModel otherwise
		want   error
		words  []string
	}{
		{name: "empty", data: []byte{}, want: onnx.ErrInvalidModel, words: []string{"empty"}},
		{name: "pickle", data: []byte("\x80\x04\x95\x10\x00\x00\x00"), want: onnx.ErrInvalidModel, words: []string{"pickle"}},
		{name: "zip", data: []byte("PK\x03\x04\x14\x00\x00\x00"), want: onnx.ErrInvalidModel, words: []string{"zip"}},
		{name: "hdf5", data: []byte("\x89HDF\r\n\x1a\n\x00"), want: onnx.ErrInvalidModel, words: []string{"HDF5"}},
		{name: "not protobuf", data: []byte{0x0a, 0xff, 0xff}, want: onnx.ErrInvalidModel, words: []string{"not an ONNX protobuf"}},
		{name: "protobuf of something else", data: []byte{0xa2, 0x06, 0x01, 0x00}, want: onnx.ErrInvalidModel, words: []string{"not an ONNX model"}},
		{name: "no graph", mutate: func(m *onnxpb.ModelProto) { m.Graph = nil }, want: onnx.ErrInvalidModel, words: []string{"no graph"}},
		{name: "no default opset", mutate: func(m *onnxpb.ModelProto) { m.OpsetImport = nil }, want: onnx.ErrInvalidModel, words: []string{"default operator set"}},
		{name: "opset too old", mutate: func(m *onnxpb.ModelProto) { m.OpsetImport[0].Version = 6 }, want: onnx.ErrUnsupported, words: []string{"version 6"}},
		{name: "opset too new", mutate: func(m *onnxpb.ModelProto) { m.OpsetImport[0].Version = 99 }, want: onnx.ErrUnsupported, words: []string{"version 99"}},
		{name: "foreign opset", mutate: func(m *onnxpb.ModelProto) {
			m.OpsetImport = append(m.OpsetImport, &onnxpb.OperatorSetIdProto{Domain: "com.microsoft", Version: 1})
		}, want: onnx.ErrUnsupported, words: []string{"com.microsoft"}},
		{name: "opset imported twice", mutate: func(m *onnxpb.ModelProto) {
			m.OpsetImport = append(m.OpsetImport, &onnxpb.OperatorSetIdProto{Domain: "ai.onnx", Version: 16})
		}, want: onnx.ErrInvalidModel, words: []string{"twice", "16", "17"}},
		{name: "unknown op", mutate: func(m *onnxpb.ModelProto) { m.Graph.Node[1].OpType = "NoSuchOp" }, want: onnx.ErrUnsupported,
			words: []string{`node "relu" (NoSuchOp)`, "operator NoSuchOp (opset 17) is not supported"}},
		{name: "ml op without ml opset", mutate: func(m *onnxpb.ModelProto) {
			m.Graph.Node[1] = &onnxpb.NodeProto{Name: "afe", OpType: "ArrayFeatureExtractor", Domain: "ai.onnx.ml", Input: []string{"s", "s"}, Output: []string{"y"}}
		}, want: onnx.ErrInvalidModel, words: []string{`node "afe"`, "does not import"}},
		{name: "foreign op domain", mutate: func(m *onnxpb.ModelProto) { m.Graph.Node[1].Domain = "com.example" }, want: onnx.ErrUnsupported, words: []string{"com.example"}},
		{name: "dangling input", mutate: func(m *onnxpb.ModelProto) { m.Graph.Node[1].Input = []string{"nowhere"} }, want: onnx.ErrInvalidModel,
			words: []string{`node "relu" (Relu)`, `input "nowhere" is not produced`}},
		{name: "cycle", mutate: func(m *onnxpb.ModelProto) {
			m.Graph.Node[0].Input = []string{"x", "y"} // add reads relu's output, relu reads add's
		}, want: onnx.ErrInvalidModel, words: []string{"cycle"}},
		{name: "self loop", mutate: func(m *onnxpb.ModelProto) { m.Graph.Node[1].Input = []string{"y"} }, want: onnx.ErrInvalidModel, words: []string{"cycle", `"relu"`}},
		{name: "duplicate output", mutate: func(m *onnxpb.ModelProto) { m.Graph.Node[1].Output = []string{"s"} }, want: onnx.ErrInvalidModel,
			words: []string{`value "s" is produced twice`}},
		{name: "output shadows input", mutate: func(m *onnxpb.ModelProto) { m.Graph.Node[0].Output = []string{"x"} }, want: onnx.ErrInvalidModel,
			words: []string{`value "x" is produced twice`, "graph input"}},
		{name: "duplicate initializer", mutate: func(m *onnxpb.ModelProto) {
			m.Graph.Initializer = append(m.Graph.Initializer, floatTensor("b", []int64{3}, 1, 2, 3))
		}, want: onnx.ErrInvalidModel, words: []string{`"b" is produced twice`}},
		{name: "raw data too short", mutate: func(m *onnxpb.ModelProto) { m.Graph.Initializer[0].Dims = []int64{4} }, want: onnx.ErrInvalidModel,
			words: []string{`initializer "b"`, "12 bytes, want 16"}},
		{name: "typed data too short", mutate: func(m *onnxpb.ModelProto) {
			m.Graph.Initializer[0] = &onnxpb.TensorProto{Name: "b", Dims: []int64{3}, DataType: int32(onnxpb.TensorProto_FLOAT), FloatData: []float32{1, 2}}
		}, want: onnx.ErrInvalidModel, words: []string{"float_data has 2 elements, want 3"}},
		{name: "data in the wrong field", mutate: func(m *onnxpb.ModelProto) {
			m.Graph.Initializer[0] = &onnxpb.TensorProto{Name: "b", Dims: []int64{3}, DataType: int32(onnxpb.TensorProto_FLOAT), Int64Data: []int64{1, 2, 3}}
		}, want: onnx.ErrInvalidModel, words: []string{"int64_data"}},
		{name: "no data", mutate: func(m *onnxpb.ModelProto) { m.Graph.Initializer[0].RawData = nil }, want: onnx.ErrInvalidModel, words: []string{"no data"}},
		{name: "negative dim", mutate: func(m *onnxpb.ModelProto) { m.Graph.Initializer[0].Dims = []int64{-3} }, want: onnx.ErrInvalidModel, words: []string{"-3"}},
		{name: "absurd dims", mutate: func(m *onnxpb.ModelProto) { m.Graph.Initializer[0].Dims = []int64{1 << 40, 1 << 40} }, want: onnx.ErrInvalidModel,
			words: []string{"more than"}},
		{name: "absurd input dims", mutate: func(m *onnxpb.ModelProto) {
			m.Graph.Input[0] = valueInfo("x", onnxpb.TensorProto_FLOAT, -1, 1<<40, 1<<40)
		}, want: onnx.ErrInvalidModel, words: []string{`graph input "x"`, "more than"}},
		{name: "external data", mutate: func(m *onnxpb.ModelProto) {
			b := m.Graph.Initializer[0]
			b.RawData, b.DataLocation = nil, onnxpb.TensorProto_EXTERNAL
			b.ExternalData = []*onnxpb.StringStringEntryProto{{Key: "location", Value: "../../etc/passwd"}}
		}, want: onnx.ErrUnsupported, words: []string{"external data is only read from a model repository folder"}},
		{name: "external data keys only", mutate: func(m *onnxpb.ModelProto) {
			m.Graph.Initializer[0].ExternalData = []*onnxpb.StringStringEntryProto{{Key: "location", Value: "w.bin"}}
		}, want: onnx.ErrUnsupported, words: []string{"external data is only read from a model repository folder"}},
		{name: "sparse initializer", mutate: func(m *onnxpb.ModelProto) {
			m.Graph.SparseInitializer = []*onnxpb.SparseTensorProto{{Dims: []int64{3}}}
		}, want: onnx.ErrUnsupported, words: []string{"sparse initializers"}},
		{name: "float16 initializer", mutate: func(m *onnxpb.ModelProto) {
			m.Graph.Initializer[0].DataType = int32(onnxpb.TensorProto_FLOAT16)
		}, want: onnx.ErrUnsupported, words: []string{"FLOAT16"}},
		{name: "unknown data type", mutate: func(m *onnxpb.ModelProto) { m.Graph.Initializer[0].DataType = 77 }, want: onnx.ErrInvalidModel, words: []string{"77"}},
		{name: "attribute of wrong type", mutate: func(m *onnxpb.ModelProto) {
			m.Graph.Node[1] = &onnxpb.NodeProto{Name: "sm", OpType: "Softmax", Input: []string{"s"}, Output: []string{"y"},
				Attribute: []*onnxpb.AttributeProto{{Name: "axis", Type: onnxpb.AttributeProto_FLOAT, F: 1}}}
		}, want: onnx.ErrInvalidModel, words: []string{`node "sm" (Softmax)`, `"axis" is FLOAT, want INT`}},
		{name: "unknown attribute", mutate: func(m *onnxpb.ModelProto) {
			m.Graph.Node[1].Attribute = []*onnxpb.AttributeProto{{Name: "alpha", Type: onnxpb.AttributeProto_FLOAT, F: 1}}
		}, want: onnx.ErrInvalidModel, words: []string{`unknown attribute "alpha"`}},
		{name: "untyped attribute", mutate: func(m *onnxpb.ModelProto) {
			m.Graph.Node[1] = &onnxpb.NodeProto{Name: "sm", OpType: "Softmax", Input: []string{"s"}, Output: []string{"y"},
				Attribute: []*onnxpb.AttributeProto{{Name: "axis", I: 1}}}
		}, want: onnx.ErrInvalidModel, words: []string{"no type"}},
		{name: "graph attribute", mutate: func(m *onnxpb.ModelProto) {
			m.Graph.Node[1] = &onnxpb.NodeProto{Name: "sm", OpType: "Softmax", Input: []string{"s"}, Output: []string{"y"},
				Attribute: []*onnxpb.AttributeProto{{Name: "axis", Type: onnxpb.AttributeProto_GRAPH, G: &onnxpb.GraphProto{}}}}
		}, want: onnx.ErrUnsupported, words: []string{"subgraph"}},
		{name: "too many inputs", mutate: func(m *onnxpb.ModelProto) { m.Graph.Node[1].Input = []string{"s", "s"} }, want: onnx.ErrInvalidModel,
			words: []string{"has 2 inputs, want 1"}},
		{name: "graph output not produced", mutate: func(m *onnxpb.ModelProto) {
			m.Graph.Output = append(m.Graph.Output, valueInfo("z", onnxpb.TensorProto_FLOAT, 3))
		}, want: onnx.ErrInvalidModel, words: []string{`graph output "z"`}},
		{name: "no outputs", mutate: func(m *onnxpb.ModelProto) { m.Graph.Output = nil }, want: onnx.ErrInvalidModel, words: []string{"no outputs"}},
		{name: "input without shape", mutate: func(m *onnxpb.ModelProto) {
			m.Graph.Input[0].Type.GetTensorType().Shape = nil
		}, want: onnx.ErrUnsupported, words: []string{`graph input "x"`, "no shape"}},
		{name: "sequence input", mutate: func(m *onnxpb.ModelProto) {
			m.Graph.Input[0].Type = &onnxpb.TypeProto{Value: &onnxpb.TypeProto_SequenceType{SequenceType: &onnxpb.TypeProto_Sequence{}}}
		}, want: onnx.ErrUnsupported, words: []string{"sequences"}},
		{name: "constant with two values", mutate: func(m *onnxpb.ModelProto) {
			m.Graph.Node = append(m.Graph.Node, &onnxpb.NodeProto{Name: "c", OpType: "Constant", Output: []string{"c"}, Attribute: []*onnxpb.AttributeProto{
				{Name: "value_float", Type: onnxpb.AttributeProto_FLOAT, F: 1},
				{Name: "value_int", Type: onnxpb.AttributeProto_INT, I: 1},
			}})
		}, want: onnx.ErrInvalidModel, words: []string{`node "c" (Constant)`, "exactly one"}},
		{name: "string constant", mutate: func(m *onnxpb.ModelProto) {
			m.Graph.Node = append(m.Graph.Node, &onnxpb.NodeProto{Name: "c", OpType: "Constant", Output: []string{"c"}, Attribute: []*onnxpb.AttributeProto{
				{Name: "value_string", Type: onnxpb.AttributeProto_STRING, S: []byte("hi")},
			}})
		}, want: onnx.ErrUnsupported, words: []string{"string constants"}},
		{name: "sparse constant", mutate: func(m *onnxpb.ModelProto) {
			m.Graph.Node = append(m.Graph.Node, &onnxpb.NodeProto{Name: "c", OpType: "Constant", Output: []string{"c"}, Attribute: []*onnxpb.AttributeProto{
				{Name: "sparse_value", Type: onnxpb.AttributeProto_SPARSE_TENSOR, SparseTensor: &onnxpb.SparseTensorProto{}},
			}})
		}, want: onnx.ErrUnsupported, words: []string{"sparse"}},
		{name: "bad tensor attribute", mutate: func(m *onnxpb.ModelProto) {
			bad := floatTensor("", []int64{5}, 1, 2)
			m.Graph.Node = append(m.Graph.Node, &onnxpb.NodeProto{Name: "c", OpType: "Constant", Output: []string{"c"}, Attribute: []*onnxpb.AttributeProto{
				{Name: "value", Type: onnxpb.AttributeProto_TENSOR, T: bad},
			}})
		}, want: onnx.ErrInvalidModel, words: []string{`node "c" (Constant)`, `attribute "value"`, "8 bytes, want 20"}},
		{name: "int8 out of range", mutate: func(m *onnxpb.ModelProto) {
			m.Graph.Initializer = append(m.Graph.Initializer, &onnxpb.TensorProto{Name: "q", Dims: []int64{2}, DataType: int32(onnxpb.TensorProto_INT8), Int32Data: []int32{1, 300}})
		}, want: onnx.ErrInvalidModel, words: []string{`initializer "q"`, "300", "int8"}},
		{name: "too many nodes", mutate: func(m *onnxpb.ModelProto) {
			nodes := make([]*onnxpb.NodeProto, onnx.MaxNodes+1)
			for i := range nodes {
				nodes[i] = &onnxpb.NodeProto{OpType: "Relu"}
			}
			m.Graph.Node = nodes
		}, want: onnx.ErrUnsupported, words: []string{"nodes, more than the limit"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := tt.data
			if data == nil {
				m := baseModel()
				tt.mutate(m)
				data = marshal(t, m)
			}
			g, err := onnx.Decode(data)
			if err == nil {
				t.Fatalf("Decode succeeded with %d nodes, want an error", len(g.Nodes))
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("got error %q, want one wrapping %q", err, tt.want)
			}
			for _, w := range tt.words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestDecodeNames(t *testing.T) {
	m := baseModel()
	// Unnamed nodes, one whose generated name another node already has,
	// and a duplicated name: every node must end up with its own name.
	m.Graph.Node[0].Name = ""
	m.Graph.Node[1].Name = "Add_0"
	m.Graph.Node = append(m.Graph.Node,
		&onnxpb.NodeProto{Name: "dup", OpType: "Relu", Input: []string{"y"}, Output: []string{"y2"}},
		&onnxpb.NodeProto{Name: "dup", OpType: "Relu", Input: []string{"y2"}, Output: []string{"y3"}},
		&onnxpb.NodeProto{OpType: "Relu", Input: []string{"y3"}, Output: []string{"y4"}},
	)
	g, err := onnx.Decode(marshal(t, m))
	if err != nil {
		t.Fatal(err)
	}
	seen := make(map[string]bool)
	for _, n := range g.Nodes {
		if n.Name == "" || seen[n.Name] {
			t.Errorf("node name %q is empty or not unique", n.Name)
		}
		seen[n.Name] = true
	}
	if !seen["Add_0"] || !seen["dup"] {
		t.Errorf("names %v lost a name the model gave", seen)
	}
}

func TestDecodeSortsNodes(t *testing.T) {
	m := baseModel()
	slices.Reverse(m.Graph.Node) // relu listed before the add it reads
	g, err := onnx.Decode(marshal(t, m))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range g.Nodes {
		got = append(got, n.Name)
	}
	if want := []string{"add", "relu"}; !slices.Equal(got, want) {
		t.Errorf("got order %v, want %v", got, want)
	}
}

func TestDecodeOldIRInitializerInputs(t *testing.T) {
	m := baseModel()
	m.IrVersion = 3
	m.Graph.Input = append(m.Graph.Input, valueInfo("b", onnxpb.TensorProto_FLOAT, 3))
	g, err := onnx.Decode(marshal(t, m))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(g.Inputs); got != 1 || g.Inputs[0].Name != "x" {
		t.Errorf("got inputs %v, want only x (b is an initializer)", g.Inputs)
	}
}

func TestDecodeAttributes(t *testing.T) {
	m := baseModel()
	m.Graph.Node = append(m.Graph.Node, &onnxpb.NodeProto{
		Name: "gemm", OpType: "Gemm", Input: []string{"y", "w"}, Output: []string{"z"},
		Attribute: []*onnxpb.AttributeProto{
			{Name: "alpha", Type: onnxpb.AttributeProto_FLOAT, F: 0.5},
			{Name: "transB", Type: onnxpb.AttributeProto_INT, I: 1},
		},
	})
	m.Graph.Initializer = append(m.Graph.Initializer, &onnxpb.TensorProto{
		Name: "w", Dims: []int64{2, 3}, DataType: int32(onnxpb.TensorProto_FLOAT), FloatData: []float32{1, 2, 3, 4, 5, 6},
	})
	g, err := onnx.Decode(marshal(t, m))
	if err != nil {
		t.Fatal(err)
	}
	n := g.Nodes[len(g.Nodes)-1]
	if got, want := n.Float("alpha", 1), float32(0.5); got != want {
		t.Errorf("alpha: got %v, want %v", got, want)
	}
	if got, want := n.Float("beta", 1), float32(1); got != want {
		t.Errorf("beta (default): got %v, want %v", got, want)
	}
	if got, want := n.Int("transB", 0), int64(1); got != want {
		t.Errorf("transB: got %v, want %v", got, want)
	}
	if got, want := n.Int("transA", 0), int64(0); got != want {
		t.Errorf("transA (default): got %v, want %v", got, want)
	}
	if got, want := g.Initializers["w"].Data.([]float32), []float32{1, 2, 3, 4, 5, 6}; !slices.Equal(got, want) {
		t.Errorf("w from float_data: got %v, want %v", got, want)
	}
}

func TestDecodeTensor(t *testing.T) {
	data, err := proto.Marshal(&onnxpb.TensorProto{Name: "t", Dims: []int64{2, 2}, DataType: int32(onnxpb.TensorProto_INT64), Int64Data: []int64{1, -2, 3, -4}})
	if err != nil {
		t.Fatal(err)
	}
	name, got, err := onnx.DecodeTensor(data)
	if err != nil {
		t.Fatal(err)
	}
	if name != "t" || got.DType != tensor.Int64 || !slices.Equal(got.Shape, []int64{2, 2}) || !slices.Equal(got.Data.([]int64), []int64{1, -2, 3, -4}) {
		t.Errorf("got %q %v%v %v, want t int64[2 2] [1 -2 3 -4]", name, got.DType, got.Shape, got.Data)
	}
}

// TestDecodeTestdata decodes every committed model; they are also the
// fuzzer's seeds.
func TestDecodeTestdata(t *testing.T) {
	for _, path := range testdataModels(t) {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := onnx.Decode(data); err != nil {
			t.Errorf("%s: %v", path, err)
		}
	}
}

func testdataModels(t testing.TB) []string {
	t.Helper()
	paths, err := filepath.Glob("../../testdata/ops/*/model.onnx")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no models under testdata/ops (%v)", err)
	}
	return paths
}

// FuzzDecode feeds arbitrary bytes to Decode: it must return a graph or an
// error, never panic, and a graph it returns must keep its promises.
func FuzzDecode(f *testing.F) {
	for _, path := range testdataModels(f) {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("\x80\x04"))
	f.Add([]byte("PK\x03\x04"))
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := onnx.Decode(data)
		if err != nil {
			if !errors.Is(err, onnx.ErrInvalidModel) && !errors.Is(err, onnx.ErrUnsupported) {
				t.Fatalf("error %q wraps neither ErrInvalidModel nor ErrUnsupported", err)
			}
			return
		}
		checkInvariants(t, g)
	})
}

// checkInvariants verifies what Decode promises about a Graph.
func checkInvariants(t *testing.T, g *onnx.Graph) {
	t.Helper()
	known := make(map[string]bool)
	for _, in := range g.Inputs {
		known[in.Name] = true
	}
	for name, tt := range g.Initializers {
		known[name] = true
		if err := tt.Validate(); err != nil {
			t.Fatalf("initializer %q: %v", name, err)
		}
	}
	names := make(map[string]bool)
	for _, n := range g.Nodes {
		if n.Name == "" || names[n.Name] {
			t.Fatalf("node name %q empty or repeated", n.Name)
		}
		names[n.Name] = true
		if !onnx.Supported(n.Domain, n.OpType) {
			t.Fatalf("%s is not a supported op", n.Describe())
		}
		for _, in := range n.Inputs {
			if in != "" && !known[in] {
				t.Fatalf("%s reads %q before it is produced", n.Describe(), in)
			}
		}
		for _, out := range n.Outputs {
			if out != "" {
				known[out] = true
			}
		}
	}
	for _, out := range g.Outputs {
		if !known[out.Name] {
			t.Fatalf("output %q is not produced", out.Name)
		}
	}
}
