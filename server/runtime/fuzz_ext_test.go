package runtime_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/runtime"
	"github.com/corvidml/corvid/server/tensor"
)

// FuzzCompile loads arbitrary model bytes all the way: whatever Decode
// accepts must compile or fail with an error, and a compiled model must
// run (on zeros) or fail with an error; nothing may panic.
func FuzzCompile(f *testing.F) {
	models, err := filepath.Glob(filepath.Join(opsDir, "*", "model.onnx"))
	if err != nil || len(models) == 0 {
		f.Fatalf("no seed models (%v)", err)
	}
	for _, path := range models {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := onnx.Decode(data)
		if err != nil {
			return
		}
		m, err := runtime.Compile(g, runtime.Options{MaxBatch: 8, Workers: 1, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			if !errors.Is(err, onnx.ErrInvalidModel) && !errors.Is(err, onnx.ErrUnsupported) && !errors.Is(err, runtime.ErrInternal) {
				t.Fatalf("Compile error %q wraps no sentinel", err)
			}
			return
		}
		defer m.Close()
		inputs := make(map[string]*tensor.Tensor)
		for _, in := range m.Inputs() {
			shape := append([]int64(nil), in.Shape...)
			if len(shape) > 0 && shape[0] < 0 {
				shape[0] = 1
			}
			if n, err := tensor.NumElements(shape); err != nil || n > 1<<16 {
				return // a valid but large model: running it proves nothing more
			}
			zeros, err := tensor.New(in.DType, shape)
			if err != nil {
				t.Fatal(err)
			}
			inputs[in.Name] = zeros
		}
		if _, err := m.Run(context.Background(), inputs, nil); err != nil && !errors.Is(err, runtime.ErrInternal) {
			t.Fatalf("Run on inputs of the declared shapes: %v", err)
		}
	})
}
