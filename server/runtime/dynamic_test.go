package runtime

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/tensor"
)

// seqModel takes x [N S 4]: y = softmax over the sequence axis, z = x W
// with W [4 3] — a stand-in for attention scores and a projection, whose
// results change if a sequence is padded.
// seqWeights are seqModel's projection weights [4 3].
func seqWeights() []float32 {
	w := make([]float32, 12)
	for i := range w {
		w[i] = float32(i%5) - 2
	}
	return w
}

func seqModel(t *testing.T, opts Options) *Model {
	t.Helper()
	w := seqWeights()
	g := &onnx.Graph{
		Opsets: map[string]int64{onnx.DomainDefault: 17},
		Inputs: []onnx.ValueInfo{{Name: "x", DType: tensor.Float32, Shape: []int64{-1, -1, 4}}},
		Outputs: []onnx.ValueInfo{
			{Name: "y", DType: tensor.Float32, Shape: []int64{-1, -1, 4}},
			{Name: "z", DType: tensor.Float32, Shape: []int64{-1, -1, 3}},
		},
		Initializers: map[string]*tensor.Tensor{"w": {DType: tensor.Float32, Shape: []int64{4, 3}, Data: w}},
		Nodes: []onnx.Node{
			{Name: "softmax", OpType: "Softmax", Inputs: []string{"x"}, Outputs: []string{"y"}, Attrs: map[string]onnx.Attr{"axis": {Type: onnx.AttrInt, Int: 1}}},
			{Name: "proj", OpType: "MatMul", Inputs: []string{"x", "w"}, Outputs: []string{"z"}},
		},
	}
	m, err := Compile(g, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// wantSeq computes seqModel's outputs directly.
func wantSeq(x []float32, n, s int, w []float32) (y, z []float32) {
	y, z = make([]float32, n*s*4), make([]float32, n*s*3)
	for b := range n {
		for f := range 4 {
			m := math.Inf(-1)
			for i := range s {
				m = math.Max(m, float64(x[(b*s+i)*4+f]))
			}
			var sum float64
			for i := range s {
				sum += math.Exp(float64(x[(b*s+i)*4+f]) - m)
			}
			for i := range s {
				y[(b*s+i)*4+f] = float32(math.Exp(float64(x[(b*s+i)*4+f])-m) / sum)
			}
		}
		for i := range s {
			for j := range 3 {
				var acc float32
				for f := range 4 {
					acc += x[(b*s+i)*4+f] * w[f*3+j]
				}
				z[(b*s+i)*3+j] = acc
			}
		}
	}
	return y, z
}

func TestDynamicSequence(t *testing.T) {
	m := seqModel(t, Options{Workers: 1, MaxVariants: 3, MaxDim: 64})
	w := seqWeights()
	for _, o := range m.Outputs() {
		if o.Shape[0] != -1 || o.Shape[1] != -1 {
			t.Errorf("output %s shape %v, want batch and sequence dynamic", o.Name, o.Shape)
		}
	}
	ctx := context.Background()
	// Sizes in an order that makes the worker evict and rebuild graphs.
	for _, c := range []struct{ n, s int }{{1, 1}, {1, 5}, {3, 7}, {2, 64}, {1, 5}, {5, 13}, {1, 1}, {3, 7}} {
		x := make([]float32, c.n*c.s*4)
		for i := range x {
			x[i] = float32(math.Sin(float64(i)*0.37)) * 3
		}
		got, err := m.Run(ctx, map[string]*tensor.Tensor{"x": {DType: tensor.Float32, Shape: []int64{int64(c.n), int64(c.s), 4}, Data: x}}, nil)
		if err != nil {
			t.Fatalf("batch %d seq %d: %v", c.n, c.s, err)
		}
		wantY, wantZ := wantSeq(x, c.n, c.s, w)
		for name, want := range map[string][]float32{"y": wantY, "z": wantZ} {
			g := got[name]
			if g.Shape[0] != int64(c.n) || g.Shape[1] != int64(c.s) {
				t.Fatalf("batch %d seq %d: %s has shape %v", c.n, c.s, name, g.Shape)
			}
			for i, v := range g.Data.([]float32) {
				if math.Abs(float64(v-want[i])) > 1e-5 {
					t.Fatalf("batch %d seq %d: %s[%d] = %v, want %v", c.n, c.s, name, i, v, want[i])
				}
			}
		}
		w := <-m.workers
		kept := len(w.instances)
		m.workers <- w
		if kept > 3 {
			t.Fatalf("worker keeps %d graphs, want at most MaxVariants = 3", kept)
		}
	}
}

func TestDynamicSequenceLimits(t *testing.T) {
	m := seqModel(t, Options{Workers: 1, MaxDim: 32})
	x := func(s int) map[string]*tensor.Tensor {
		return map[string]*tensor.Tensor{"x": {DType: tensor.Float32, Shape: []int64{1, int64(s), 4}, Data: make([]float32, s*4)}}
	}
	_, err := m.Run(context.Background(), x(33), nil)
	if !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), "from 1 to 32") {
		t.Errorf("sequence 33 with MaxDim 32: %v, want ErrInvalidInput naming the bound", err)
	}
	if _, err := m.Run(context.Background(), x(32), nil); err != nil {
		t.Errorf("sequence 32 with MaxDim 32: %v", err)
	}
}

// TestDynamicSizeThatDoesNotFit: sizes the graph cannot take are the
// request's fault, not the server's.
func TestDynamicSizeThatDoesNotFit(t *testing.T) {
	g := &onnx.Graph{
		Opsets:       map[string]int64{onnx.DomainDefault: 17},
		Inputs:       []onnx.ValueInfo{{Name: "x", DType: tensor.Float32, Shape: []int64{1, -1}}},
		Outputs:      []onnx.ValueInfo{{Name: "y", DType: tensor.Float32, Shape: []int64{-1, 8}}},
		Initializers: map[string]*tensor.Tensor{"s": {DType: tensor.Int64, Shape: []int64{2}, Data: []int64{-1, 8}}},
		Nodes:        []onnx.Node{{Name: "r", OpType: "Reshape", Inputs: []string{"x", "s"}, Outputs: []string{"y"}}},
	}
	m, err := Compile(g, Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	_, err = m.Run(context.Background(), map[string]*tensor.Tensor{"x": {DType: tensor.Float32, Shape: []int64{1, 5}, Data: make([]float32, 5)}}, nil)
	if !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), "cannot run at these input sizes") {
		t.Errorf("reshape of 5 elements to [-1 8]: %v, want ErrInvalidInput", err)
	}
	got, err := m.Run(context.Background(), map[string]*tensor.Tensor{"x": {DType: tensor.Float32, Shape: []int64{1, 24}, Data: make([]float32, 24)}}, nil)
	if err != nil || got["y"].Shape[0] != 3 {
		t.Errorf("reshape of 24 elements: %v %v, want [3 8]", got, err)
	}
}

// TestValueInputs: a graph input that decides a shape (here Reshape's
// shape) makes the model build one graph per value, checked on first use.
func TestValueInputs(t *testing.T) {
	g := &onnx.Graph{
		Opsets: map[string]int64{onnx.DomainDefault: 17},
		Inputs: []onnx.ValueInfo{
			{Name: "x", DType: tensor.Float32, Shape: []int64{-1, 6}},
			{Name: "s", DType: tensor.Int64, Shape: []int64{3}},
		},
		Outputs: []onnx.ValueInfo{{Name: "y", DType: tensor.Float32}},
		Nodes:   []onnx.Node{{Name: "r", OpType: "Reshape", Inputs: []string{"x", "s"}, Outputs: []string{"y"}}},
	}
	m, err := Compile(g, Options{Workers: 1, MaxVariants: 2})
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	defer m.Close()
	if !m.valueIn["s"] {
		t.Fatalf("value inputs %v, want s", m.valueIn)
	}
	ctx := context.Background()
	x := []float32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	for _, tc := range []struct {
		n     int
		shape []int64
	}{{1, []int64{2, 3, 1}}, {2, []int64{3, 2, 2}}, {2, []int64{-1, 4, 1}}, {1, []int64{2, 3, 1}}, {2, []int64{0, 3, 2}}} {
		got, err := m.Run(ctx, map[string]*tensor.Tensor{
			"x": {DType: tensor.Float32, Shape: []int64{int64(tc.n), 6}, Data: x[:6*tc.n]},
			"s": {DType: tensor.Int64, Shape: []int64{3}, Data: tc.shape},
		}, nil)
		if err != nil {
			t.Fatalf("batch %d shape %v: %v", tc.n, tc.shape, err)
		}
		y := got["y"]
		n, _ := tensor.NumElements(y.Shape)
		if n != 6*tc.n || y.Data.([]float32)[n-1] != float32(6*tc.n-1) {
			t.Errorf("batch %d shape %v: got %v %v", tc.n, tc.shape, y.Shape, y.Data)
		}
	}
	// A shape the data cannot take is the request's fault.
	_, err = m.Run(ctx, map[string]*tensor.Tensor{
		"x": {DType: tensor.Float32, Shape: []int64{1, 6}, Data: x[:6]},
		"s": {DType: tensor.Int64, Shape: []int64{3}, Data: []int64{5, 1, 1}},
	}, nil)
	if !errors.Is(err, ErrInvalidInput) {
		t.Errorf("reshape 6 elements to [5 1 1]: %v, want ErrInvalidInput", err)
	}
	w := <-m.workers
	kept := len(w.instances)
	m.workers <- w
	if kept > 2 {
		t.Errorf("worker keeps %d graphs, want at most MaxVariants = 2", kept)
	}
}
