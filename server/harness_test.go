package server_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	corvid "github.com/corvidml/corvid/client/go"
	"github.com/corvidml/corvid/server"
	"github.com/corvidml/corvid/server/config"
)

// instance is a real server on loopback ports, stopped at test cleanup.
type instance struct {
	srv    *server.Server
	client *corvid.Client
	rest   string // http://host:port
	admin  string
	stop   func() error // cancels Serve and returns its error
}

// start serves models (nil: the embedded default) and waits until the initial
// load is over.
func start(t *testing.T, modelsDir string, edit ...func(*config.Config)) *instance {
	t.Helper()
	cfg := config.Default()
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.Models = modelsDir
	cfg.ShutdownGrace = config.Duration(5 * time.Second)
	for _, e := range edit {
		e(&cfg)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	srv, err := server.New(cfg, log)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			t.Fatal("Serve did not return 30 s after cancel")
			return nil
		}
	}
	client, err := corvid.Dial(srv.GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	in := &instance{srv: srv, client: client, rest: "http://" + srv.HTTPAddr(), admin: "http://" + srv.AdminAddr(), stop: stop}
	t.Cleanup(func() {
		client.Close()
		if err := stop(); err != nil {
			t.Errorf("Serve returned %v, want nil after cancel", err)
		}
	})
	waitLoaded(t, in)
	return in
}

// waitLoaded waits until the server's initial load is over (Loaded). No
// version LOADING is not enough: between a newest version failing and the
// one before it starting to load, none is.
func waitLoaded(t *testing.T, in *instance) {
	t.Helper()
	select {
	case <-in.srv.Loaded():
	case <-time.After(60 * time.Second):
		t.Fatal("models did not finish loading within 60 s")
	}
}

// grpcConn dials the server's gRPC port without the SDK, for health checks.
func grpcConn(t *testing.T, in *instance) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(in.srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func healthStatus(t *testing.T, conn *grpc.ClientConn) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	resp, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatalf("health check: %v", err)
	}
	return resp.GetStatus()
}

// heldout is the committed held-out split of the digits data set.
type heldout struct {
	Features int         `json:"features"`
	Inputs   [][]float32 `json:"inputs"`
	Labels   []int64     `json:"labels"`
}

func loadHeldout(t testing.TB) heldout {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "digits", "heldout.json"))
	if err != nil {
		t.Fatal(err)
	}
	var h heldout
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	if len(h.Inputs) == 0 || len(h.Inputs) != len(h.Labels) {
		t.Fatalf("heldout.json has %d inputs and %d labels", len(h.Inputs), len(h.Labels))
	}
	return h
}

// flatten returns rows [lo, hi) of the held-out set as one [n, 64] buffer.
func (h heldout) flatten(lo, hi int) []float32 {
	out := make([]float32, 0, (hi-lo)*h.Features)
	for _, row := range h.Inputs[lo:hi] {
		out = append(out, row...)
	}
	return out
}

// modelsDir makes a repository folder; files maps relative paths to contents.
func modelsDir(t *testing.T, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for rel, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func digitsModel(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "models", "digits", "1", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
