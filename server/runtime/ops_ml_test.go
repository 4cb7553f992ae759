package runtime

import (
	"math"
	goruntime "runtime"
	"testing"
	"time"
	"weak"

	"github.com/corvidml/corvid/server/onnx"
)

// TestTreesSharedBetweenGraphs checks that the graphs built from one tree
// node share its compiled trees, and that the cache lets go of them with
// the node.
func TestTreesSharedBetweenGraphs(t *testing.T) {
	ints := func(v ...int64) onnx.Attr { return onnx.Attr{Type: onnx.AttrInts, Ints: v} }
	n := &onnx.Node{Name: "trees", OpType: "TreeEnsembleRegressor", Domain: onnx.DomainML, Attrs: map[string]onnx.Attr{
		"nodes_treeids": ints(0), "nodes_nodeids": ints(0), "nodes_featureids": ints(0),
		"nodes_modes":       {Type: onnx.AttrStrings, Strings: []string{"LEAF"}},
		"nodes_values":      {Type: onnx.AttrFloats, Floats: []float32{0}},
		"nodes_truenodeids": ints(0), "nodes_falsenodeids": ints(0),
		"target_ids": ints(0), "target_nodeids": ints(0), "target_treeids": ints(0),
		"target_weights": {Type: onnx.AttrFloats, Floats: []float32{1}},
	}}
	b := &builder{node: n, faults: &faults{}}
	first, err := compileTrees[float32](b, n, 1, targetWeightAttrs)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := compileTrees[float32](b, n, 1, targetWeightAttrs); again != first {
		t.Error("a second graph compiled the trees again")
	}
	if wide, _ := compileTrees[float64](b, n, 1, targetWeightAttrs); any(wide) == any(first) {
		t.Error("the float64 trees are the float32 ones")
	}

	keys := []ensembleKey{{weak.Make(n), false}, {weak.Make(n), true}}
	n, b = nil, nil
	for deadline := time.Now().Add(5 * time.Second); ; {
		goruntime.GC()
		left := 0
		for _, k := range keys {
			if _, ok := ensembles.Load(k); ok {
				left++
			}
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d cache entries outlive their node", left)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestProbit checks the float32 Winitzki probit against the exact normal
// quantile: within the approximation's error away from p = 0.5, and the
// symmetric, exact values where they are known.
func TestProbit(t *testing.T) {
	for _, tt := range []struct {
		p    float32
		want float64 // the standard normal quantile
	}{
		{0.5, 0}, {0.8413447, 1}, {0.1586553, -1}, {0.9772499, 2}, {0.0013499, -3},
	} {
		got := float64(probit(tt.p))
		if math.Abs(got-tt.want) > 5e-3*math.Max(1, math.Abs(tt.want)) {
			t.Errorf("probit(%v) = %v, want %v", tt.p, got, tt.want)
		}
	}
	if got := probit(0.25); got != -probit(0.75) {
		t.Errorf("probit(0.25) = %v, want -probit(0.75) = %v", got, -probit(0.75))
	}
	if got := probit(1.5); !math.IsNaN(float64(got)) {
		t.Errorf("probit(1.5) = %v, want NaN", got)
	}
}
