package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	corvid "github.com/corvidml/corvid/client/go"
	corvidv1 "github.com/corvidml/corvid/gen/go/corvid/v1"
	"github.com/corvidml/corvid/server"
	"github.com/corvidml/corvid/server/config"
	"github.com/corvidml/corvid/server/tlsconfig"
)

// testPKI is a CA with a server certificate for localhost and 127.0.0.1 and
// a client certificate for alice, in PEM files in a temp folder.
type testPKI struct {
	dir                   string
	ca                    *tlsconfig.CA
	caFile                string
	serverCert, serverKey string
	clientCert, clientKey string
	roots                 *x509.CertPool
	client                tls.Certificate
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	dir := t.TempDir()
	ca, err := tlsconfig.NewCA("corvid test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{
		dir: dir, ca: ca, caFile: filepath.Join(dir, "ca.pem"),
		serverCert: filepath.Join(dir, "server.pem"), serverKey: filepath.Join(dir, "server-key.pem"),
		clientCert: filepath.Join(dir, "client-alice.pem"), clientKey: filepath.Join(dir, "client-alice-key.pem"),
		roots: x509.NewCertPool(),
	}
	if err := os.WriteFile(p.caFile, ca.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	p.roots.AddCert(ca.Cert)
	p.issueServer(t)
	alice, err := ca.Issue(tlsconfig.Leaf{
		CommonName: "alice", URIs: []*url.URL{{Scheme: "spiffe", Host: "corvid.test", Path: "/alice"}}, Client: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.WriteFiles(p.clientCert, p.clientKey); err != nil {
		t.Fatal(err)
	}
	if p.client, err = tls.X509KeyPair(alice.CertPEM, alice.KeyPEM); err != nil {
		t.Fatal(err)
	}
	return p
}

// issueServer writes a new server certificate (a new serial) over the
// server's files, atomically, and returns its serial.
func (p *testPKI) issueServer(t testing.TB) *big.Int {
	t.Helper()
	kp, err := p.ca.Issue(tlsconfig.Leaf{
		CommonName: "localhost", DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, Server: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := kp.WriteFiles(p.serverCert, p.serverKey); err != nil {
		t.Fatal(err)
	}
	return kp.Cert.SerialNumber
}

// clientConfig trusts the test CA and, if withCert, presents alice's
// certificate. Sessions are not resumed: every connection is a full
// handshake.
func (p *testPKI) clientConfig(withCert bool) *tls.Config {
	cfg := &tls.Config{RootCAs: p.roots, ServerName: "localhost"}
	if withCert {
		cfg.Certificates = []tls.Certificate{p.client}
	}
	return cfg
}

// httpsClient makes a client of the REST and admin ports.
func (p *testPKI) httpsClient(withCert bool) *http.Client {
	return &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: p.clientConfig(withCert), ForceAttemptHTTP2: true},
	}
}

// tlsInstance is a server whose three ports serve TLS.
type tlsInstance struct {
	srv               *server.Server
	pki               *testPKI
	client            *corvid.Client // gRPC, with alice's certificate
	grpc, rest, admin string         // host:port
}

// startTLS serves the embedded model with TLS and client_auth require, and
// waits until it is loaded.
func startTLS(t testing.TB, edit ...func(*config.Config)) *tlsInstance {
	t.Helper()
	p := newTestPKI(t)
	cfg := config.Default()
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.ShutdownGrace = config.Duration(5 * time.Second)
	cfg.TLS.CertFile, cfg.TLS.KeyFile, cfg.TLS.ClientCAFile = p.serverCert, p.serverKey, p.caFile
	cfg.TLS.ClientAuth = tlsconfig.ClientAuthRequire
	for _, e := range edit {
		e(&cfg)
	}
	log := slog.New(slog.DiscardHandler)
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
	client, err := corvid.Dial(srv.GRPCAddr(), corvid.WithTLS(p.caFile, p.clientCert, p.clientKey))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		client.Close()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve returned %v, want nil after cancel", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Serve did not return 30 s after cancel")
		}
	})
	in := &tlsInstance{srv: srv, pki: p, client: client, grpc: srv.GRPCAddr(), rest: srv.HTTPAddr(), admin: srv.AdminAddr()}
	select {
	case <-srv.Loaded():
	case <-time.After(60 * time.Second):
		t.Fatal("models did not finish loading within 60 s")
	}
	// And the client reaches them over TLS.
	deadline := time.Now().Add(60 * time.Second)
	for {
		models, err := client.ListModels(context.Background())
		if err == nil && len(models) > 0 && !anyLoading(models) {
			return in
		}
		if time.Now().After(deadline) {
			t.Fatalf("models did not finish loading within 60 s (last error: %v)", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func digitsInput() map[string]*corvidv1.Tensor {
	return map[string]*corvidv1.Tensor{"input": corvid.Float32Tensor(make([]float32, 64), 1, 64)}
}

func restPredictBody(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "examples", "digits", "request.json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMTLS(t *testing.T) {
	in := startTLS(t)
	ctx := t.Context()

	t.Run("gRPC with a client certificate", func(t *testing.T) {
		resp, err := in.client.Predict(ctx, "digits", digitsInput())
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetModel() != "digits" || resp.GetVersion() != 1 {
			t.Errorf("response names %s v%d, want digits v1", resp.GetModel(), resp.GetVersion())
		}
	})

	t.Run("gRPC without a client certificate", func(t *testing.T) {
		c, err := corvid.Dial(in.grpc, corvid.WithTLS(in.pki.caFile, "", ""))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, err = c.Predict(ctx, "digits", digitsInput())
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("Predict: %v, want Unavailable (handshake refused)", err)
		}
	})

	t.Run("gRPC in plaintext", func(t *testing.T) {
		c, err := corvid.Dial(in.grpc)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Predict(ctx, "digits", digitsInput()); status.Code(err) != codes.Unavailable {
			t.Fatalf("Predict: %v, want Unavailable", err)
		}
	})

	// The gateway holds no client certificate and the gRPC port requires
	// one, so a REST answer proves the request went in-process.
	t.Run("REST with a client certificate", func(t *testing.T) {
		hc := in.pki.httpsClient(true)
		defer hc.CloseIdleConnections()
		resp, err := hc.Post("https://"+in.rest+"/v1/models/digits:predict", "application/json", bytes.NewReader(restPredictBody(t)))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"model":"digits"`) {
			t.Fatalf("POST :predict = %d %s, want 200 naming digits", resp.StatusCode, b)
		}
		if resp.ProtoMajor != 2 {
			t.Errorf("REST answered over %s, want HTTP/2", resp.Proto)
		}
	})

	t.Run("REST without a client certificate", func(t *testing.T) {
		hc := in.pki.httpsClient(false)
		defer hc.CloseIdleConnections()
		resp, err := hc.Get("https://" + in.rest + "/v1/models")
		if err == nil {
			resp.Body.Close()
			t.Fatalf("GET /v1/models = %d, want the TLS handshake refused", resp.StatusCode)
		}

	})

	t.Run("admin readyz over HTTPS", func(t *testing.T) {
		hc := in.pki.httpsClient(true)
		defer hc.CloseIdleConnections()
		resp, err := hc.Get("https://" + in.admin + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(b)) != "ready" {
			t.Fatalf("GET /readyz = %d %q, want 200 ready", resp.StatusCode, b)
		}
	})

	t.Run("admin gRPC over TLS", func(t *testing.T) {
		conn, err := grpc.NewClient(in.admin, grpc.WithTransportCredentials(credentials.NewTLS(in.pki.clientConfig(true))))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		idx, err := corvidv1.NewModelControlServiceClient(conn).RepositoryIndex(ctx, &corvidv1.RepositoryIndexRequest{})
		if err != nil {
			t.Fatalf("RepositoryIndex: %v", err)
		}
		if len(idx.GetModels()) == 0 {
			t.Errorf("RepositoryIndex = %v, want digits", idx)
		}
	})

	t.Run("plaintext HTTP to the REST port", func(t *testing.T) {
		resp, err := http.Get("http://" + in.rest + "/v1/models")
		if err != nil {
			return // refused outright: fine
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plaintext GET = %d, want 400 (HTTP to an HTTPS port)", resp.StatusCode)
		}
	})

	for name, addr := range map[string]string{"gRPC": in.grpc, "REST": in.rest, "admin": in.admin} {
		// In TLS 1.3 the server refuses a missing certificate after the
		// client's side of the handshake: the alert arrives on first read.
		t.Run("no client certificate refused on "+name, func(t *testing.T) {
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, in.pki.clientConfig(false))
			if err == nil {
				conn.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, err = conn.Read(make([]byte, 1))
				conn.Close()
			}
			if err == nil || !strings.Contains(err.Error(), "certificate required") {
				t.Errorf("handshake without a certificate: %v, want a certificate required alert", err)
			}
		})
		t.Run("TLS 1.2 client refused on "+name, func(t *testing.T) {
			cfg := in.pki.clientConfig(true)
			cfg.MaxVersion = tls.VersionTLS12
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
			if err == nil {
				conn.Close()
				t.Fatal("TLS 1.2 handshake succeeded, want it refused")
			}
			if !strings.Contains(err.Error(), "protocol version") {
				t.Errorf("handshake error %q, want a protocol version alert", err)
			}
		})
	}
}

// TestTLSBadConfig: a server whose certificate files do not load does not
// start.
func TestTLSBadConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.TLS.CertFile, cfg.TLS.KeyFile = filepath.Join(dir, "missing.pem"), filepath.Join(dir, "missing-key.pem")
	if _, err := server.New(cfg, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "tls.cert_file") {
		t.Fatalf("server.New = %v, want an error naming tls.cert_file", err)
	}
	cfg.TLS.KeyFile = ""
	if _, err := server.New(cfg, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "tls.key_file") {
		t.Fatalf("server.New = %v, want an error naming tls.key_file", err)
	}
}

// handshakeLog records, for every connection a client made, when it
// started and the serial of the server certificate it saw.
type handshakeLog struct {
	mu  sync.Mutex
	ops []handshake
}

type handshake struct {
	start  time.Time
	serial string
}

// config returns a client config that records the server's serial into
// the handshake started at start.
func (l *handshakeLog) config(p *testPKI, start time.Time) *tls.Config {
	cfg := p.clientConfig(true)
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		l.mu.Lock()
		l.ops = append(l.ops, handshake{start: start, serial: cs.PeerCertificates[0].SerialNumber.String()})
		l.mu.Unlock()
		return nil
	}
	return cfg
}

// TestTLSRotationUnderTraffic rewrites the server certificate while gRPC
// and REST clients keep calling, each call on a new connection: no call
// fails, and every handshake that starts once the new certificate is seen
// gets it.
func TestTLSRotationUnderTraffic(t *testing.T) {
	in := startTLS(t, func(c *config.Config) { c.TLS.ReloadInterval = config.Duration(50 * time.Millisecond) })
	body := restPredictBody(t)
	var hl handshakeLog
	var calls, failures atomic.Int64
	var firstErr atomic.Value
	fail := func(err error) {
		failures.Add(1)
		firstErr.CompareAndSwap(nil, err.Error())
	}

	grpcCall := func() {
		start := time.Now()
		conn, err := grpc.NewClient(in.grpc, grpc.WithTransportCredentials(credentials.NewTLS(hl.config(in.pki, start))))
		if err != nil {
			fail(err)
			return
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, err := corvid.NewFromConn(conn).Predict(ctx, "digits", digitsInput()); err != nil {
			fail(err)
		}
	}
	restCall := func() {
		start := time.Now()
		tr := &http.Transport{TLSClientConfig: hl.config(in.pki, start), ForceAttemptHTTP2: true, DisableKeepAlives: true}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 20 * time.Second}).Post("https://"+in.rest+"/v1/models/digits:predict", "application/json", bytes.NewReader(body))
		if err != nil {
			fail(err)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			fail(&statusError{resp.StatusCode})
		}
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, call := range []func(){grpcCall, grpcCall, restCall} {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				call()
				calls.Add(1)
			}
		})
	}

	time.Sleep(300 * time.Millisecond)
	newSerial := in.pki.issueServer(t).String()
	// Wait until a fresh handshake sees the new certificate. The server
	// switched at some moment during that handshake, so seen is when it
	// ended: a handshake that started before then, even after this one
	// started, may have been served first, with the old certificate.
	var seen time.Time
	deadline := time.Now().Add(10 * time.Second)
	for seen.IsZero() {
		start := time.Now()
		conn, err := tls.Dial("tcp", in.grpc, hl.config(in.pki, start))
		if err != nil {
			fail(err)
		} else {
			if conn.ConnectionState().PeerCertificates[0].SerialNumber.String() == newSerial {
				seen = time.Now()
			}
			conn.Close()
		}
		if time.Now().After(deadline) {
			close(stop)
			wg.Wait()
			t.Fatal("no handshake saw the new certificate within 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()

	if n := failures.Load(); n > 0 {
		t.Fatalf("%d of %d calls failed during rotation; first: %v", n, calls.Load(), firstErr.Load())
	}
	hl.mu.Lock()
	defer hl.mu.Unlock()
	var before, after int
	for _, h := range hl.ops {
		switch {
		case h.start.After(seen) && h.serial != newSerial:
			t.Errorf("a handshake started %v after the new certificate was seen got serial %s, want %s", h.start.Sub(seen), h.serial, newSerial)
		case h.serial == newSerial:
			after++
		default:
			before++
		}
	}
	t.Logf("%d calls, %d handshakes with the old certificate, %d with the new", calls.Load(), before, after)
	if before == 0 || after == 0 {
		t.Errorf("handshakes: %d old, %d new; want some of each", before, after)
	}
}

type statusError struct{ code int }

func (e *statusError) Error() string { return http.StatusText(e.code) }
