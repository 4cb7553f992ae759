package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	corvid "github.com/corvidml/corvid/client/go"
	corvidv1 "github.com/corvidml/corvid/gen/go/corvid/v1"
	"github.com/corvidml/corvid/server"
	"github.com/corvidml/corvid/server/config"
	"github.com/corvidml/corvid/server/tlsconfig"
)

// mtlsFiles makes a CA, a server certificate for 127.0.0.1 and a client
// certificate in a temp folder; it returns the server's tls settings and
// the client's TLS configuration.
func mtlsFiles(b *testing.B) (tlsconfig.Config, *tls.Config) {
	b.Helper()
	dir := b.TempDir()
	ca, err := tlsconfig.NewCA("bench CA", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	srv, err := ca.Issue(tlsconfig.Leaf{CommonName: "localhost", IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, Server: true})
	if err != nil {
		b.Fatal(err)
	}
	cli, err := ca.Issue(tlsconfig.Leaf{CommonName: "bench", URIs: []*url.URL{{Scheme: "spiffe", Host: "corvid.local", Path: "/bench"}}, Client: true})
	if err != nil {
		b.Fatal(err)
	}
	cfg := tlsconfig.Config{
		CertFile: filepath.Join(dir, "server.pem"), KeyFile: filepath.Join(dir, "server-key.pem"),
		ClientCAFile: filepath.Join(dir, "ca.pem"), ClientAuth: tlsconfig.ClientAuthRequire,
	}
	if err := srv.WriteFiles(cfg.CertFile, cfg.KeyFile); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(cfg.ClientCAFile, ca.CertPEM, 0o644); err != nil {
		b.Fatal(err)
	}
	pair, err := tls.X509KeyPair(cli.CertPEM, cli.KeyPEM)
	if err != nil {
		b.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	return cfg, &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}}
}

// serveWith serves the embedded model with the given tls settings and
// waits until it is ready; creds are the client's transport credentials.
func serveWith(b *testing.B, tc tlsconfig.Config, creds credentials.TransportCredentials) *server.Server {
	b.Helper()
	cfg := config.Default()
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.TLS.Config = tc
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
	conn, err := grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(creds))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	for deadline := time.Now().Add(60 * time.Second); ; {
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return srv
		}
		if time.Now().After(deadline) {
			b.Fatalf("server not ready after 60 s: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// p50 runs op b.N times after a warm-up, reports p50 and p99 in µs, and
// returns p50.
func p50(b *testing.B, op func() error) float64 {
	b.Helper()
	for range 20 {
		if err := op(); err != nil {
			b.Fatal(err)
		}
	}
	lat := make([]time.Duration, 0, b.N)
	for b.Loop() {
		t0 := time.Now()
		if err := op(); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	return pct(0.50)
}

// BenchmarkTLS compares, in one run, a plaintext server with an mTLS one
// (client_auth require, TLS 1.3, ECDSA P-256): Predict at batch 1 on a
// kept connection over gRPC and REST, and a health check on a new
// connection per op, whose difference is the handshake cost
// (handshake-µs on the mtls new-conn line).
func BenchmarkTLS(b *testing.B) {
	tc, clientTLS := mtlsFiles(b)
	modes := []struct {
		name  string
		creds credentials.TransportCredentials
		tls   tlsconfig.Config
		https *tls.Config // nil: plain HTTP
	}{
		{"plaintext", insecure.NewCredentials(), tlsconfig.Config{}, nil},
		{"mtls", credentials.NewTLS(clientTLS), tc, clientTLS},
	}
	x := sample(b)
	in := map[string]*corvidv1.Tensor{"input": corvid.Float32Tensor(x, 1, 64)}
	body, err := os.ReadFile(filepath.Join("..", "examples", "digits", "request.json"))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var plainNewConn float64
	for _, m := range modes {
		srv := serveWith(b, m.tls, m.creds)
		b.Run(m.name+"/grpc-predict-digits-b1", func(b *testing.B) {
			c, err := corvid.Dial(srv.GRPCAddr(), corvid.WithTransportCredentials(m.creds))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			p50(b, func() error {
				_, err := c.Predict(ctx, "digits", in)
				return err
			})
		})
		b.Run(m.name+"/rest-predict-digits-b1", func(b *testing.B) {
			scheme := "http://"
			tr := &http.Transport{}
			if m.https != nil {
				scheme, tr = "https://", &http.Transport{TLSClientConfig: m.https, ForceAttemptHTTP2: true}
			}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			url := scheme + srv.HTTPAddr() + "/v1/models/digits:predict"
			p50(b, func() error {
				resp, err := client.Post(url, "application/json", bytes.NewReader(body))
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				_, err = io.Copy(io.Discard, resp.Body)
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("REST status %d", resp.StatusCode)
				}
				return err
			})
		})
		b.Run(m.name+"/new-conn-health-check", func(b *testing.B) {
			got := p50(b, func() error {
				conn, err := grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(m.creds))
				if err != nil {
					return err
				}
				defer conn.Close()
				_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
				return err
			})
			if m.https == nil {
				plainNewConn = got
			} else if plainNewConn > 0 {
				b.ReportMetric(got-plainNewConn, "handshake-µs")
			}
		})
	}
}
