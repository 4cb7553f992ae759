package kernels

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/corvidml/corvid/bench/stats"
)

// BenchmarkVsORT compares the int8 GEMM as Corvid serves it (the best tier;
// on AMX, the tiles or VNNI, whichever is faster) with ONNX
// Runtime's MatMulInteger on PERF.md's shapes, on one thread each and, where
// Go may use two CPUs (GOMAXPROCS), on two (Corvid's pool; ONNX Runtime's
// intra-op thread pool), in alternating windows of 50 ms, 25 rounds of each
// per shape, so that all see the same state of a shared machine. Per
// shape it reports the median GOPS of each, and the median and quartiles,
// round by round, of:
//
//   - ratio: Corvid over ONNX Runtime, one thread each;
//   - ratio2: the same on two threads each;
//   - corvid-2/1, ort-2/1: each one's two threads over its one.
//
// Each side takes the median per call of its window, its calling thread
// pinned to the same CPU; the second thread of each runs where the OS puts
// it. ONNX Runtime runs in bench/ort/gemm.py --serve, from the venv that
// `make tools` builds. The benchmark times itself: run it with -benchtime
// 1x.
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
	ort := func(m, n, k int, window time.Duration, cpu, threads int) float64 {
		fmt.Fprintf(in, "%d %d %d %g %d %d\n", m, n, k, window.Seconds(), cpu, threads)
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
			two := runtime.GOMAXPROCS(0) >= 2
			cpu, undo := pinThread(b)
			defer undo()
			a, pb, c := gemmBenchOperands(m, n, k)
			ops := 2 * float64(m*n*k)
			corvid := func(threads int) float64 {
				SetParallelism(threads)
				defer SetParallelism(1)
				var per []float64
				for start := time.Now(); time.Since(start) < window || len(per) < 5; {
					t0 := time.Now()
					GemmU8S8(m, a, k, 0, pb, c, n)
					per = append(per, time.Since(t0).Seconds())
				}
				slices.Sort(per)
				return ops / per[len(per)/2] / 1e9
			}
			var mine, theirs, mine2, theirs2 []float64
			for range rounds {
				mine = append(mine, corvid(1))
				theirs = append(theirs, ort(m, n, k, window, cpu, 1))
				if two {
					mine2 = append(mine2, corvid(2))
					theirs2 = append(theirs2, ort(m, n, k, window, cpu, 2))
				}
			}
			// Ratios are taken round by round, of neighbouring windows:
			// the host's AMX rate can halve or double between rounds, and
			// then two medians could come from different states.
			stats.Median(b, mine, "corvid-GOPS")
			stats.Median(b, theirs, "ort-GOPS")
			stats.Ratio(b, "ratio", mine, theirs)
			if two {
				stats.Median(b, mine2, "corvid2-GOPS")
				stats.Median(b, theirs2, "ort2-GOPS")
				stats.Ratio(b, "ratio2", mine2, theirs2)
				stats.Ratio(b, "corvid-2/1", mine2, mine)
				stats.Ratio(b, "ort-2/1", theirs2, theirs)
			}
		})
	}
}
