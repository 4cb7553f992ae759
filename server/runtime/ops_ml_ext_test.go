package runtime_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/runtime"
	"github.com/corvidml/corvid/server/tensor"
)

// mlOpsDir holds the ai.onnx.ml cases written by
// testdata/mlops/make_ml_ops.py, with ONNX Runtime's outputs.
const mlOpsDir = "../../testdata/mlops"

// The ML operators' float outputs are compared relatively: tree sums and
// regression targets run to the hundreds, where float32's own spacing is
// above any fixed absolute bound worth having. Corvid adds in the same
// order and type as ONNX Runtime; what differs is transcendental functions
// and dot products, which it computes in float64 and rounds once, so
// 1e-5 relative is loose. atol covers values that cancel to near zero.
const (
	mlRelTol = 1e-5
	mlAbsTol = 1e-6
)

// TestMLConformance runs every case of testdata/mlops at batch 1, 5
// (padded to a bucket of 8) and 32, and compares with ONNX Runtime: labels
// and other integers exactly, floats within mlRelTol (or mlAbsTol).
func TestMLConformance(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join(mlOpsDir, "*", "model.onnx"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no cases under %s (%v): run .venv/bin/python testdata/mlops/make_ml_ops.py", mlOpsDir, err)
	}
	for _, model := range dirs {
		dir := filepath.Dir(model)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			t.Parallel()
			runCase(t, dir, runtime.Options{Workers: 1, MaxBatch: 32}, tolerance{rtol: mlRelTol, atol: mlAbsTol})
		})
	}
}

// Attribute constructors for graphs written by hand.
func attrInts(v ...int64) onnx.Attr     { return onnx.Attr{Type: onnx.AttrInts, Ints: v} }
func attrFloats(v ...float32) onnx.Attr { return onnx.Attr{Type: onnx.AttrFloats, Floats: v} }
func attrFloat(v float32) onnx.Attr     { return onnx.Attr{Type: onnx.AttrFloat, Float: v} }
func attrString(s string) onnx.Attr     { return onnx.Attr{Type: onnx.AttrString, String: s} }
func attrStrings(s ...string) onnx.Attr { return onnx.Attr{Type: onnx.AttrStrings, Strings: s} }
func attrDoubles(v ...float64) onnx.Attr {
	return onnx.Attr{Type: onnx.AttrTensor, Tensor: &tensor.Tensor{DType: tensor.Float64, Shape: []int64{int64(len(v))}, Data: v}}
}

// stumpAttrs is one tree of three nodes, ids 0 (x[1] <= 0.5), 1 and 2
// (leaves weighing target 0 by 10 and 20), in a regressor's attributes.
func stumpAttrs() map[string]onnx.Attr {
	return map[string]onnx.Attr{
		"n_targets":          {Type: onnx.AttrInt, Int: 1},
		"nodes_treeids":      attrInts(0, 0, 0),
		"nodes_nodeids":      attrInts(0, 1, 2),
		"nodes_featureids":   attrInts(1, 0, 0),
		"nodes_modes":        attrStrings("BRANCH_LEQ", "LEAF", "LEAF"),
		"nodes_values":       attrFloats(0.5, 0, 0),
		"nodes_truenodeids":  attrInts(1, 0, 0),
		"nodes_falsenodeids": attrInts(2, 0, 0),
		"target_ids":         attrInts(0, 0),
		"target_nodeids":     attrInts(1, 2),
		"target_treeids":     attrInts(0, 0),
		"target_weights":     attrFloats(10, 20),
	}
}

// mlGraph is one ai.onnx.ml node reading x [N 2] of dtype dt into the
// outputs named.
func mlGraph(op string, dt tensor.DType, attrs map[string]onnx.Attr, outputs ...onnx.ValueInfo) *onnx.Graph {
	names := make([]string, len(outputs))
	for i, o := range outputs {
		names[i] = o.Name
	}
	return &onnx.Graph{
		Opsets:  map[string]int64{onnx.DomainDefault: 17, onnx.DomainML: 3},
		Inputs:  []onnx.ValueInfo{{Name: "x", DType: dt, Shape: []int64{-1, 2}}},
		Outputs: outputs,
		Nodes:   []onnx.Node{{Name: "n", OpType: op, Domain: onnx.DomainML, Inputs: []string{"x"}, Outputs: names, Attrs: attrs}},
	}
}

func TestMLCompileRefuses(t *testing.T) {
	y := onnx.ValueInfo{Name: "y", DType: tensor.Float32, Shape: []int64{-1, 1}}
	with := func(attrs map[string]onnx.Attr, set map[string]onnx.Attr, drop ...string) map[string]onnx.Attr {
		out := maps.Clone(attrs)
		maps.Copy(out, set)
		for _, name := range drop {
			delete(out, name)
		}
		return out
	}
	tree := func(set map[string]onnx.Attr, drop ...string) *onnx.Graph {
		return mlGraph("TreeEnsembleRegressor", tensor.Float32, with(stumpAttrs(), set, drop...), y)
	}
	linear := map[string]onnx.Attr{
		"coefficients": attrFloats(1, 2, 3, 4, 5, 6), "intercepts": attrFloats(0, 0, 0), "classlabels_ints": attrInts(0, 1, 2),
	}
	classifier := func(set map[string]onnx.Attr, drop ...string) *onnx.Graph {
		return mlGraph("LinearClassifier", tensor.Float32, with(linear, set, drop...),
			onnx.ValueInfo{Name: "label", DType: tensor.Int64}, onnx.ValueInfo{Name: "scores", DType: tensor.Float32})
	}
	tests := []struct {
		name  string
		g     *onnx.Graph
		want  error
		words []string
	}{
		{"tree cycle", tree(map[string]onnx.Attr{
			"nodes_modes": attrStrings("BRANCH_LEQ", "BRANCH_LEQ", "LEAF"), "nodes_truenodeids": attrInts(1, 0, 0), "nodes_falsenodeids": attrInts(2, 2, 0),
		}), onnx.ErrInvalidModel, []string{`node "n" (TreeEnsembleRegressor)`, "cycle"}},
		{"tree self loop", tree(map[string]onnx.Attr{"nodes_truenodeids": attrInts(0, 0, 0)}),
			onnx.ErrInvalidModel, []string{"cycle"}},
		{"missing child", tree(map[string]onnx.Attr{"nodes_falsenodeids": attrInts(7, 0, 0)}),
			onnx.ErrInvalidModel, []string{"nodes_falsenodeids[0] is 7, which is not a node of tree 0"}},
		{"child in another tree", tree(map[string]onnx.Attr{"nodes_treeids": attrInts(0, 0, 1)}),
			onnx.ErrInvalidModel, []string{"nodes_falsenodeids[0] is 2, which is not a node of tree 0"}},
		{"duplicate node", tree(map[string]onnx.Attr{"nodes_nodeids": attrInts(0, 1, 1)}),
			onnx.ErrInvalidModel, []string{"node 1 of tree 0 is defined twice"}},
		{"unknown mode", tree(map[string]onnx.Attr{"nodes_modes": attrStrings("BRANCH_MEMBER", "LEAF", "LEAF")}),
			onnx.ErrInvalidModel, []string{`nodes_modes[0] is "BRANCH_MEMBER"`, "BRANCH_LEQ"}},
		{"attribute lengths", tree(map[string]onnx.Attr{"nodes_values": attrFloats(0.5, 0)}),
			onnx.ErrInvalidModel, []string{"nodes_values has 2 values, want 3"}},
		{"no nodes", tree(nil, "nodes_nodeids"), onnx.ErrInvalidModel, []string{"no tree nodes"}},
		{"leaf without weight", tree(map[string]onnx.Attr{
			"target_ids": attrInts(0), "target_nodeids": attrInts(1), "target_treeids": attrInts(0), "target_weights": attrFloats(1),
		}), onnx.ErrInvalidModel, []string{"leaf 2 of tree 0 has no weight"}},
		{"weight for no node", tree(map[string]onnx.Attr{"target_nodeids": attrInts(1, 9)}),
			onnx.ErrInvalidModel, []string{"weight 1 is for node 9 of tree 0, which does not exist"}},
		{"target out of range", tree(map[string]onnx.Attr{"target_ids": attrInts(0, 1)}),
			onnx.ErrInvalidModel, []string{"target_ids[1] is 1, want 0 to 0"}},
		{"feature beyond the input", tree(map[string]onnx.Attr{"nodes_featureids": attrInts(2, 0, 0)}),
			onnx.ErrInvalidModel, []string{"reads feature 2, but input X [1 2] has 2 features"}},
		{"negative feature", tree(map[string]onnx.Attr{"nodes_featureids": attrInts(-1, 0, 0)}),
			onnx.ErrInvalidModel, []string{"nodes_featureids[0] is -1"}},
		{"values twice", tree(map[string]onnx.Attr{"nodes_values_as_tensor": attrDoubles(0.5, 0, 0)}),
			onnx.ErrInvalidModel, []string{"both nodes_values and nodes_values_as_tensor are set"}},
		{"aggregate function", tree(map[string]onnx.Attr{"aggregate_function": attrString("MEDIAN")}),
			onnx.ErrInvalidModel, []string{`aggregate_function "MEDIAN" is not one of SUM, AVERAGE, MIN, MAX`}},
		{"post transform", tree(map[string]onnx.Attr{"post_transform": attrString("TANH")}),
			onnx.ErrInvalidModel, []string{`post_transform "TANH" is not one of NONE, LOGISTIC, SOFTMAX, SOFTMAX_ZERO, PROBIT`}},
		{"base values", tree(map[string]onnx.Attr{"base_values": attrFloats(1, 2)}),
			onnx.ErrInvalidModel, []string{"2 base_values, want none or 1"}},
		{"one class label", mlGraph("TreeEnsembleClassifier", tensor.Float32, with(stumpAttrs(), map[string]onnx.Attr{
			"classlabels_int64s": attrInts(4), "class_ids": attrInts(0, 0), "class_nodeids": attrInts(1, 2),
			"class_treeids": attrInts(0, 0), "class_weights": attrFloats(1, 1),
		}, "target_ids", "target_nodeids", "target_treeids", "target_weights", "n_targets"),
			onnx.ValueInfo{Name: "label", DType: tensor.Int64}, onnx.ValueInfo{Name: "scores", DType: tensor.Float32}),
			onnx.ErrInvalidModel, []string{"1 class labels, want at least 2"}},
		{"coefficients", classifier(map[string]onnx.Attr{"coefficients": attrFloats(1, 2, 3)}),
			onnx.ErrInvalidModel, []string{`node "n" (LinearClassifier)`, "3 coefficients for 2 features"}},
		{"labels", classifier(map[string]onnx.Attr{"classlabels_ints": attrInts(0, 1)}),
			onnx.ErrInvalidModel, []string{"2 class labels for 3 rows of coefficients"}},
		{"no labels", classifier(nil, "classlabels_ints"), onnx.ErrInvalidModel, []string{"classlabels_ints is required"}},
		{"intercepts", classifier(map[string]onnx.Attr{"intercepts": attrFloats(1)}),
			onnx.ErrInvalidModel, []string{"1 intercepts, want 3"}},
		{"binary probit", classifier(map[string]onnx.Attr{
			"coefficients": attrFloats(1, 2), "intercepts": attrFloats(0), "classlabels_ints": attrInts(0, 1), "post_transform": attrString("PROBIT"),
		}), onnx.ErrUnsupported, []string{"PROBIT on a binary classifier"}},
		{"regressor targets", mlGraph("LinearRegressor", tensor.Float32, map[string]onnx.Attr{
			"coefficients": attrFloats(1, 2, 3), "targets": {Type: onnx.AttrInt, Int: 2},
		}, y), onnx.ErrInvalidModel, []string{"3 coefficients, want 4 (2 outputs × 2 features"}},
		{"scaler offset", mlGraph("Scaler", tensor.Float32, map[string]onnx.Attr{"offset": attrFloats(1, 2, 3)}, y),
			onnx.ErrInvalidModel, []string{"offset has 3 values, want 1 or 2"}},
		{"normalizer norm", mlGraph("Normalizer", tensor.Float32, map[string]onnx.Attr{"norm": attrString("L3")}, y),
			onnx.ErrInvalidModel, []string{`norm "L3" is not one of MAX, L1, L2`}},
		{"input dtype", mlGraph("Binarizer", tensor.Uint8, nil, onnx.ValueInfo{Name: "y", DType: tensor.Uint8}),
			onnx.ErrUnsupported, []string{`node "n" (Binarizer)`, "dtype uint8"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := runtime.Compile(tt.g, runtime.Options{Workers: 1})
			if err == nil {
				m.Close()
				t.Fatal("Compile succeeded, want an error")
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("got %q, want an error wrapping %q", err, tt.want)
			}
			for _, w := range tt.words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// TestMLSemantics checks what ONNX Runtime cannot be the reference for:
// input types it does not register for an operator, attribute forms it
// refuses, and the cases where Corvid departs from it.
func TestMLSemantics(t *testing.T) {
	label := onnx.ValueInfo{Name: "label", DType: tensor.Int64}
	scores := onnx.ValueInfo{Name: "scores", DType: tensor.Float32}
	y32 := onnx.ValueInfo{Name: "y", DType: tensor.Float32}
	classAttrs := func(labels []int64, ids []int64) map[string]onnx.Attr {
		a := stumpAttrs()
		for _, k := range []string{"n_targets", "target_ids", "target_nodeids", "target_treeids", "target_weights"} {
			delete(a, k)
		}
		a["classlabels_int64s"] = attrInts(labels...)
		a["class_ids"], a["class_treeids"] = attrInts(ids...), attrInts(0, 0)
		a["class_nodeids"], a["class_weights"] = attrInts(1, 2), attrFloats(0.75, 0.25)
		return a
	}
	tests := []struct {
		name  string
		g     *onnx.Graph
		x     *tensor.Tensor
		wants map[string]*tensor.Tensor
	}{
		{
			name:  "tree regressor on int64",
			g:     mlGraph("TreeEnsembleRegressor", tensor.Int64, stumpAttrs(), y32),
			x:     int64s([]int64{2, 2}, 5, 0, 5, 1),
			wants: map[string]*tensor.Tensor{"y": fp32([]int64{2, 1}, 10, 20)},
		},
		{
			// A double threshold compares a float input in double: 0.1f
			// is above 0.1, where rounding the threshold to float would
			// make them equal.
			name: "double threshold, float input",
			g: mlGraph("TreeEnsembleRegressor", tensor.Float32, func() map[string]onnx.Attr {
				a := stumpAttrs()
				delete(a, "nodes_values")
				a["nodes_values_as_tensor"] = attrDoubles(0.1, 0, 0)
				return a
			}(), y32),
			x:     fp32([]int64{2, 2}, 0, 0.1, 0, 0.0999),
			wants: map[string]*tensor.Tensor{"y": fp32([]int64{2, 1}, 20, 10)},
		},
		{
			// Two classes with weights for both, no base values: the
			// positive score is class 1's if it has one, else class 0's,
			// and a lone class 0 score s becomes [-s s]. ONNX Runtime
			// labels this case with the literal 1 and 0 (here [1 1]);
			// Corvid with the model's labels.
			name:  "two classes, both weighted",
			g:     mlGraph("TreeEnsembleClassifier", tensor.Float32, classAttrs([]int64{3, 7}, []int64{0, 1}), label, scores),
			x:     fp32([]int64{2, 2}, 0, 0, 0, 1),
			wants: map[string]*tensor.Tensor{"label": int64s([]int64{2}, 7, 7), "scores": fp32([]int64{2, 2}, -0.75, 0.75, 0, 0.25)},
		},
		{
			name:  "tree classifier, label only",
			g:     mlGraph("TreeEnsembleClassifier", tensor.Float32, classAttrs([]int64{3, 7}, []int64{1, 1}), label),
			x:     fp32([]int64{2, 2}, 0, 0, 0, 1),
			wants: map[string]*tensor.Tensor{"label": int64s([]int64{2}, 7, 3)},
		},
		{
			name: "linear classifier, label only",
			g: mlGraph("LinearClassifier", tensor.Float32, map[string]onnx.Attr{
				"coefficients": attrFloats(1, 0, 0, 1), "classlabels_ints": attrInts(5, 6),
			}, label),
			x:     fp32([]int64{2, 2}, 1, 2, 4, 3),
			wants: map[string]*tensor.Tensor{"label": int64s([]int64{2}, 6, 5)},
		},
		{
			name: "linear regressor on float64",
			g: mlGraph("LinearRegressor", tensor.Float64, map[string]onnx.Attr{
				"coefficients": attrFloats(1, 2), "intercepts": attrFloats(0.5),
			}, y32),
			x:     &tensor.Tensor{DType: tensor.Float64, Shape: []int64{1, 2}, Data: []float64{1, 2}},
			wants: map[string]*tensor.Tensor{"y": fp32([]int64{1, 1}, 5.5)},
		},
		{
			name:  "scaler with scale alone",
			g:     mlGraph("Scaler", tensor.Int64, map[string]onnx.Attr{"scale": attrFloats(2, 0.5)}, y32),
			x:     int64s([]int64{1, 2}, 3, 3),
			wants: map[string]*tensor.Tensor{"y": fp32([]int64{1, 2}, 6, 1.5)},
		},
		{
			name:  "binarizer on int64",
			g:     mlGraph("Binarizer", tensor.Int64, nil, onnx.ValueInfo{Name: "y", DType: tensor.Int64}),
			x:     int64s([]int64{1, 2}, -1, 3),
			wants: map[string]*tensor.Tensor{"y": int64s([]int64{1, 2}, 0, 1)},
		},
		{
			// NaN is not above any threshold (ONNX Runtime fails the run).
			name: "binarizer on NaN",
			g:    mlGraph("Binarizer", tensor.Float64, map[string]onnx.Attr{"threshold": attrFloat(-1)}, onnx.ValueInfo{Name: "y", DType: tensor.Float64}),
			x:    &tensor.Tensor{DType: tensor.Float64, Shape: []int64{1, 2}, Data: []float64{math.NaN(), 0}},
			wants: map[string]*tensor.Tensor{
				"y": {DType: tensor.Float64, Shape: []int64{1, 2}, Data: []float64{0, 1}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := runtime.Compile(tt.g, runtime.Options{Workers: 1, MaxBatch: 8})
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			defer m.Close()
			got, err := m.Run(context.Background(), map[string]*tensor.Tensor{"x": tt.x}, nil)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			for name, want := range tt.wants {
				if err := compareTensorsWithin(got[name], want, tolerance{rtol: mlRelTol, atol: mlAbsTol}); err != nil {
					t.Errorf("output %q: %v", name, err)
				}
			}
		})
	}
}

// zooDir is the model zoo's repository and inputs, written by
// testdata/zoo/make_sklearn.py.
const zooDir = "../../testdata/zoo"

// BenchmarkMLZoo runs the scikit-learn models of the zoo in process on one
// worker, at batch 1 and 32: the figure to set beside ONNX Runtime's
// InferenceSession.run (tests/python/test_zoo.py times both over gRPC and
// in process).
func BenchmarkMLZoo(b *testing.B) {
	for _, name := range []string{"sk-logreg", "sk-mlp-pipeline", "sk-forest", "sk-gbr", "sk-linearsvc"} {
		data, err := os.ReadFile(filepath.Join(zooDir, "models", name, "1", "model.onnx"))
		if err != nil {
			b.Fatal(err)
		}
		g, err := onnx.Decode(data)
		if err != nil {
			b.Fatal(err)
		}
		m, err := runtime.Compile(g, runtime.Options{Workers: 1, MaxBatch: 32})
		if err != nil {
			b.Fatal(err)
		}
		defer m.Close()
		x := readNpyFloat32(b, filepath.Join(zooDir, "inputs", name+".npy"))
		features := x.Shape[1]
		for _, batch := range []int64{1, 32} {
			in := map[string]*tensor.Tensor{"input": {
				DType: tensor.Float32, Shape: []int64{batch, features}, Data: x.Data.([]float32)[:batch*features],
			}}
			b.Run(fmt.Sprintf("%s/batch=%d", name, batch), func(b *testing.B) {
				for b.Loop() {
					if _, err := m.Run(context.Background(), in, nil); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// readNpyFloat32 reads a 2-D little-endian float32 .npy file (format 1.0,
// C order), as numpy.save writes one.
func readNpyFloat32(t testing.TB, path string) *tensor.Tensor {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) < 10 || string(data[:8]) != "\x93NUMPY\x01\x00" {
		t.Fatalf("%s: not a version 1.0 .npy file", path)
	}
	end := 10 + int(binary.LittleEndian.Uint16(data[8:10]))
	header := string(data[10:end])
	var rows, cols int64
	if !strings.Contains(header, "'descr': '<f4'") || !strings.Contains(header, "'fortran_order': False") {
		t.Fatalf("%s: header %q, want C-order <f4", path, header)
	}
	if _, err := fmt.Sscanf(header[strings.Index(header, "'shape': (")+len("'shape': ("):], "%d, %d)", &rows, &cols); err != nil {
		t.Fatalf("%s: shape in header %q: %v", path, header, err)
	}
	vals := make([]float32, rows*cols)
	if len(data)-end != 4*len(vals) {
		t.Fatalf("%s: %d data bytes, want %d", path, len(data)-end, 4*len(vals))
	}
	for i := range vals {
		vals[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[end+4*i:]))
	}
	return &tensor.Tensor{DType: tensor.Float32, Shape: []int64{rows, cols}, Data: vals}
}
