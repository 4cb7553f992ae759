package runtime_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/runtime"
	"github.com/corvidml/corvid/server/tensor"
)

// A model file goes through onnx.Decode (validation) and Compile (graphs
// per batch bucket); Run is then safe to call from many goroutines.
func Example() {
	data, err := os.ReadFile("../../testdata/ops/sklearn_mlp/model.onnx")
	if err != nil {
		log.Fatal(err)
	}
	g, err := onnx.Decode(data)
	if err != nil {
		log.Fatal(err)
	}
	m, err := runtime.Compile(g, runtime.Options{MaxBatch: 16})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	fmt.Println("inputs:", m.Inputs())
	fmt.Println("outputs:", m.Outputs())

	// Two blank 8x8 images: a batch of 2 runs on the graph for 8 rows.
	x, _ := tensor.New(tensor.Float32, []int64{2, 64})
	out, err := m.Run(context.Background(), map[string]*tensor.Tensor{"input": x}, []string{"label"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("label:", out["label"].Shape, out["label"].DType)

	_, err = m.Run(context.Background(), map[string]*tensor.Tensor{"input": x}, []string{"score"})
	fmt.Println(err)
	// Output:
	// inputs: [input fp32[N 64]]
	// outputs: [label int64[N] probabilities fp32[N 10]]
	// label: [2] int64
	// invalid input: unknown output "score" (model outputs: label, probabilities)
}
