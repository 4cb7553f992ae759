package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corvid "github.com/corvidml/corvid/client/go"
	corvidv1 "github.com/corvidml/corvid/gen/go/corvid/v1"
)

// BenchmarkSDKs compares the Go and the Python SDK against one server (in
// this process), Predict of the embedded digits model at batch 1.
//
// Every client runs in a process of its own, under the same conditions: the
// Go SDK in a copy of this test binary (TestSDKWorker), the Python SDK and
// the bare generated Python stub in client/python/bench_client.py --worker,
// and the Python SDK once more in a process started with
// GRPC_EXPERIMENTS=-event_engine_client. Each connects and warms up before
// anything is timed, then times only its calls, on command over stdin. The
// configurations take turns in rounds, so load from elsewhere on the machine
// hits all of them alike; the Go SDK calling from inside the server's own
// process is one more row, for reference.
//
//   - alternating: b.N sequential calls per configuration, in 10 rounds:
//     p50 of each, SDK/Go and SDK/stub.
//   - alternating-16-callers: b.N calls per configuration over 16 goroutines
//     (Go) or 16 threads sharing one Client (Python), in 4 rounds: rows/s.
//
// The Python half needs the venv with the SDK installed (`make tools`).
func BenchmarkSDKs(b *testing.B) {
	srv := serve(b)
	addr := srv.GRPCAddr()
	c, err := corvid.Dial(addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	in := map[string]*corvidv1.Tensor{"input": corvid.Float32Tensor(sample(b), 1, 64)}
	inProcess := func(n int) []float64 { return goLatencies(b, c, in, n) }

	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	goW := startWorker(b, []string{"CORVID_SDK_WORKER_TARGET=" + addr}, self, "-test.run=^TestSDKWorker$")
	type config struct {
		name string
		lat  func(n int) []float64
	}
	configs := []config{
		{"Go SDK", func(n int) []float64 { return goW.latencies(b, "sdk", n) }},
		{"Go SDK, in the server's process", inProcess},
	}
	type callers struct {
		name string
		w    *worker
	}
	parallel := []callers{{"Go SDK, 16 goroutines", goW}}

	py := filepath.Join("..", ".venv", "bin", "python")
	if _, err := os.Stat(py); err != nil {
		b.Logf("no %s: the Python half is left out (make tools builds it)", py)
	} else {
		script := filepath.Join("..", "client", "python", "bench_client.py")
		pyW := startWorker(b, nil, py, script, "--worker", "--target", addr)
		eeW := startWorker(b, []string{"GRPC_EXPERIMENTS=-event_engine_client"}, py, script, "--worker", "--target", addr)
		configs = append(configs,
			config{"Python Client.predict", func(n int) []float64 { return pyW.latencies(b, "sdk", n) }},
			config{"Python bare stub, pre-encoded request", func(n int) []float64 { return pyW.latencies(b, "stub", n) }},
			config{"Python Client.predict, GRPC_EXPERIMENTS=-event_engine_client", func(n int) []float64 { return eeW.latencies(b, "sdk", n) }},
		)
		parallel = append(parallel,
			callers{"Python Client.predict, 16 threads", pyW},
			callers{"Python Client.predict, 16 threads, GRPC_EXPERIMENTS=-event_engine_client", eeW},
		)
	}

	b.Run("alternating", func(b *testing.B) {
		const rounds = 10
		chunk := max(1, b.N/rounds)
		lat := make([][]float64, len(configs))
		for r := range rounds {
			for i := range configs {
				k := (i + r) % len(configs) // a different one goes first each round
				lat[k] = append(lat[k], configs[k].lat(chunk)...)
			}
		}
		p50 := make([]float64, len(configs))
		var table strings.Builder
		fmt.Fprintf(&table, "%-62s %6s %7s %7s %7s %6s\n", "sequential, batch 1 (µs)", "n", "p50", "p90", "p99", "/Go")
		for i, l := range lat {
			slices.Sort(l)
			p50[i] = pct(l, 0.50)
			fmt.Fprintf(&table, "%-62s %6d %7.0f %7.0f %7.0f %5.2fx\n",
				configs[i].name, len(l), p50[i], pct(l, 0.90), pct(l, 0.99), p50[i]/p50[0])
		}
		b.ReportMetric(0, "ns/op") // the loop times five clients; ns/op means nothing
		b.ReportMetric(p50[0], "go-p50-µs")
		if len(configs) > 2 {
			sdk, stub, ee := p50[2], p50[3], p50[4]
			b.ReportMetric(sdk, "py-sdk-p50-µs")
			b.ReportMetric(stub, "py-stub-p50-µs")
			b.ReportMetric(ee, "py-sdk-ee-p50-µs")
			b.ReportMetric(sdk/p50[0], "sdk/go")
			b.ReportMetric(sdk/stub, "sdk/stub")
			fmt.Fprintf(&table, "Python SDK/Go %.2fx, SDK/bare stub %.2fx; with GRPC_EXPERIMENTS=-event_engine_client SDK/Go %.2fx\n",
				sdk/p50[0], sdk/stub, ee/p50[0])
		}
		if b.N > 1 {
			b.Logf("one server, clients in turn, %d rounds:\n%s", rounds, table.String())
		}
	})

	b.Run("alternating-16-callers", func(b *testing.B) {
		const rounds, threads = 4, 16
		n := max(threads, b.N/rounds)
		seconds := make([]float64, len(parallel))
		calls := n / threads * threads
		for r := range rounds {
			for i := range parallel {
				k := (i + r) % len(parallel)
				seconds[k] += float64(calls) / parallel[k].w.throughput(b, "sdk", threads, n)
			}
		}
		var table strings.Builder
		fmt.Fprintf(&table, "%-72s %9s\n", "16 concurrent callers, batch 1", "rows/s")
		rate := make([]float64, len(parallel))
		for i, s := range seconds {
			rate[i] = float64(rounds*calls) / s
			fmt.Fprintf(&table, "%-72s %9.0f\n", parallel[i].name, rate[i])
		}
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(rate[0], "go-rows/s")
		if len(parallel) > 1 {
			b.ReportMetric(rate[1], "py-sdk-rows/s")
			b.ReportMetric(rate[2], "py-sdk-ee-rows/s")
		}
		if b.N > 1 {
			b.Logf("one server, clients in turn, %d rounds of %d calls each:\n%s", rounds, calls, table.String())
		}
	})
}

func pct(sorted []float64, p float64) float64 {
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

// goLatencies times n sequential Predict calls, in µs each.
func goLatencies(tb testing.TB, c *corvid.Client, in map[string]*corvidv1.Tensor, n int) []float64 {
	ctx := context.Background()
	lat := make([]float64, n)
	for i := range lat {
		t0 := time.Now()
		if _, err := c.Predict(ctx, "digits", in); err != nil {
			tb.Fatal(err)
		}
		lat[i] = float64(time.Since(t0).Nanoseconds()) / 1e3
	}
	return lat
}

// goThroughput makes n Predict calls (rounded down to a multiple of
// callers) from that many goroutines at once, and returns calls per second.
func goThroughput(tb testing.TB, c *corvid.Client, in map[string]*corvidv1.Tensor, callers, n int) float64 {
	ctx := context.Background()
	per := n / callers
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for range per {
				if _, err := c.Predict(ctx, "digits", in); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(t0)
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
	return float64(callers*per) / elapsed.Seconds()
}

// A worker is a client process that times calls on command (the protocol
// of bench_client.py --worker, which TestSDKWorker speaks too).
type worker struct {
	in  io.WriteCloser
	out *bufio.Scanner
}

// startWorker starts a worker with env added to this process's environment
// and waits until it has connected and warmed up.
func startWorker(b *testing.B, env []string, name string, args ...string) *worker {
	b.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		in.Close() // the worker exits at the end of its input
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	w := &worker{in: in, out: bufio.NewScanner(out)}
	w.out.Buffer(nil, 64<<20)
	if line := w.read(b); line != "ready" {
		b.Fatalf("%s: %q, want ready", name, line)
	}
	return w
}

func (w *worker) read(b *testing.B) string {
	b.Helper()
	if !w.out.Scan() {
		b.Fatalf("worker exited: %v", w.out.Err())
	}
	return w.out.Text()
}

func (w *worker) ask(b *testing.B, format string, args ...any) string {
	b.Helper()
	if _, err := fmt.Fprintf(w.in, format+"\n", args...); err != nil {
		b.Fatal(err)
	}
	return w.read(b)
}

func (w *worker) latencies(b *testing.B, mode string, n int) []float64 {
	var lat []float64
	if err := json.Unmarshal([]byte(w.ask(b, "lat %s %d", mode, n)), &lat); err != nil {
		b.Fatal(err)
	}
	return lat
}

func (w *worker) throughput(b *testing.B, mode string, callers, n int) float64 {
	rate, err := strconv.ParseFloat(w.ask(b, "tput %s %d %d", mode, callers, n), 64)
	if err != nil {
		b.Fatal(err)
	}
	return rate
}

// TestSDKWorker is BenchmarkSDKs's Go client process: it runs only in the
// copy of the test binary the benchmark starts, with the server's address
// in $CORVID_SDK_WORKER_TARGET, and answers on stdout what stdin asks:
// "lat sdk N" (a JSON list of µs per call) or "tput sdk CALLERS N" (calls/s).
func TestSDKWorker(t *testing.T) {
	target := os.Getenv("CORVID_SDK_WORKER_TARGET")
	if target == "" {
		t.Skip("BenchmarkSDKs's client process")
	}
	raw, err := os.ReadFile(filepath.Join("..", "testdata", "digits", "heldout.json"))
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Inputs [][]float32 `json:"inputs"`
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	c, err := corvid.Dial(target)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	in := map[string]*corvidv1.Tensor{"input": corvid.Float32Tensor(h.Inputs[0], 1, 64)}
	goLatencies(t, c, in, 300) // warm up, as the Python worker does
	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintln(out, "ready")
	out.Flush()
	lines := bufio.NewScanner(os.Stdin)
	for lines.Scan() {
		f := strings.Fields(lines.Text())
		switch {
		case len(f) == 3 && f[0] == "lat" && f[1] == "sdk":
			n, _ := strconv.Atoi(f[2])
			enc, _ := json.Marshal(goLatencies(t, c, in, n))
			fmt.Fprintf(out, "%s\n", enc)
		case len(f) == 4 && f[0] == "tput" && f[1] == "sdk":
			callers, _ := strconv.Atoi(f[2])
			n, _ := strconv.Atoi(f[3])
			fmt.Fprintf(out, "%g\n", goThroughput(t, c, in, callers, n))
		default:
			t.Fatalf("unknown command %q", lines.Text())
		}
		out.Flush()
	}
}
