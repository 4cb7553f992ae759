//go:build amd64 && !purego

package kernels

import (
	"fmt"
	"testing"
	"time"

	"github.com/corvidml/corvid/bench/stats"
)

// BenchmarkAdaptTiles compares, on the AMX tier, the choice between the
// tiles and the VNNI kernels (adapt.go) with each path alone, in
// alternating 20 ms windows (30 rounds), the timing goroutine pinned, on
// one core and on two. It reports the median per-window rate of each and,
// per round, the chosen path's rate over the tiles', over VNNI's, and over
// the better of the two in that round (best: 1.0 if the choice cost
// nothing). It times itself: run it with -benchtime 1x.
func BenchmarkAdaptTiles(b *testing.B) {
	if Best < AMX {
		b.Skipf("no AMX here (best tier %v)", Best)
	}
	prev, err := SetTier(AMX)
	if err != nil {
		b.Fatal(err)
	}
	defer SetTier(prev)
	defer SetAdaptive(SetAdaptive(false))
	for _, threads := range []int{1, 2} {
		for _, s := range gemmBenchShapes {
			m, n, k := s[0], s[1], s[2]
			if m < amxMinM {
				continue
			}
			b.Run(fmt.Sprintf("threads=%d/M=%d_N=%d_K=%d", threads, m, n, k), func(b *testing.B) {
				defer SetParallelism(SetParallelism(threads))
				a, pb, c := gemmBenchOperands(m, n, k)
				variant := func(t Tier, adapt bool) windowVariant {
					return windowVariant{call: func() {
						SetAdaptive(adapt)
						gemmU8S8Par(t, m, a, k, 128, pb, c, n, nil)
					}}
				}
				_, undo := pinThread(b)
				defer undo()
				rates := windowRates(30, 20*time.Millisecond, 2*float64(m*n*k),
					variant(AMX, true), variant(AMX, false), variant(AVX512VNNI, false))
				SetAdaptive(false)
				better := make([]float64, len(rates[0]))
				for i := range better {
					better[i] = max(rates[1][i], rates[2][i])
				}
				stats.Median(b, rates[0], "chosen-GOPS")
				stats.Median(b, rates[1], "tiles-GOPS")
				stats.Median(b, rates[2], "vnni-GOPS")
				stats.Ratio(b, "chosen/tiles", rates[0], rates[1])
				stats.Ratio(b, "chosen/vnni", rates[0], rates[2])
				stats.Ratio(b, "chosen/best", rates[0], better)
			})
		}
	}
}
