package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	corvid "github.com/corvidml/corvid/client/go"
	corvidv1 "github.com/corvidml/corvid/gen/go/corvid/v1"
)

// writeRepo writes model files and model.yaml texts into a repository
// folder: files maps "<model>/<rel path>" to contents.
func writeRepo(b *testing.B, files map[string][]byte) string {
	b.Helper()
	dir := b.TempDir()
	for rel, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

// load runs clients concurrent callers, each sending single-row requests
// back to back, for b.N requests in all, and reports throughput (rows/s)
// and the p50 and p99 latency over every request.
func load(b *testing.B, clients int, call func() error) {
	b.Helper()
	for range 20 {
		if err := call(); err != nil {
			b.Fatal(err)
		}
	}
	var mu sync.Mutex
	lat := make([]time.Duration, 0, b.N)
	next := make(chan struct{}, b.N)
	for range b.N {
		next <- struct{}{}
	}
	close(next)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := make([]time.Duration, 0, b.N/clients+1)
			for range next {
				t0 := time.Now()
				if err := call(); err != nil {
					b.Error(err)
					return
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds())
	}
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "rows/s")
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}

// BenchmarkBatching serves the digits model and the 768-3072-768 MLP with
// and without dynamic batching (model.yaml batching, 1 ms max_queue_delay,
// preferred batch sizes 32 and 64) and drives each with 64 concurrent
// clients sending one row at a time.
func BenchmarkBatching(b *testing.B) {
	digits, err := os.ReadFile(filepath.Join("..", "models", "digits", "1", "model.onnx"))
	if err != nil {
		b.Fatal(err)
	}
	mlp := mlpModel(b, 768, 3072, 768)
	batched := []byte("batching: {max_batch_size: 64, max_queue_delay: 1ms, preferred_batch_sizes: [32, 64], max_queue_size: 4096}\n")
	dir := writeRepo(b, map[string][]byte{
		"digits/1/model.onnx":         digits,
		"digits-batched/1/model.onnx": digits,
		"digits-batched/model.yaml":   batched,
		"mlp768/1/model.onnx":         mlp,
		"mlp768-batched/1/model.onnx": mlp,
		"mlp768-batched/model.yaml":   batched,
	})
	addr := serveDir(b, dir).GRPCAddr()
	c, err := corvid.Dial(addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	r := rand.New(rand.NewPCG(1, 2))
	for _, m := range []struct {
		name, input string
		width       int64
	}{{"digits", "input", 64}, {"mlp768", "x", 768}} {
		x := make([]float32, m.width)
		for i := range x {
			x[i] = float32(r.Float64() * 4)
		}
		in := map[string]*corvidv1.Tensor{m.input: corvid.Float32Tensor(x, 1, m.width)}
		for _, name := range []string{m.name, m.name + "-batched"} {
			b.Run(fmt.Sprintf("%s/clients=64", name), func(b *testing.B) {
				load(b, 64, func() error {
					_, err := c.Predict(ctx, name, in)
					return err
				})
			})
		}
	}
}

// BenchmarkShadowCost measures the digits model's latency one request at a
// time, alone and with every request mirrored to a shadow version that is
// far slower (the 64-2048-2048-10 MLP below: its queue is always full, so
// most copies are dropped and counted).
func BenchmarkShadowCost(b *testing.B) {
	digits, err := os.ReadFile(filepath.Join("..", "models", "digits", "1", "model.onnx"))
	if err != nil {
		b.Fatal(err)
	}
	dir := writeRepo(b, map[string][]byte{
		"plain/1/model.onnx":    digits,
		"shadowed/1/model.onnx": digits,
		"shadowed/2/model.onnx": slowDigitsModel(b),
		"shadowed/model.yaml":   []byte("routing: {shadow: {version: 2, sample: 1.0, queue_size: 8, timeout: 2s}}\n"),
	})
	addr := serveDir(b, dir).GRPCAddr()
	c, err := corvid.Dial(addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	in := map[string]*corvidv1.Tensor{"input": corvid.Float32Tensor(sample(b), 1, 64)}
	for _, name := range []string{"plain", "shadowed", "plain", "shadowed"} {
		b.Run(name, func(b *testing.B) {
			measure(b, func() error {
				_, err := c.Predict(ctx, name, in)
				return err
			})
		})
	}
	st, err := c.ModelStatus(ctx, "shadowed")
	if err != nil {
		b.Fatal(err)
	}
	sh := st.GetVersions()[1].GetShadow()
	b.Logf("shadow: offered %d, dropped %d, compared %d, agreement %.3f, latency p50 %v",
		sh.GetOffered(), sh.GetDropped(), sh.GetCompared(), sh.GetAgreement(), sh.GetLatencyP50().AsDuration())
}
