package batching_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/corvidml/corvid/server/batching"
	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/tensor"
)

// doubler is a model computing y = 2x over x fp32[N 2].
func doubler() batching.Model {
	return &fakeModel{
		inputs:   []onnx.ValueInfo{{Name: "x", DType: tensor.Float32, Shape: []int64{-1, 2}}},
		outputs:  []onnx.ValueInfo{{Name: "y", DType: tensor.Float32, Shape: []int64{-1, 2}}},
		maxBatch: 32,
		run: func(_ context.Context, in map[string]*tensor.Tensor, _ []string) (map[string]*tensor.Tensor, error) {
			x := in["x"]
			y, _ := tensor.New(tensor.Float32, x.Shape)
			for i, v := range x.Data.([]float32) {
				y.Data.([]float32)[i] = 2 * v
			}
			return map[string]*tensor.Tensor{"y": y}, nil
		},
	}
}

func Example() {
	model := doubler()
	var run func(context.Context, map[string]*tensor.Tensor, []string) (map[string]*tensor.Tensor, error)
	b, err := batching.New(model, batching.Config{MaxBatchSize: 8, MaxQueueDelay: time.Millisecond, MaxQueueSize: 100})
	switch {
	case errors.Is(err, batching.ErrNotBatchable):
		run = model.Run // serve it unbatched
	case err != nil:
		fmt.Println(err) // a bad batching section in model.yaml
		return
	default:
		defer b.Close() // before closing the model
		run = b.Run
	}

	var wg sync.WaitGroup
	results := make([][]float32, 4)
	for i := range results {
		wg.Go(func() {
			x := &tensor.Tensor{DType: tensor.Float32, Shape: []int64{1, 2}, Data: []float32{float32(i), 10}}
			out, err := run(context.Background(), map[string]*tensor.Tensor{"x": x}, nil)
			if err != nil {
				fmt.Println(err)
				return
			}
			results[i] = out["y"].Data.([]float32)
		})
	}
	wg.Wait()
	fmt.Println(results)
	// Output: [[0 20] [2 20] [4 20] [6 20]]
}
