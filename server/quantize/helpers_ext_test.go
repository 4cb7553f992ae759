package quantize_test

import (
	"context"
	"testing"

	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/runtime"
	"github.com/corvidml/corvid/server/tensor"
)

// runModel decodes, compiles and runs a model on Corvid's runtime.
func runModel(t *testing.T, model []byte, inputs map[string]*tensor.Tensor) map[string]*tensor.Tensor {
	t.Helper()
	g, err := onnx.Decode(model)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	m, err := runtime.Compile(g, runtime.Options{Workers: 1, MaxBatch: 512})
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	defer m.Close()
	out, err := m.Run(context.Background(), inputs, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return out
}

func runtimeOpts(maxBatch int) runtime.Options {
	return runtime.Options{Workers: 1, MaxBatch: maxBatch}
}
