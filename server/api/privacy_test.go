package api

import (
	"bytes"
	"context"
	"log/slog"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/corvidml/corvid/server/repository"
	"github.com/corvidml/corvid/server/tensor"
)

// TestLaplace checks the sampler against Laplace(0, b): mean 0, mean |x| =
// b, variance 2b², and the share beyond 3b is exp(-3).
func TestLaplace(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const n, b = 400000, 2.0
	var sum, abs, sq float64
	beyond := 0
	for range n {
		x := laplace(r, b)
		sum += x
		abs += math.Abs(x)
		sq += x * x
		if math.Abs(x) > 3*b {
			beyond++
		}
	}
	mean, mabs, variance, tail := sum/n, abs/n, sq/n, float64(beyond)/n
	if math.Abs(mean) > 0.02 || math.Abs(mabs-b)/b > 0.01 || math.Abs(variance-2*b*b)/(2*b*b) > 0.02 || math.Abs(tail-math.Exp(-3)) > 0.002 {
		t.Errorf("mean %.4f, mean |x| %.4f (want %v), variance %.3f (want %v), P(|x|>3b) %.4f (want %.4f)",
			mean, mabs, b, variance, 2*b*b, tail, math.Exp(-3))
	}
}

func TestAddNoise(t *testing.T) {
	probs := &tensor.Tensor{DType: tensor.Float32, Shape: []int64{1, 3}, Data: []float32{0.2, 0.3, 0.5}}
	other := &tensor.Tensor{DType: tensor.Float64, Shape: []int64{1}, Data: []float64{4}}
	labels := &tensor.Tensor{DType: tensor.Int64, Shape: []int64{1}, Data: []int64{2}}
	in := map[string]*tensor.Tensor{"probabilities": probs, "other": other, "label": labels}
	out := addNoise(&repository.PrivacyConfig{Epsilon: 1, Sensitivity: 1, Outputs: []string{"probabilities"}}, in)
	if out["label"] != labels || out["other"] != other {
		t.Error("outputs not named got noise (or were copied)")
	}
	if got := out["probabilities"].Data.([]float32); got[0] == 0.2 && got[1] == 0.3 && got[2] == 0.5 {
		t.Error("no noise on probabilities")
	}
	if d := probs.Data.([]float32); d[0] != 0.2 || d[1] != 0.3 || d[2] != 0.5 {
		t.Errorf("the original tensor changed: %v", d)
	}
	all := addNoise(&repository.PrivacyConfig{Epsilon: 1, Sensitivity: 1}, in)
	if all["other"] == other || all["label"] != labels {
		t.Error("without outputs named, every float output must get noise, and integers none")
	}
}

func TestLogPayloadRedacts(t *testing.T) {
	var buf bytes.Buffer
	s := &Service{log: slog.New(slog.NewJSONHandler(&buf, nil))}
	in := map[string]*tensor.Tensor{
		"ssn":   {DType: tensor.Int64, Shape: []int64{1}, Data: []int64{123456789}},
		"input": {DType: tensor.Float32, Shape: []int64{1, 2}, Data: []float32{1.5, 2.5}},
	}
	out := map[string]*tensor.Tensor{"y": {DType: tensor.Float32, Shape: []int64{1}, Data: []float32{0.75}}}
	s.logPayload(context.Background(), "m", 3, "req-1", in, out, []string{"ssn"})
	line := buf.String()
	for _, want := range []string{`"msg":"payload"`, `"request_id":"req-1"`, "[redacted int64[1]]", "1.5", "0.75"} {
		if !strings.Contains(line, want) {
			t.Errorf("payload log %s lacks %q", line, want)
		}
	}
	if strings.Contains(line, "123456789") {
		t.Errorf("a redacted input was logged: %s", line)
	}
	if sampled(0) || !sampled(1) {
		t.Error("sample 0 must log nothing and 1 everything")
	}
}
