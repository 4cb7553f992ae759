package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corvid "github.com/corvidml/corvid/client/go"
	corvidv1 "github.com/corvidml/corvid/gen/go/corvid/v1"
)

// TestPrivacyNoise serves the digits model with Laplace noise on its
// probabilities at several epsilons (sensitivity 1) and measures the cost:
// held-out accuracy of the argmax of the noisy probabilities. The labels
// the model computes itself are not changed; a bad privacy section fails
// the version, naming the key.
func TestPrivacyNoise(t *testing.T) {
	model := digitsModel(t)
	files := map[string][]byte{
		"plain/1/model.onnx": model,
		"bad/1/model.onnx":   model,
		"bad/model.yaml":     []byte("privacy: {epsilon: 0, sensitivity: 1}\n"),
	}
	epsilons := []string{"0.5", "1", "2", "5", "10"}
	for _, e := range epsilons {
		name := "eps" + strings.ReplaceAll(e, ".", "-")
		files[name+"/1/model.onnx"] = model
		files[name+"/model.yaml"] = []byte(fmt.Sprintf("privacy: {epsilon: %s, sensitivity: 1, outputs: [probabilities]}\n", e))
	}
	in := start(t, modelsDir(t, files))
	ctx := context.Background()
	h := loadHeldout(t)
	n := len(h.Labels)
	accuracy := func(model string) (argmax, labels float64) {
		right, rightLabel := 0, 0
		for lo := 0; lo < n; lo += 64 {
			hi := min(lo+64, n)
			resp, err := in.client.Predict(ctx, model, map[string]*corvidv1.Tensor{"input": corvid.Float32Tensor(h.flatten(lo, hi), int64(hi-lo), 64)})
			if err != nil {
				t.Fatal(err)
			}
			p, _ := corvid.AsFloat32(resp.GetOutputs()["probabilities"])
			l, _ := corvid.AsInt64(resp.GetOutputs()["label"])
			for i := range hi - lo {
				best := 0
				for c := range 10 {
					if p[i*10+c] > p[i*10+best] {
						best = c
					}
				}
				if int64(best) == h.Labels[lo+i] {
					right++
				}
				if l[i] == h.Labels[lo+i] {
					rightLabel++
				}
			}
		}
		return float64(right) / float64(n), float64(rightLabel) / float64(n)
	}
	base, _ := accuracy("plain")
	t.Logf("no noise: argmax accuracy %.2f%%", 100*base)
	prev := 0.0
	for i, e := range epsilons {
		acc, labelAcc := accuracy("eps" + strings.ReplaceAll(e, ".", "-"))
		t.Logf("epsilon %-4s (noise scale %.2f): argmax of noisy probabilities %.2f%%; model labels %.2f%%", e, 1/atof(e), 100*acc, 100*labelAcc)
		if labelAcc != base {
			t.Errorf("epsilon %s: the labels changed (%.4f, want %.4f)", e, labelAcc, base)
		}
		if i == 0 && acc > base-0.2 {
			t.Errorf("epsilon 0.5 left accuracy at %.4f: is noise added?", acc)
		}
		prev = acc
	}
	if prev < base-0.35 {
		t.Errorf("epsilon 10 cost more than expected: %.4f against %.4f", prev, base)
	}
	st, err := in.client.ModelStatus(ctx, "bad")
	if err != nil {
		t.Fatal(err)
	}
	if e := st.GetVersions()[0].GetError(); !strings.Contains(e, "privacy.epsilon") {
		t.Errorf("bad privacy section: %q", e)
	}
}

func atof(s string) float64 {
	var f float64
	fmt.Sscan(s, &f)
	return f
}
