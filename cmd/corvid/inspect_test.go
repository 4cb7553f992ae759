package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	onnxpb "github.com/corvidml/corvid/gen/go/onnx"
)

// modelWith writes a one-input graph whose nodes have the given op types.
func modelWith(t *testing.T, ops ...string) string {
	t.Helper()
	g := &onnxpb.GraphProto{
		Name:  "g",
		Input: []*onnxpb.ValueInfoProto{tensorInfo("x")},
	}
	prev := "x"
	for i, op := range ops {
		out := "y" + string(rune('0'+i))
		g.Node = append(g.Node, &onnxpb.NodeProto{Name: "n" + out, OpType: op, Input: []string{prev}, Output: []string{out}})
		prev = out
	}
	g.Output = []*onnxpb.ValueInfoProto{tensorInfo(prev)}
	b, err := proto.Marshal(&onnxpb.ModelProto{IrVersion: 8, ProducerName: "test", Graph: g,
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: 17}}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "model.onnx")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func tensorInfo(name string) *onnxpb.ValueInfoProto {
	return &onnxpb.ValueInfoProto{Name: name, Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
		TensorType: &onnxpb.TypeProto_Tensor{ElemType: 1, Shape: &onnxpb.TensorShapeProto{Dim: []*onnxpb.TensorShapeProto_Dimension{
			{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "N"}},
			{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: 4}},
		}}},
	}}}
}

func TestInspect(t *testing.T) {
	pickle := filepath.Join(t.TempDir(), "model.onnx")
	if err := os.WriteFile(pickle, []byte("\x80\x04\x95 not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		path    string
		wantErr string
		want    []string
	}{
		{"default model", filepath.Join("..", "..", "models", "digits", "1", "model.onnx"), "",
			[]string{"skl2onnx", "ai.onnx 16, ai.onnx.ml 1", "input  fp32 [? 64]", "probabilities  fp32 [? 10]",
				"ai.onnx.ml.ArrayFeatureExtractor  1", "parameters  4821", "Corvid can serve this model"}},
		{"unsupported operators", modelWith(t, "Relu", "NoSuchOp", "AlsoMissing", "NoSuchOp"), "cannot serve",
			[]string{"x  fp32 [N 4]", "NoSuchOp     2  unsupported", "unsupported operators: AlsoMissing, NoSuchOp."}},
		{"pickle", pickle, "pickle", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := runInspect([]string{tt.path}, &out, &out)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("runInspect = %v, want error containing %q", err, tt.wantErr)
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output does not contain %q:\n%s", w, out.String())
				}
			}
		})
	}
}
