package server_test

import (
	"context"
	"encoding/binary"
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	corvid "github.com/corvidml/corvid/client/go"
	corvidv1 "github.com/corvidml/corvid/gen/go/corvid/v1"
	onnxpb "github.com/corvidml/corvid/gen/go/onnx"
)

// TestExternalDataServed: a model whose weights are in a file beside it
// (ONNX external_data) serves them; one whose location leaves its folder is
// FAILED with the reason.
func TestExternalDataServed(t *testing.T) {
	model := func(location string) []byte {
		m := &onnxpb.ModelProto{IrVersion: 8, OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: 17}}, Graph: &onnxpb.GraphProto{
			Name: "ext",
			Node: []*onnxpb.NodeProto{{Name: "add", OpType: "Add", Input: []string{"x", "w"}, Output: []string{"y"}}},
			Initializer: []*onnxpb.TensorProto{{Name: "w", Dims: []int64{3}, DataType: 1, DataLocation: onnxpb.TensorProto_EXTERNAL,
				ExternalData: []*onnxpb.StringStringEntryProto{{Key: "location", Value: location}}}},
			Input:  []*onnxpb.ValueInfoProto{valueInfo("x", 1, 3)},
			Output: []*onnxpb.ValueInfoProto{valueInfo("y", 1, 3)},
		}}
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	w := make([]byte, 12)
	for i, v := range []float32{1, 2, 3} {
		binary.LittleEndian.PutUint32(w[4*i:], math.Float32bits(v))
	}
	in := start(t, modelsDir(t, map[string][]byte{
		"ext/1/model.onnx":    model("weights/w.bin"),
		"ext/1/weights/w.bin": w,
		"escape/1/model.onnx": model("../../ext/1/weights/w.bin"),
	}))
	resp, err := in.client.Predict(context.Background(), "ext", map[string]*corvidv1.Tensor{"x": corvid.Float32Tensor([]float32{1, 1, 1}, 3)})
	if err != nil {
		t.Fatal(err)
	}
	if y, _ := corvid.AsFloat32(resp.GetOutputs()["y"]); len(y) != 3 || y[0] != 2 || y[1] != 3 || y[2] != 4 {
		t.Errorf("y = %v, want [2 3 4]", y)
	}
	st := versionState(t, in, "escape", 1, corvidv1.ModelState_MODEL_STATE_FAILED)
	if e := st.GetError(); e == "" || !strings.Contains(e, "not a plain relative path") {
		t.Errorf("escaping location: %q", e)
	}
}
