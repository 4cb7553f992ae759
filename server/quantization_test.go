package server_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corvid "github.com/corvidml/corvid/client/go"
	corvidv1 "github.com/corvidml/corvid/gen/go/corvid/v1"
)

func readRepoFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestQuantizedAccuracy serves the digits MLP and the digits CNN in fp32,
// int8-dynamic and int8-static (calibrated at load on the committed
// calibration sets, drawn from the training split) and checks the issue's
// bar: held-out accuracy of every int8 mode within 1 point of fp32.
func TestQuantizedAccuracy(t *testing.T) {
	files := map[string][]byte{}
	type served struct {
		name, model string
		mode        corvidv1.ExecutionMode
		image       bool // the CNN takes [N 1 8 8]
	}
	var all []served
	for _, m := range []struct {
		name, file, cal string
		image           bool
	}{
		{"digits", "models/digits/1/model.onnx", "testdata/digits/calibration.npz", false},
		{"cnn", "testdata/digits_cnn/1/model.onnx", "testdata/digits_cnn/calibration.npz", true},
	} {
		model := readRepoFile(t, m.file)
		files[m.name+"-fp32/1/model.onnx"] = model
		files[m.name+"-dyn/1/model.onnx"] = model
		files[m.name+"-dyn/model.yaml"] = []byte("quantization: int8-dynamic\n")
		files[m.name+"-static/1/model.onnx"] = model
		files[m.name+"-static/model.yaml"] = []byte("quantization: int8-static\ncalibration: cal/train128.npz\n")
		files[m.name+"-static/cal/train128.npz"] = readRepoFile(t, m.cal)
		all = append(all,
			served{m.name + "-fp32", m.name, corvidv1.ExecutionMode_EXECUTION_MODE_FP32, m.image},
			served{m.name + "-dyn", m.name, corvidv1.ExecutionMode_EXECUTION_MODE_INT8_DYNAMIC, m.image},
			served{m.name + "-static", m.name, corvidv1.ExecutionMode_EXECUTION_MODE_INT8_STATIC, m.image})
	}
	// A calibration set that does not fit the model fails the version,
	// with the reason, and nothing else.
	files["badcal/1/model.onnx"] = files["digits-fp32/1/model.onnx"]
	files["badcal/model.yaml"] = []byte("quantization: int8-static\n")
	files["badcal/calibration.npz"] = readRepoFile(t, "testdata/digits_cnn/calibration.npz")

	in := start(t, modelsDir(t, files))
	ctx := context.Background()
	h := loadHeldout(t)
	n := len(h.Labels)
	acc := map[string]float64{}
	labels := map[string][]int64{}
	for _, s := range all {
		st, err := in.client.ModelStatus(ctx, s.name)
		if err != nil {
			t.Fatal(err)
		}
		v := st.GetVersions()[0]
		if v.GetState() != corvidv1.ModelState_MODEL_STATE_AVAILABLE {
			t.Fatalf("%s: %v: %s", s.name, v.GetState(), v.GetError())
		}
		if v.GetExecutionMode() != s.mode {
			t.Errorf("%s: execution mode %v, want %v", s.name, v.GetExecutionMode(), s.mode)
		}
		right := 0
		for lo := 0; lo < n; lo += 64 {
			hi := min(lo+64, n)
			shape := []int64{int64(hi - lo), 64}
			if s.image {
				shape = []int64{int64(hi - lo), 1, 8, 8}
			}
			resp, err := in.client.Predict(ctx, s.name, map[string]*corvidv1.Tensor{"input": corvid.Float32Tensor(h.flatten(lo, hi), shape...)})
			if err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
			got, err := corvid.AsInt64(resp.GetOutputs()["label"])
			if err != nil {
				t.Fatal(err)
			}
			for i, l := range got {
				if l == h.Labels[lo+i] {
					right++
				}
			}
			labels[s.name] = append(labels[s.name], got...)
		}
		acc[s.name] = float64(right) / float64(n)
	}
	for _, s := range all {
		base := s.model + "-fp32"
		differ := 0
		for i, l := range labels[s.name] {
			if l != labels[base][i] {
				differ++
			}
		}
		t.Logf("%-14s accuracy %.2f%%, %d of %d labels differ from fp32", s.name, 100*acc[s.name], differ, n)
		if acc[base]-acc[s.name] > 0.01 {
			t.Errorf("%s: accuracy %.4f, more than 1 point below fp32's %.4f", s.name, acc[s.name], acc[base])
		}
	}
	st, err := in.client.ModelStatus(ctx, "badcal")
	if err != nil {
		t.Fatal(err)
	}
	v := st.GetVersions()[0]
	if v.GetState() != corvidv1.ModelState_MODEL_STATE_FAILED || !strings.Contains(v.GetError(), "calibration set") || !strings.Contains(v.GetError(), "input") {
		t.Errorf("badcal: %v %q, want FAILED naming the calibration set's wrong input", v.GetState(), v.GetError())
	}
	t.Logf("badcal: %s", v.GetError())
}
