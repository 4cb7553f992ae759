package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	corvid "github.com/corvidml/corvid/client/go"
	corvidv1 "github.com/corvidml/corvid/gen/go/corvid/v1"
	"github.com/corvidml/corvid/server"
	"github.com/corvidml/corvid/server/config"
)

// serve starts the default model on loopback and waits until it is ready.
func serve(b *testing.B) *server.Server { return serveDir(b, "") }

// serveDir serves a model repository folder (the embedded default model
// when dir is empty) on loopback until the benchmark ends, once ready.
func serveDir(b *testing.B, dir string) *server.Server {
	b.Helper()
	cfg := config.Default()
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.Models = dir
	srv, err := server.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	})
	conn := dial(b, srv.GRPCAddr())
	hc := healthpb.NewHealthClient(conn)
	for deadline := time.Now().Add(60 * time.Second); ; {
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return srv
		}
		if time.Now().After(deadline) {
			b.Fatal("server not ready after 60 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func dial(b *testing.B, addr string) *grpc.ClientConn {
	b.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	return conn
}

// sample returns the first held-out digit.
func sample(b *testing.B) []float32 {
	b.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "testdata", "digits", "heldout.json"))
	if err != nil {
		b.Fatal(err)
	}
	var h struct {
		Inputs [][]float32 `json:"inputs"`
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		b.Fatal(err)
	}
	return h.Inputs[0]
}

// measure runs op b.N times, one at a time, and reports p50 and p99 in µs.
func measure(b *testing.B, op func() error) {
	b.Helper()
	for range 50 { // warm up connections and graph instances
		if err := op(); err != nil {
			b.Fatal(err)
		}
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		if err := op(); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}

// BenchmarkServing measures, in one run on one server: a bare gRPC health
// check (the floor any RPC pays), Predict at batch 1 over gRPC with the SDK,
// and the same Predict over REST.
func BenchmarkServing(b *testing.B) {
	srv := serve(b)
	x := sample(b)
	ctx := context.Background()

	b.Run("grpc-health-check", func(b *testing.B) {
		hc := healthpb.NewHealthClient(dial(b, srv.GRPCAddr()))
		measure(b, func() error {
			_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
			return err
		})
	})
	b.Run("grpc-predict-digits-b1", func(b *testing.B) {
		c, err := corvid.Dial(srv.GRPCAddr())
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		in := map[string]*corvidv1.Tensor{"input": corvid.Float32Tensor(x, 1, 64)}
		measure(b, func() error {
			_, err := c.Predict(ctx, "digits", in)
			return err
		})
	})
	b.Run("rest-predict-digits-b1", func(b *testing.B) {
		body, err := os.ReadFile(filepath.Join("..", "examples", "digits", "request.json"))
		if err != nil {
			b.Fatal(err)
		}
		url := "http://" + srv.HTTPAddr() + "/v1/models/digits:predict"
		client := &http.Client{}
		measure(b, func() error {
			resp, err := client.Post(url, "application/json", bytes.NewReader(body))
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			_, err = io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != 200 {
				b.Fatalf("REST status %d", resp.StatusCode)
			}
			return err
		})
	})
}
