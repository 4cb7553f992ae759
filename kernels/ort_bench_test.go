package kernels

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkVsORT compares the int8 GEMM as Corvid serves it (the best tier;
// on AMX, the tiles or VNNI, whichever is faster) with ONNX
// Runtime's MatMulInteger (one thread each) on PERF.md's shapes, in
// alternating windows of 50 ms, 25 of each per shape, so that both see the
// same state of a shared machine: it reports the median GOPS of each and
// the median and quartiles of their ratio in neighbouring windows. Both
// take the median per call, on the same CPU. ONNX Runtime runs in
// bench/ort/gemm.py --serve, from the venv that `make tools` builds. The
// benchmark times itself: run it with -benchtime 1x.
func BenchmarkVsORT(b *testing.B) {
	py := filepath.Join("..", ".venv", "bin", "python")
	if _, err := os.Stat(py); err != nil {
		b.Skipf("no %s: make tools builds it", py)
	}
	cmd := exec.Command(py, filepath.Join("..", "bench", "ort", "gemm.py"), "--serve")
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		in.Close()
		cmd.Wait()
	}()
	lines := bufio.NewScanner(out)
	ort := func(m, n, k int, window time.Duration, cpu int) float64 {
		fmt.Fprintf(in, "%d %d %d %g %d\n", m, n, k, window.Seconds(), cpu)
		if !lines.Scan() {
			b.Fatalf("gemm.py --serve stopped: %v", lines.Err())
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(lines.Text()), 64)
		if err != nil {
			b.Fatal(err)
		}
		return v
	}
	defer SetParallelism(SetParallelism(1))
	// Corvid as it serves: on AMX, the tiles or VNNI, whichever is faster
	// (adapt.go), unless CORVID_KERNELS forces a tier.
	defer SetAdaptive(SetAdaptive(adaptiveDefault()))
	const rounds, window = 25, 50 * time.Millisecond
	for _, s := range gemmBenchShapes {
		m, n, k := s[0], s[1], s[2]
		b.Run(fmt.Sprintf("%v/M=%d_N=%d_K=%d", Active(), m, n, k), func(b *testing.B) {
			cpu, undo := pinThread(b)
			defer undo()
			a, pb, c := gemmBenchOperands(m, n, k)
			ops := 2 * float64(m*n*k)
			var mine, theirs []float64
			for range rounds {
				var per []float64
				for start := time.Now(); time.Since(start) < window || len(per) < 5; {
					t0 := time.Now()
					GemmU8S8(m, a, k, 0, pb, c, n)
					per = append(per, time.Since(t0).Seconds())
				}
				slices.Sort(per)
				mine = append(mine, ops/per[len(per)/2]/1e9)
				theirs = append(theirs, ort(m, n, k, window, cpu))
			}
			// The ratio is taken round by round, each of neighbouring
			// windows: the host's AMX rate can halve or double between
			// rounds, and then the two medians could come from different
			// states.
			ratios := make([]float64, rounds)
			for i := range ratios {
				ratios[i] = mine[i] / theirs[i]
			}
			slices.Sort(mine)
			slices.Sort(theirs)
			slices.Sort(ratios)
			b.ReportMetric(mine[rounds/2], "corvid-GOPS")
			b.ReportMetric(theirs[rounds/2], "ort-GOPS")
			b.ReportMetric(ratios[rounds/2], "ratio")
			b.ReportMetric(ratios[rounds/4], "ratio-q1")
			b.ReportMetric(ratios[rounds*3/4], "ratio-q3")
		})
	}
}
