package quantize_test

import (
	"context"
	"encoding/json"
	"maps"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/corvidml/corvid/server/npz"
	"github.com/corvidml/corvid/server/quantize"
	"github.com/corvidml/corvid/server/tensor"
)

var heldoutPath = filepath.Join("..", "..", "testdata", "digits", "heldout.json")

type heldout struct {
	Features int
	Inputs   [][]float32
	Labels   []int64
}

func loadHeldout(t *testing.T) (*tensor.Tensor, []int64) {
	t.Helper()
	b, err := os.ReadFile(heldoutPath)
	if err != nil {
		t.Fatal(err)
	}
	var h heldout
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	x := make([]float32, 0, len(h.Inputs)*h.Features)
	for _, row := range h.Inputs {
		x = append(x, row...)
	}
	return &tensor.Tensor{DType: tensor.Float32, Shape: []int64{int64(len(h.Inputs)), int64(h.Features)}, Data: x}, h.Labels
}

// calibration reads a calibration set, or, if the file is absent, uses the
// first 128 held-out rows (reshaped to the model's input) instead.
func calibration(t *testing.T, path string, x *tensor.Tensor) map[string]*tensor.Tensor {
	t.Helper()
	cal, err := npz.ReadFile(path, 0)
	if err == nil {
		return cal
	}
	if !os.IsNotExist(err) {
		t.Fatal(err)
	}
	t.Logf("%s absent: calibrating on 128 held-out rows", path)
	rows := min(128, int(x.Shape[0]))
	per := x.Len() / int(x.Shape[0])
	shape := append([]int64{int64(rows)}, x.Shape[1:]...)
	return map[string]*tensor.Tensor{"input": {DType: tensor.Float32, Shape: shape, Data: x.Data.([]float32)[:rows*per]}}
}

// TestDigits quantizes the digits models both ways (the served sklearn
// MLP, and the CNN of testdata/digits_cnn) and scores the results on the
// held-out rows in Corvid's runtime: accuracy must stay within one point of
// fp32's.
func TestDigits(t *testing.T) {
	for _, m := range []struct {
		name, model, calibration string
		shape                    []int64 // of one input row
		ops                      map[string]int
	}{
		{"mlp", filepath.Join("..", "..", "models", "digits", "1", "model.onnx"), filepath.Join("..", "..", "testdata", "digits", "calibration.npz"),
			[]int64{64}, map[string]int{"MatMul": 2}},
		{"cnn", filepath.Join("..", "..", "testdata", "digits_cnn", "1", "model.onnx"), filepath.Join("..", "..", "testdata", "digits_cnn", "calibration.npz"),
			[]int64{1, 8, 8}, map[string]int{"Conv": 2, "Gemm": 1}},
	} {
		t.Run(m.name, func(t *testing.T) { testDigits(t, m.model, m.calibration, m.shape, m.ops) })
	}
}

func testDigits(t *testing.T, path, calPath string, rowShape []int64, ops map[string]int) {
	model, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	x, labels := loadHeldout(t)
	x.Shape = append([]int64{x.Shape[0]}, rowShape...)
	in := map[string]*tensor.Tensor{"input": x}
	ref := runModel(t, model, in)
	refAcc := accuracy(ref["label"].Data.([]int64), labels)

	for _, tt := range []struct {
		name string
		cal  map[string]*tensor.Tensor
	}{
		{quantize.ModeDynamic, nil},
		{quantize.ModeStatic, calibration(t, calPath, x)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, rep, err := quantize.Quantize(context.Background(), model, quantize.Options{Calibration: tt.cal})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Mode != tt.name || !maps.Equal(rep.Quantized, ops) || len(rep.Skipped) != 0 {
				t.Errorf("report = %+v, want %s with %v and no skips", rep, tt.name, ops)
			}
			if rep.BytesAfter != len(out) || rep.BytesBefore != len(model) || rep.BytesAfter >= rep.BytesBefore {
				t.Errorf("report bytes %d -> %d, want %d -> %d (smaller)", rep.BytesBefore, rep.BytesAfter, len(model), len(out))
			}
			got := runModel(t, out, in)
			acc := accuracy(got["label"].Data.([]int64), labels)
			agree := accuracy(got["label"].Data.([]int64), ref["label"].Data.([]int64))
			maxDiff := maxAbsDiff(got["probabilities"].Data.([]float32), ref["probabilities"].Data.([]float32))
			t.Logf("%d held-out rows: fp32 accuracy %.4f, %s %.4f; labels agree on %.4f; max |Δprobability| %.4f; %d -> %d bytes",
				len(labels), refAcc, tt.name, acc, agree, maxDiff, rep.BytesBefore, rep.BytesAfter)
			if math.Abs(acc-refAcc) > 0.01 {
				t.Errorf("accuracy %.4f, fp32 %.4f: more than 1 point apart", acc, refAcc)
			}
			// Empirical bound: an error of a few int8 steps in the logits
			// moves a softmax probability by a few hundredths at most.
			if maxDiff > 0.05 {
				t.Errorf("max |Δprobability| = %.4f, want <= 0.05", maxDiff)
			}
		})
	}
}

func accuracy(got, want []int64) float64 {
	n := 0
	for i := range want {
		if got[i] == want[i] {
			n++
		}
	}
	return float64(n) / float64(len(want))
}

func maxAbsDiff(a, b []float32) float64 {
	m := 0.0
	for i := range a {
		m = max(m, math.Abs(float64(a[i]-b[i])))
	}
	return m
}
