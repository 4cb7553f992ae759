//go:build amd64 && !purego

package kernels

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// BenchmarkAMXKernel times amxPanels alone on packed A: one 64-column panel
// with A and B in L1 or L2, then several panels into C rows of ldc elements.
func BenchmarkAMXKernel(b *testing.B) {
	if Best < AMX {
		b.Skipf("no AMX here (best tier %v)", Best)
	}
	for _, s := range [][4]int{ // M, K, panels, ldc
		{32, 256, 1, 64}, {128, 2048, 1, 64},
		{128, 768, 12, 768}, {128, 768, 12, 784}, {128, 768, 12, 64 * 12 * 4},
	} {
		m, k, panels, ldc := s[0], s[1], s[2], s[3]
		a := make([]uint8, m*k) // packed tiles
		w := make([]int8, k*panelN*panels)
		c := make([]int32, m*ldc)
		bias := make([]int32, panelN*panels)
		b.Run(fmt.Sprintf("M=%d_K=%d_panels=%d_ldc=%d", m, k, panels, ldc), func(b *testing.B) {
			gemmBenchOps(b, float64(m*panelN*panels*k), 0, func() {
				amxPanels(&a[0], k*16, max(m/16-2, 0), m/16-1, m-16, &w[0], k*panelN, k/64, 0, 0, panels, &c[0], ldc, &bias[0], &amxCfgs[16][0], k*panelN)
			})
		})
	}
}

// BenchmarkAMXOrder compares gemmTiles' two loop orders (amxPairOrder) in
// alternating windows of 40 ms, 25 of each, so that both see the same state
// of a shared machine; it reports each one's median GOPS and the quartiles
// of the ratio between neighbouring windows. It times itself: run it with
// -benchtime 1x.
func BenchmarkAMXOrder(b *testing.B) {
	if Best < AMX {
		b.Skipf("no AMX here (best tier %v)", Best)
	}
	defer func() { amxPairOrder = true }()
	for _, s := range [][3]int{{40, 768, 768}, {128, 768, 768}, {64, 1024, 1024}, {1024, 1024, 1024}} {
		m, n, k := s[0], s[1], s[2]
		b.Run(fmt.Sprintf("M=%d_N=%d_K=%d", m, n, k), func(b *testing.B) {
			a, pb, c := gemmBenchOperands(m, n, k)
			ops := 2 * float64(m*n*k)
			var pair, panel []float64
			for range 25 {
				for _, on := range []bool{true, false} {
					amxPairOrder = on
					var per []float64
					for start := time.Now(); time.Since(start) < 40*time.Millisecond || len(per) < 3; {
						t0 := time.Now()
						gemmTiles(m, a, k, 7, pb, c, n)
						per = append(per, ops/time.Since(t0).Seconds()/1e9)
					}
					slices.Sort(per)
					if on {
						pair = append(pair, per[len(per)/2])
					} else {
						panel = append(panel, per[len(per)/2])
					}
				}
			}
			ratios := make([]float64, len(pair))
			for i := range pair {
				ratios[i] = pair[i] / panel[i]
			}
			slices.Sort(pair)
			slices.Sort(panel)
			slices.Sort(ratios)
			b.ReportMetric(pair[len(pair)/2], "pair-order-GOPS")
			b.ReportMetric(panel[len(panel)/2], "panel-order-GOPS")
			b.ReportMetric(ratios[len(ratios)/2], "ratio")
			b.ReportMetric(ratios[len(ratios)/4], "ratio-q1")
			b.ReportMetric(ratios[len(ratios)*3/4], "ratio-q3")
		})
	}
}
