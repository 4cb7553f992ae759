package kernels

import (
	"math"
	"testing"
)

// TestReLU checks ReLU on every tier against the scalar rule, bit for bit,
// for every length up to ten of its 8-lane steps, into a separate dst
// (guard cells on both sides must stay as they were) and in place, with
// NaNs of both signs, zeros of both signs, infinities and subnormals at
// every position in turn.
func TestReLU(t *testing.T) {
	specials := []float32{
		float32(math.NaN()), math.Float32frombits(0xffc00001), // NaNs, the second with its sign set
		0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)),
		math.Float32frombits(1), math.Float32frombits(0x80000001), // subnormals
		math.MaxFloat32, -math.MaxFloat32,
	}
	const guard = 17
	sentinel := math.Float32frombits(0x7f8abcde) // a NaN no input holds
	gemmForEachTier(t, func(t *testing.T) {
		r := newTestRand(61)
		for n := 0; n <= 80; n++ {
			x := make([]float32, n)
			for i := range x {
				x[i] = float32(r.NormFloat64())
			}
			for i := range x {
				x[i] = specials[(i+n)%len(specials)]
				want := make([]float32, n)
				for j, v := range x {
					want[j] = v
					if v < 0 {
						want[j] = 0
					}
				}
				buf := make([]float32, n+2*guard)
				for j := range buf {
					buf[j] = sentinel
				}
				ReLU(buf[guard:guard+n], x)
				for j := range guard {
					if math.Float32bits(buf[j]) != math.Float32bits(sentinel) || math.Float32bits(buf[guard+n+j]) != math.Float32bits(sentinel) {
						t.Fatalf("%v n=%d: wrote outside dst", Active(), n)
					}
				}
				in := append([]float32(nil), x...)
				ReLU(in, in)
				for j := range want {
					if got := buf[guard+j]; math.Float32bits(got) != math.Float32bits(want[j]) {
						t.Fatalf("%v n=%d special at %d: dst[%d] = %v (%#x), want %v (%#x)", Active(), n, i, j, got, math.Float32bits(got), want[j], math.Float32bits(want[j]))
					}
					if got := in[j]; math.Float32bits(got) != math.Float32bits(want[j]) {
						t.Fatalf("%v n=%d special at %d, in place: x[%d] = %v, want %v", Active(), n, i, j, got, want[j])
					}
				}
				x[i] = float32(r.NormFloat64())
			}
		}
	})
}

// BenchmarkReLU runs ReLU on each tier over the outputs of a 32 x 3072
// layer, half of them negative, in place of a fresh copy each time (the
// copy is timed too: it is what a branch-free loop comes close to).
func BenchmarkReLU(b *testing.B) {
	r := newTestRand(62)
	src := make([]float32, 32*3072)
	for i := range src {
		src[i] = float32(r.NormFloat64())
	}
	x := make([]float32, len(src))
	b.Run("copy", func(b *testing.B) {
		for range b.N {
			copy(x, src)
		}
	})
	for tier := Generic; tier <= Best; tier++ {
		b.Run(tier.String(), func(b *testing.B) {
			useTierThreads(b, tier, 1)
			b.SetBytes(int64(4 * len(x)))
			for range b.N {
				copy(x, src)
				ReLU(x, x)
			}
		})
	}
}
