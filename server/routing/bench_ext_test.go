package routing_test

import (
	"context"
	"testing"
	"time"

	"github.com/corvidml/corvid/server/routing"
	"github.com/corvidml/corvid/server/tensor"
)

// BenchmarkPrimaryWithShadow measures what a shadow costs the caller: a
// cheap primary (an argmax over 10 scores) alone, then followed by Offer to a
// shadow that takes 10ms per run, so that its queue is full and nearly every
// copy is dropped, which is the worst case for the caller (RELIABILITY row
// 19). The difference in ns/op is Offer's cost on the request path;
// offer-only measures Offer alone, and fast-shadow the case where copies are
// queued and a worker is woken.
func BenchmarkPrimaryWithShadow(b *testing.B) {
	in := map[string]*tensor.Tensor{"x": {DType: tensor.Float32, Shape: []int64{1, 10}, Data: []float32{0.1, 0.3, 0.05, 0.9, 0.2, 0.1, 0.0, 0.4, 0.6, 0.2}}}
	outputs := []string{"label"}
	primary := func() map[string]*tensor.Tensor {
		x := in["x"].Data.([]float32)
		best := 0
		for i, v := range x {
			if v > x[best] {
				best = i
			}
		}
		return map[string]*tensor.Tensor{"label": {DType: tensor.Int64, Shape: []int64{1}, Data: []int64{int64(best)}}}
	}
	slow := func(ctx context.Context, _ map[string]*tensor.Tensor, _ []string) (map[string]*tensor.Tensor, error) {
		select {
		case <-time.After(10 * time.Millisecond):
			return map[string]*tensor.Tensor{}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	fast := func(context.Context, map[string]*tensor.Tensor, []string) (map[string]*tensor.Tensor, error) {
		return map[string]*tensor.Tensor{}, nil
	}
	for _, bc := range []struct {
		name      string
		sample    float64 // < 0: no shadow
		parallel  bool
		offerOnly bool // Offer without the primary: its cost alone
		fast      bool // a shadow that returns at once: copies are queued, not dropped
	}{
		{"no-shadow", -1, false, false, false},
		{"slow-shadow/sample=1", 1, false, false, false},
		{"slow-shadow/sample=0.1", 0.1, false, false, false},
		{"offer-only/sample=1", 1, false, true, false},
		{"offer-only/fast-shadow/sample=1", 1, false, true, true},
		{"parallel/no-shadow", -1, true, false, false},
		{"parallel/slow-shadow/sample=1", 1, true, false, false},
		{"parallel/offer-only/sample=1", 1, true, true, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var s *routing.Shadow
			if bc.sample >= 0 {
				run := slow
				if bc.fast {
					run = fast
				}
				s = routing.NewShadow(run, routing.ShadowConfig{Sample: bc.sample, QueueSize: 64, Workers: 1}, nil)
				defer s.Close()
			}
			fixed := primary()
			serve := func() {
				out := fixed
				if !bc.offerOnly {
					out = primary()
				}
				if s != nil {
					s.Offer(in, outputs, out)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			if bc.parallel {
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						serve()
					}
				})
			} else {
				for b.Loop() {
					serve()
				}
			}
			b.StopTimer()
			if s != nil {
				st := s.Stats()
				if st.Sampled > 0 {
					b.ReportMetric(100*float64(st.Dropped)/float64(st.Sampled), "%dropped")
				}
			}
		})
	}
}
