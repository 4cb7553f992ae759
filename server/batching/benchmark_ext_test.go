package batching_test

import (
	"context"
	"fmt"
	goruntime "runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corvidml/corvid/server/batching"
	"github.com/corvidml/corvid/server/tensor"
)

// BenchmarkDigits64Callers: 64 concurrent callers of one row each on the
// digits MLP, straight to the runtime and through batchers. Reports
// rows/s, the callers' p50 and p99 latency, and the process CPU time per
// row (steadier than the wall clock on a shared machine). "flushed" is the
// same model with its subnormal weights set to zero (see digitsModel).
//
//	go test -run '^$' -bench Digits64Callers -benchtime 40000x -count 3 ./server/batching/
func BenchmarkDigits64Callers(b *testing.B) {
	for _, flush := range []bool{false, true} {
		name := "digits"
		if flush {
			name = "digits-flushed"
		}
		b.Run(name, func(b *testing.B) { benchCallers(b, flush) })
	}
}

func benchCallers(b *testing.B, flush bool) {
	const callers = 64
	workers := goruntime.GOMAXPROCS(0)
	m := digitsModel(b, workers, flush)
	defer m.Close()
	reqs := make([]map[string]*tensor.Tensor, 256)
	for i := range reqs {
		reqs[i] = digitsRequest(uint64(i))
	}
	type runner func(context.Context, map[string]*tensor.Tensor, []string) (map[string]*tensor.Tensor, error)
	cases := []struct {
		name string
		cfg  *batching.Config
	}{
		{"unbatched", nil},
		{"delay=0", &batching.Config{MaxBatchSize: 64, Concurrency: workers}},
		{"delay=1ms", &batching.Config{MaxBatchSize: 64, MaxQueueDelay: time.Millisecond, Concurrency: workers}},
		{"delay=1ms/preferred=32,64", &batching.Config{MaxBatchSize: 64, MaxQueueDelay: time.Millisecond, PreferredBatchSizes: []int{32, 64}, Concurrency: workers}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			run := runner(m.Run)
			var bt *batching.Batcher
			if c.cfg != nil {
				var err error
				if bt, err = batching.New(m, *c.cfg); err != nil {
					b.Fatal(err)
				}
				defer bt.Close()
				run = bt.Run
			}
			var next atomic.Int64
			lat := make([][]time.Duration, callers)
			var wg sync.WaitGroup
			b.ResetTimer()
			cpu0 := cpuTime()
			start := time.Now()
			for g := range callers {
				wg.Go(func() {
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						t0 := time.Now()
						if _, err := run(context.Background(), reqs[i%int64(len(reqs))], nil); err != nil {
							b.Error(err)
							return
						}
						lat[g] = append(lat[g], time.Since(t0))
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			cpu := cpuTime() - cpu0
			b.StopTimer()
			all := slices.Sorted(slices.Values(slices.Concat(lat...)))
			if len(all) == 0 {
				return
			}
			b.ReportMetric(float64(len(all))/elapsed.Seconds(), "rows/s")
			b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
			b.ReportMetric(float64(cpu.Microseconds())/float64(len(all)), "cpu-µs/row")
			if bt != nil {
				s := bt.Stats()
				b.ReportMetric(s.MeanBatchRows, "rows/batch")
				if testing.Verbose() {
					fmt.Printf("%s: %d batches, mean %.1f rows, max %d, queue p50 %v p99 %v\n", c.name, s.Batches, s.MeanBatchRows, s.MaxBatchRows, s.QueueTimeP50, s.QueueTimeP99)
				}
			}
		})
	}
}
