package api

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"

	"github.com/corvidml/corvid/server/repository"
	"github.com/corvidml/corvid/server/tensor"
)

// The Laplace mechanism (Dwork, McSherry, Nissim, Smith 2006): adding noise
// drawn from Laplace(0, b) with b = sensitivity / epsilon to every element
// of a result whose L1 sensitivity (the most one individual's data can move
// the whole result vector, in L1 norm) is at most `sensitivity` makes the
// released result epsilon-differentially private for that individual. The
// operator states the sensitivity in model.yaml; Corvid cannot know it. The
// noise comes from ChaCha8 seeded from crypto/rand. Known limit: a textbook
// floating-point Laplace sampler leaks through the low bits of its output
// (Mironov, CCS 2012); outputs are rounded to float32, which removes most of
// the low-order structure but is not the snapping mechanism that closes the
// gap fully.

var noiseSource = struct {
	sync.Mutex
	r *rand.Rand
}{r: newNoiseRand()}

func newNoiseRand() *rand.Rand {
	var seed [32]byte
	if _, err := crand.Read(seed[:]); err != nil {
		panic(fmt.Sprintf("api: no entropy for the privacy noise: %v", err))
	}
	return rand.New(rand.NewChaCha8(seed))
}

// laplace draws from Laplace(0, b) by inverting its CDF.
func laplace(r *rand.Rand, b float64) float64 {
	u := r.Float64() - 0.5 // in [-0.5, 0.5)
	for u == -0.5 {
		u = r.Float64() - 0.5
	}
	return -b * math.Copysign(1, u) * math.Log(1-2*math.Abs(u))
}

// addNoise returns outputs with Laplace noise added to the float outputs
// the privacy settings name (every float output when they name none).
// Tensors it changes are copies: the originals may still be read (by a
// shadow comparison).
func addNoise(p *repository.PrivacyConfig, outputs map[string]*tensor.Tensor) map[string]*tensor.Tensor {
	b := p.Sensitivity / p.Epsilon
	out := make(map[string]*tensor.Tensor, len(outputs))
	noiseSource.Lock()
	defer noiseSource.Unlock()
	for name, t := range outputs {
		if len(p.Outputs) > 0 && !slices.Contains(p.Outputs, name) {
			out[name] = t
			continue
		}
		switch d := t.Data.(type) {
		case []float32:
			n := slices.Clone(d)
			for i := range n {
				n[i] = float32(float64(n[i]) + laplace(noiseSource.r, b))
			}
			out[name] = &tensor.Tensor{DType: t.DType, Shape: t.Shape, Data: n}
		case []float64:
			n := slices.Clone(d)
			for i := range n {
				n[i] += laplace(noiseSource.r, b)
			}
			out[name] = &tensor.Tensor{DType: t.DType, Shape: t.Shape, Data: n}
		default:
			out[name] = t // labels and other integers pass as they are
		}
	}
	return out
}

// sampled reports whether a request falls in a payload-log sample.
func sampled(rate float64) bool {
	if rate <= 0 {
		return false
	}
	if rate >= 1 {
		return true
	}
	var b [8]byte
	crand.Read(b[:])
	return float64(binary.LittleEndian.Uint64(b[:])>>11)/(1<<53) < rate
}

// logPayload writes one sampled request and its response to the log at
// info level, the redacted inputs replaced by their dtype and shape.
func (s *Service) logPayload(ctx context.Context, model string, version int64, id string, inputs, outputs map[string]*tensor.Tensor, redact []string) {
	show := func(ts map[string]*tensor.Tensor, hide []string) map[string]any {
		m := make(map[string]any, len(ts))
		for name, t := range ts {
			if slices.Contains(hide, name) {
				m[name] = fmt.Sprintf("[redacted %v%v]", t.DType, t.Shape)
				continue
			}
			m[name] = map[string]any{"dtype": t.DType.String(), "shape": t.Shape, "data": t.Data}
		}
		return m
	}
	s.log.InfoContext(ctx, "payload", "model", model, "version", version, "request_id", id,
		"inputs", show(inputs, redact), "outputs", show(outputs, nil))
}
