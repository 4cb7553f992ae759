package batching_test

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/corvidml/corvid/server/batching"
	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/runtime"
	"github.com/corvidml/corvid/server/tensor"
)

var _ batching.Model = (*runtime.Model)(nil)

// gemmGraph is y = Relu(x W + b) and cls = ArgMax(x W + b) over x fp32[N 4].
func gemmGraph(w, b []float32) *onnx.Graph {
	return &onnx.Graph{
		Opsets: map[string]int64{onnx.DomainDefault: 17},
		Inputs: []onnx.ValueInfo{{Name: "x", DType: tensor.Float32, Shape: []int64{-1, 4}}},
		Outputs: []onnx.ValueInfo{
			{Name: "y", DType: tensor.Float32, Shape: []int64{-1, 3}},
			{Name: "cls", DType: tensor.Int64, Shape: []int64{-1}},
		},
		Initializers: map[string]*tensor.Tensor{
			"w": {DType: tensor.Float32, Shape: []int64{4, 3}, Data: w},
			"b": {DType: tensor.Float32, Shape: []int64{3}, Data: b},
		},
		Nodes: []onnx.Node{
			{Name: "gemm", OpType: "Gemm", Inputs: []string{"x", "w", "b"}, Outputs: []string{"h"}},
			{Name: "relu", OpType: "Relu", Inputs: []string{"h"}, Outputs: []string{"y"}},
			{Name: "argmax", OpType: "ArgMax", Inputs: []string{"h"}, Outputs: []string{"cls"}, Attrs: map[string]onnx.Attr{
				"axis":     {Type: onnx.AttrInt, Int: 1},
				"keepdims": {Type: onnx.AttrInt, Int: 0},
			}},
		},
	}
}

// TestRuntimeModel batches requests of 1 to 3 rows through a compiled
// runtime.Model and checks every caller's rows against a reference
// computed here.
func TestRuntimeModel(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	w, bias := make([]float32, 12), make([]float32, 3)
	for i := range w {
		w[i] = float32(r.NormFloat64())
	}
	for i := range bias {
		bias[i] = float32(r.NormFloat64())
	}
	m, err := runtime.Compile(gemmGraph(w, bias), runtime.Options{MaxBatch: 32, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	b := newBatcher(t, m, batching.Config{MaxQueueDelay: 5 * time.Millisecond, PreferredBatchSizes: []int{8, 32}, Concurrency: 2})

	var wg sync.WaitGroup
	for i := range 120 {
		wg.Go(func() {
			rr := rand.New(rand.NewPCG(uint64(i), 9))
			rows := 1 + i%3
			x, _ := tensor.New(tensor.Float32, []int64{int64(rows), 4})
			for j := range x.Data.([]float32) {
				x.Data.([]float32)[j] = float32(rr.NormFloat64())
			}
			out, err := b.Run(context.Background(), map[string]*tensor.Tensor{"x": x}, nil)
			if err != nil {
				t.Error(err)
				return
			}
			y, cls := out["y"], out["cls"]
			if y == nil || cls == nil || y.Shape[0] != int64(rows) || cls.Shape[0] != int64(rows) {
				t.Errorf("request %d (%d rows): outputs %v", i, rows, out)
				return
			}
			for row := range rows {
				h := make([]float64, 3)
				best := 0
				for k := range 3 {
					h[k] = float64(bias[k])
					for j := range 4 {
						h[k] += float64(x.Data.([]float32)[4*row+j]) * float64(w[3*j+k])
					}
					if h[k] > h[best] {
						best = k
					}
					if got, want := float64(y.Data.([]float32)[3*row+k]), math.Max(h[k], 0); math.Abs(got-want) > 1e-5*(1+math.Abs(want)) {
						t.Errorf("request %d row %d: y[%d] = %v, want %v", i, row, k, got, want)
					}
				}
				if got := cls.Data.([]int64)[row]; got != int64(best) {
					t.Errorf("request %d row %d: cls = %d, want %d (h %v)", i, row, got, best, h)
				}
			}
		})
	}
	wg.Wait()
	s := b.Stats()
	if s.Requests != 120 || s.Batches >= 120 || s.MaxBatchRows > 32 {
		t.Errorf("Stats: %d requests in %d batches, max %d rows; want 120 batched, max <= 32", s.Requests, s.Batches, s.MaxBatchRows)
	}
	t.Logf("%d batches, mean %.1f rows, histogram %v", s.Batches, s.MeanBatchRows, s.BatchRows.Counts)
}

// digitsModel compiles the default digits MLP (fp32[N 64] -> label
// int64[N], probabilities fp32[N 10]). With flush, its subnormal weights
// (259 of the first layer's 4096) are set to zero: on x86 every product
// with a subnormal takes a slow microcode assist, which makes the model's
// cost grow with the rows it multiplies whatever the batch.
func digitsModel(tb testing.TB, workers int, flush bool) *runtime.Model {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "models", "digits", "1", "model.onnx"))
	if err != nil {
		tb.Fatal(err)
	}
	g, err := onnx.Decode(data)
	if err != nil {
		tb.Fatal(err)
	}
	for _, init := range g.Initializers {
		if w, ok := init.Data.([]float32); ok && flush {
			for i, v := range w {
				if math.Abs(float64(v)) < 0x1p-126 {
					w[i] = 0
				}
			}
		}
	}
	m, err := runtime.Compile(g, runtime.Options{MaxBatch: 64, Workers: workers})
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func digitsRequest(seed uint64) map[string]*tensor.Tensor {
	r := rand.New(rand.NewPCG(seed, 5))
	x, _ := tensor.New(tensor.Float32, []int64{1, 64})
	for j := range x.Data.([]float32) {
		x.Data.([]float32)[j] = float32(r.IntN(17))
	}
	return map[string]*tensor.Tensor{"input": x}
}

// TestDigitsModel: through the batcher, every caller gets what the model
// alone computes for its row.
func TestDigitsModel(t *testing.T) {
	m := digitsModel(t, 2, false)
	defer m.Close()
	b := newBatcher(t, m, batching.Config{MaxQueueDelay: 2 * time.Millisecond, Concurrency: 2})
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			in := digitsRequest(uint64(i))
			got, err := b.Run(context.Background(), in, nil)
			if err != nil {
				t.Error(err)
				return
			}
			want, err := m.Run(context.Background(), in, nil)
			if err != nil {
				t.Error(err)
				return
			}
			if g, w := got["label"].Data.([]int64)[0], want["label"].Data.([]int64)[0]; g != w {
				t.Errorf("request %d: label %d, want %d", i, g, w)
			}
			for k, w := range want["probabilities"].Data.([]float32) {
				if g := got["probabilities"].Data.([]float32)[k]; math.Abs(float64(g-w)) > 1e-5 {
					t.Errorf("request %d: probabilities[%d] = %v, want %v", i, k, g, w)
				}
			}
		})
	}
	wg.Wait()
	if s := b.Stats(); s.Batches >= 64 {
		t.Errorf("%d batches for 64 requests: nothing was merged", s.Batches)
	}
}
