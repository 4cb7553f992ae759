//go:build amd64 && !purego

package kernels

import (
	"fmt"
	"testing"
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
				amxPanels(&a[0], k*16, max(m/16-2, 0), m/16-1, m-16, &w[0], k*panelN, k/64, 0, 0, panels, &c[0], ldc, &bias[0], &amxCfgs[16][0])
			})
		})
	}
}
