package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
	"unsafe"

	"github.com/corvidml/corvid/bench/stats"
)

// TestAllocWeights checks that large packed weights start on a huge page and
// hold exactly what was asked (no capacity into the slack), that small ones
// are plain, and that a GEMM over a large packed B is exact on every tier.
func TestAllocWeights(t *testing.T) {
	w := allocWeights(hugeWeightsMin + 12345)
	if p := uintptr(unsafe.Pointer(&w[0])); p%hugePageSize != 0 {
		t.Errorf("large weights at %#x: want a multiple of %#x", p, hugePageSize)
	}
	if len(w) != hugeWeightsMin+12345 || cap(w) != len(w) {
		t.Errorf("len %d cap %d: want both %d", len(w), cap(w), hugeWeightsMin+12345)
	}
	for i, v := range w {
		if v != 0 {
			t.Fatalf("w[%d] = %d: want zeroed weights", i, v)
		}
	}
	if s := allocWeights(1000); len(s) != 1000 {
		t.Errorf("small weights: len %d, want 1000", len(s))
	}
	gemmForEachTier(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(8, uint64(Active())))
		gc := gemmRandCase(r, 3, 2100, 2100) // B packs to 4.4 MB; M = 3, the tiles' least
		if Active() == Generic && testing.Short() {
			gc = gemmRandCase(r, 1, 2100, 2100)
		}
		gc.check(t)
	})
}

// BenchmarkHugeWeights compares GEMMs over the same B packed on huge pages
// and on ordinary ones, in alternating windows of 20 ms (30 rounds), on one
// core (pinned), for the shapes whose B is over hugeWeightsMin; ratio is
// huge over ordinary. It times itself: run it with -benchtime 1x.
func BenchmarkHugeWeights(b *testing.B) {
	defer SetParallelism(SetParallelism(1))
	for _, tier := range []Tier{AVX512VNNI, AMX} {
		if tier > Best {
			continue
		}
		for _, m := range []int{1, 8, 32, 128} {
			n, k := 3072, 3072
			b.Run(fmt.Sprintf("%v/M=%d_N=%d_K=%d", tier, m, n, k), func(b *testing.B) {
				prev, err := SetTier(tier)
				if err != nil {
					b.Fatal(err)
				}
				defer SetTier(prev)
				a, huge, c := gemmBenchOperands(m, n, k)
				hugeWeights = false
				_, small, _ := gemmBenchOperands(m, n, k)
				hugeWeights = true
				_, undo := pinThread(b)
				defer undo()
				rates := windowRates(30, 20*time.Millisecond, 2*float64(m*n*k),
					windowVariant{call: func() { GemmU8S8(m, a, k, 7, huge, c, n) }},
					windowVariant{call: func() { GemmU8S8(m, a, k, 7, small, c, n) }})
				stats.Median(b, rates[0], "huge-GOPS")
				stats.Median(b, rates[1], "small-GOPS")
				stats.Ratio(b, "ratio", rates[0], rates[1])
			})
		}
	}
}
