package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corvidml/corvid/bench/stats"
	corvid "github.com/corvidml/corvid/client/go"
	corvidv1 "github.com/corvidml/corvid/gen/go/corvid/v1"
	"github.com/corvidml/corvid/kernels"
)

// The windows BenchmarkKernelLinger runs each mode for: long enough that
// what one window leaves behind (workers parked, or lingering) matters
// little to the next one's figures.
const (
	lingerWindow = 200
	lingerLoad   = 200 * time.Millisecond
)

// BenchmarkKernelLinger compares, on one server in one run, the kernels'
// workers lingering after a job for the default time (kernels.SetLinger)
// with parking at once (0), in alternating rounds, so that both meet the
// same states of the host. For the 768-3072-768 MLP and the digits CNN, at
// batch 1 and 32, in fp32 and int8:
//
//   - latency: one client; each round runs lingerWindow requests in each
//     mode and takes each mode's p50; it reports the median over rounds of
//     each and of park/linger (above 1: lingering answers faster);
//   - throughput: 2 x GOMAXPROCS clients for lingerLoad in each mode per
//     round; it reports the median rows/s of each and of linger/park
//     (above 1: lingering serves more).
//
// -benchtime Nx runs N rounds (at least 3) of each.
func BenchmarkKernelLinger(b *testing.B) {
	models, modes := quantModels(b), []string{"fp32", "int8-dynamic"}
	addr := serveQuant(b, models, modes)
	defer kernels.SetLinger(kernels.SetLinger(-1))
	linger := kernels.SetLinger(-1)
	settings := []time.Duration{0, linger}
	ctx := context.Background()
	r := rand.New(rand.NewPCG(5, 6))
	for _, m := range models {
		row := m.rowLen()
		for _, mode := range modes {
			name := m.name + "-" + mode
			c, err := corvid.Dial(addr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			st, err := c.ModelStatus(ctx, name)
			if err != nil {
				b.Fatal(err)
			}
			input := st.GetVersions()[0].GetInputs()[0].GetName()
			for _, batch := range []int64{1, 32} {
				x := make([]float32, batch*row)
				for i := range x {
					x[i] = float32(r.Float64() * 4)
				}
				req := map[string]*corvidv1.Tensor{input: corvid.Float32Tensor(x, append([]int64{batch}, m.shape...)...)}
				predict := func() error {
					_, err := c.Predict(ctx, name, req)
					return err
				}
				prefix := fmt.Sprintf("%s/batch=%d/%s/", m.name, batch, mode)
				b.Run(prefix+"latency", func(b *testing.B) {
					var p50 [2][]float64
					lat := make([]time.Duration, lingerWindow)
					warm(b, predict)
					for round := range max(b.N, 3) {
						for k := range settings {
							v := k ^ round&1
							kernels.SetLinger(settings[v])
							for i := range lat {
								t0 := time.Now()
								if err := predict(); err != nil {
									b.Fatal(err)
								}
								lat[i] = time.Since(t0)
							}
							p50[v] = append(p50[v], median(lat))
						}
					}
					stats.Median(b, p50[0], "park-p50-µs")
					stats.Median(b, p50[1], "linger-p50-µs")
					stats.Ratio(b, "park/linger", p50[0], p50[1])
				})
				b.Run(prefix+"throughput", func(b *testing.B) {
					var rate [2][]float64
					warm(b, predict)
					for round := range max(b.N, 3) {
						for k := range settings {
							v := k ^ round&1
							kernels.SetLinger(settings[v])
							rate[v] = append(rate[v], float64(batch)*callsPerSecond(b, predict, lingerLoad))
						}
					}
					stats.Median(b, rate[0], "park-rows/s")
					stats.Median(b, rate[1], "linger-rows/s")
					stats.Ratio(b, "linger/park", rate[1], rate[0])
				})
			}
		}
	}
}

// warm runs op 50 times.
func warm(b *testing.B, op func() error) {
	for range 50 {
		if err := op(); err != nil {
			b.Fatal(err)
		}
	}
}

// callsPerSecond runs op from 2 x GOMAXPROCS goroutines until d has
// passed and returns how many calls per second completed.
func callsPerSecond(b *testing.B, op func() error, d time.Duration) float64 {
	var (
		n  atomic.Int64
		wg sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(d)
	for range 2 * runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if err := op(); err != nil {
					b.Error(err)
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(n.Load()) / time.Since(start).Seconds()
}
