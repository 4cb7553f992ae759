package bench

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	corvid "github.com/corvidml/corvid/client/go"
	corvidv1 "github.com/corvidml/corvid/gen/go/corvid/v1"
)

// BenchmarkSDKs times the Go SDK and then the Python SDK against the same
// server in one run: Predict at batch 1 one request at a time (p50, p99)
// and with 16 concurrent callers (rows/s). The Python figures come from
// client/python/bench_client.py, run against this server and printed with
// -v; it needs the venv with the SDK installed (`make pytest-client`).
func BenchmarkSDKs(b *testing.B) {
	srv := serve(b)
	c, err := corvid.Dial(srv.GRPCAddr())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	in := map[string]*corvidv1.Tensor{"input": corvid.Float32Tensor(sample(b), 1, 64)}
	predict := func() error {
		_, err := c.Predict(ctx, "digits", in)
		return err
	}
	b.Run("go/latency", func(b *testing.B) { measure(b, predict) })
	b.Run("go/16-callers", func(b *testing.B) {
		start := time.Now()
		var wg sync.WaitGroup
		per := b.N/16 + 1
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range per {
					if err := predict(); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		b.ReportMetric(float64(16*per)/time.Since(start).Seconds(), "rows/s")
	})
	py := filepath.Join("..", ".venv", "bin", "python")
	if _, err := os.Stat(py); err != nil {
		b.Logf("no %s: the Python half is left out (make pytest-client builds it)", py)
		return
	}
	out, err := exec.Command(py, filepath.Join("..", "client", "python", "bench_client.py"),
		"--target", srv.GRPCAddr(), "--n", "2000", "--seconds", "3").CombinedOutput()
	if err != nil {
		b.Fatalf("bench_client.py: %v\n%s", err, out)
	}
	b.Logf("Python SDK against the same server:\n%s", out)
}
