package bench

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildBinary builds cmd/corvid once into a temporary folder.
func buildBinary(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "corvid")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/corvid").CombinedOutput()
	if err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startProcess runs `corvid serve` on ephemeral loopback ports and returns
// once its log says it is ready, with the time that took.
func startProcess(b *testing.B, bin string) (*exec.Cmd, time.Duration) {
	b.Helper()
	cmd := exec.Command(bin, "serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	ready := make(chan time.Duration, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "msg=ready") {
				ready <- time.Since(t0)
			}
		}
	}()
	select {
	case d := <-ready:
		return cmd, d
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		b.Fatal("corvid serve not ready after 30 s")
		return nil, 0
	}
}

func stopProcess(b *testing.B, cmd *exec.Cmd) {
	b.Helper()
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			b.Errorf("corvid serve exited with %v after SIGTERM", err)
		}
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		b.Error("corvid serve did not exit 15 s after SIGTERM")
	}
}

// BenchmarkColdStart measures exec of the binary to "ready" (default model
// AVAILABLE, health SERVING), as the process's own log reports it.
func BenchmarkColdStart(b *testing.B) {
	bin := buildBinary(b)
	var all []time.Duration
	for b.Loop() {
		cmd, d := startProcess(b, bin)
		all = append(all, d)
		b.StopTimer()
		stopProcess(b, cmd)
		b.StartTimer()
	}
	slices.Sort(all)
	b.ReportMetric(float64(all[len(all)/2].Microseconds())/1e3, "p50-ms-to-ready")
}

// BenchmarkIdleRSS reports the resident memory of `corvid serve` with the
// default model, idle, one second after it became ready.
func BenchmarkIdleRSS(b *testing.B) {
	bin := buildBinary(b)
	var rss []float64
	for b.Loop() {
		cmd, _ := startProcess(b, bin)
		b.StopTimer()
		time.Sleep(time.Second)
		rss = append(rss, readRSS(b, cmd.Process.Pid))
		stopProcess(b, cmd)
		b.StartTimer()
	}
	slices.Sort(rss)
	b.ReportMetric(rss[len(rss)/2], "idle-RSS-MB")
}

func readRSS(b *testing.B, pid int) float64 {
	b.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb / 1024
		}
	}
	b.Fatal("no VmRSS in /proc status")
	return 0
}
