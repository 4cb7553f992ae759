package onnx_test

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	onnxpb "github.com/corvidml/corvid/gen/go/onnx"
	"github.com/corvidml/corvid/server/onnx"
)

// classifierModel is a LinearClassifier as skl2onnx writes one (with the
// default domain imported twice, as skl2onnx 1.20 does), followed by the
// given nodes, whose last output is the graph's second output.
func classifierModel(labelAttr *onnxpb.AttributeProto, after ...*onnxpb.NodeProto) *onnxpb.ModelProto {
	scores := "scores"
	if len(after) > 0 {
		outs := after[len(after)-1].GetOutput()
		scores = outs[len(outs)-1]
	}
	return &onnxpb.ModelProto{
		IrVersion: 8,
		OpsetImport: []*onnxpb.OperatorSetIdProto{
			{Domain: "ai.onnx.ml", Version: 1}, {Domain: "", Version: 17}, {Domain: "", Version: 17},
		},
		Graph: &onnxpb.GraphProto{
			Name: "g",
			Node: append([]*onnxpb.NodeProto{{
				Name: "linear", OpType: "LinearClassifier", Domain: "ai.onnx.ml",
				Input: []string{"x"}, Output: []string{"label", "scores"},
				Attribute: []*onnxpb.AttributeProto{
					{Name: "coefficients", Type: onnxpb.AttributeProto_FLOATS, Floats: []float32{1, 2, 3, 4, 5, 6}},
					{Name: "intercepts", Type: onnxpb.AttributeProto_FLOATS, Floats: []float32{0, 0}},
					labelAttr,
				},
			}}, after...),
			Input:  []*onnxpb.ValueInfoProto{valueInfo("x", onnxpb.TensorProto_FLOAT, -1, 3)},
			Output: []*onnxpb.ValueInfoProto{valueInfo("label", onnxpb.TensorProto_INT64, -1), valueInfo(scores, onnxpb.TensorProto_FLOAT, -1, 2)},
		},
	}
}

var intLabels = &onnxpb.AttributeProto{Name: "classlabels_ints", Type: onnxpb.AttributeProto_INTS, Ints: []int64{0, 1}}

func TestDecodeMLClassifier(t *testing.T) {
	g, err := onnx.Decode(marshal(t, classifierModel(intLabels)))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if got, want := g.Opsets, map[string]int64{onnx.DomainDefault: 17, onnx.DomainML: 1}; !maps.Equal(got, want) {
		t.Errorf("opsets: got %v, want %v", got, want)
	}
}

// TestDecodeMLOnly accepts a model that imports ai.onnx.ml alone, as
// ONNX's own node tests of the ML operators do.
func TestDecodeMLOnly(t *testing.T) {
	m := classifierModel(intLabels)
	m.OpsetImport = m.OpsetImport[:1]
	g, err := onnx.Decode(marshal(t, m))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if got := g.Opset(); got != 0 {
		t.Errorf("default opset: got %d, want 0 (not imported)", got)
	}
}

func TestDecodeRefusesMLFeatures(t *testing.T) {
	zipMap := &onnxpb.NodeProto{
		Name: "zipmap", OpType: "ZipMap", Domain: "ai.onnx.ml", Input: []string{"scores"}, Output: []string{"output_probability"},
		Attribute: []*onnxpb.AttributeProto{{Name: "classlabels_int64s", Type: onnxpb.AttributeProto_INTS, Ints: []int64{0, 1}}},
	}
	stringLabels := &onnxpb.AttributeProto{Name: "classlabels_strings", Type: onnxpb.AttributeProto_STRINGS, Strings: [][]byte{[]byte("cat"), []byte("dog")}}
	tests := []struct {
		name  string
		m     *onnxpb.ModelProto
		words []string
	}{
		{"zipmap", classifierModel(intLabels, zipMap),
			[]string{`node "zipmap" (ZipMap)`, "sequence of maps", "'zipmap': False", "[N, classes]"}},
		{"string labels", classifierModel(stringLabels),
			[]string{`node "linear" (LinearClassifier)`, "classlabels_strings", "integer labels", "LabelEncoder"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := onnx.Decode(marshal(t, tt.m))
			if !errors.Is(err, onnx.ErrUnsupported) {
				t.Fatalf("got %v, want an error wrapping %v", err, onnx.ErrUnsupported)
			}
			for _, w := range tt.words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestSupportedMLOps(t *testing.T) {
	ops := onnx.SupportedOps()
	for _, op := range []string{"LinearClassifier", "LinearRegressor", "TreeEnsembleClassifier", "TreeEnsembleRegressor",
		"Scaler", "Normalizer", "Binarizer", "ArrayFeatureExtractor"} {
		if !slices.Contains(ops, "ai.onnx.ml."+op) || !onnx.Supported(onnx.DomainML, op) {
			t.Errorf("ai.onnx.ml.%s is not supported", op)
		}
	}
	// ZipMap is recognised, to say what to do instead, but not run.
	if onnx.Supported(onnx.DomainML, "ZipMap") || slices.Contains(ops, "ai.onnx.ml.ZipMap") {
		t.Error("ZipMap is listed as supported")
	}
}
