package runtime_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/runtime"
	"github.com/corvidml/corvid/server/tensor"
)

// mlpGraph is the MLP of PERF.md's Gorgonia measurements: 784-512-256-10,
// fp32, Gemm + Relu layers and a Softmax, with random weights.
func mlpGraph(sizes ...int64) *onnx.Graph {
	r := rand.New(rand.NewPCG(1, 2))
	g := &onnx.Graph{
		Opsets:       map[string]int64{onnx.DomainDefault: 17},
		Inputs:       []onnx.ValueInfo{{Name: "x", DType: tensor.Float32, Shape: []int64{-1, sizes[0]}}},
		Outputs:      []onnx.ValueInfo{{Name: "probs", DType: tensor.Float32, Shape: []int64{-1, sizes[len(sizes)-1]}}},
		Initializers: make(map[string]*tensor.Tensor),
	}
	prev := "x"
	for i := 1; i < len(sizes); i++ {
		w, b := fmt.Sprintf("w%d", i), fmt.Sprintf("b%d", i)
		g.Initializers[w] = randTensor(r, sizes[i-1], sizes[i])
		g.Initializers[b] = randTensor(r, sizes[i])
		out := fmt.Sprintf("h%d", i)
		g.Nodes = append(g.Nodes, onnx.Node{Name: "gemm" + out, OpType: "Gemm", Inputs: []string{prev, w, b}, Outputs: []string{out}})
		prev = out
		if i < len(sizes)-1 {
			g.Nodes = append(g.Nodes, onnx.Node{Name: "relu" + out, OpType: "Relu", Inputs: []string{out}, Outputs: []string{out + "r"}})
			prev = out + "r"
		}
	}
	g.Nodes = append(g.Nodes, onnx.Node{Name: "softmax", OpType: "Softmax", Inputs: []string{prev}, Outputs: []string{"probs"}})
	return g
}

func randTensor(r *rand.Rand, shape ...int64) *tensor.Tensor {
	t, _ := tensor.New(tensor.Float32, shape)
	for i := range t.Data.([]float32) {
		t.Data.([]float32)[i] = float32(r.NormFloat64() * 0.05)
	}
	return t
}

// BenchmarkRun measures one Run on one worker, allocations included: the
// TapeMachine's own cost dominates small models (see PERF.md).
func BenchmarkRun(b *testing.B) {
	digits, _ := loadCase(b, digitsDir)
	models := []struct {
		name string
		g    *onnx.Graph
	}{
		{"digits-64-16-10", digits},
		{"mlp-784-512-256-10", mlpGraph(784, 512, 256, 10)},
	}
	for _, mc := range models {
		m, err := runtime.Compile(mc.g, runtime.Options{Workers: 1})
		if err != nil {
			b.Fatal(err)
		}
		in := m.Inputs()[0]
		for _, batch := range []int64{1, 32} {
			b.Run(fmt.Sprintf("%s/batch=%d", mc.name, batch), func(b *testing.B) {
				x := randTensor(rand.New(rand.NewPCG(3, 4)), batch, in.Shape[1])
				inputs := map[string]*tensor.Tensor{in.Name: x}
				ctx := context.Background()
				if _, err := m.Run(ctx, inputs, nil); err != nil { // builds the bucket's graph
					b.Fatal(err)
				}
				b.ReportAllocs()
				for b.Loop() {
					if _, err := m.Run(ctx, inputs, nil); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		m.Close()
	}
}
