package tlsconfig_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"

	"github.com/corvidml/corvid/server/tlsconfig"
)

// serveGRPC runs a gRPC server with the health service on loopback, using
// the Reloader's configuration the way the server does; calls from a
// connection without an identity fail.
func serveGRPC(t *testing.T, r *tlsconfig.Reloader) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(grpc.Creds(credentials.NewTLS(r.ServerConfig("h2"))), grpc.UnaryInterceptor(requireIdentity))
	healthpb.RegisterHealthServer(s, health.NewServer())
	var wg sync.WaitGroup
	wg.Go(func() { s.Serve(l) })
	t.Cleanup(func() {
		s.Stop()
		wg.Wait()
	})
	return l.Addr().String()
}

// requireIdentity refuses calls whose connection carries no identity: the
// gRPC view of Identity.
func requireIdentity(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil, errors.New("no peer")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return nil, errors.New("not TLS")
	}
	if _, ok := tlsconfig.Identity(&info.State); !ok {
		return nil, errors.New("no identity")
	}
	return h(ctx, req)
}

// serialRecorder remembers the server certificate serials clients saw.
type serialRecorder struct {
	mu   sync.Mutex
	seen map[string]int
}

func (s *serialRecorder) verify(cs tls.ConnectionState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen == nil {
		s.seen = map[string]int{}
	}
	s.seen[serial(cs)]++
	return nil
}

func (s *serialRecorder) count(serial string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[serial]
}

func check(ctx context.Context, conn *grpc.ClientConn) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return err
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return errors.New(resp.GetStatus().String())
	}
	return nil
}

func TestGRPCHandshake(t *testing.T) {
	p := newPKI(t, tlsconfig.ClientAuthRequire)
	r := load(t, p.cfg, nil)
	addr := serveGRPC(t, r)
	other := newCA(t, "other")
	now := time.Now()
	tls12 := func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 }
	tests := []struct {
		name   string
		cert   *tlsconfig.KeyPair
		tweak  func(*tls.Config)
		wantOK bool
	}{
		{name: "valid", cert: client(t, p.ca, "alice", "spiffe://corvid.local/alice", time.Time{}, time.Time{}), wantOK: true},
		{name: "no client cert"},
		{name: "other CA", cert: client(t, other, "alice", "", time.Time{}, time.Time{})},
		{name: "expired", cert: client(t, p.ca, "alice", "", now.Add(-48*time.Hour), now.Add(-time.Hour))},
		{name: "TLS 1.2 client", cert: client(t, p.ca, "alice", "", time.Time{}, time.Time{}), tweak: tls12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc := clientConfig(t, p.ca, tt.cert)
			if tt.tweak != nil {
				tt.tweak(cc)
			}
			conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cc)))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			err = check(t.Context(), conn)
			if ok := err == nil; ok != tt.wantOK {
				t.Fatalf("Check() = %v, want ok = %v", err, tt.wantOK)
			}
		})
	}
}

// TestRotationUnderTraffic replaces the server certificate several times
// while clients keep opening new connections and sending requests on a
// long-lived one: no request fails, and new handshakes see each new
// certificate.
func TestRotationUnderTraffic(t *testing.T) {
	p := newPKI(t, tlsconfig.ClientAuthRequire)
	r := load(t, p.cfg, nil)
	addr := serveGRPC(t, r)
	ctx, cancel := context.WithCancel(context.Background())
	var watch sync.WaitGroup
	watch.Go(func() { r.Watch(ctx, 5*time.Millisecond) })
	defer func() {
		cancel()
		watch.Wait()
	}()

	var seen serialRecorder
	cc := clientConfig(t, p.ca, client(t, p.ca, "alice", "spiffe://corvid.local/alice", time.Time{}, time.Time{}))
	cc.VerifyConnection = seen.verify
	creds := grpc.WithTransportCredentials(credentials.NewTLS(cc))

	long, err := grpc.NewClient(addr, creds)
	if err != nil {
		t.Fatal(err)
	}
	defer long.Close()

	var requests, failures atomic.Int64
	var firstFailure atomic.Value
	fail := func(err error) {
		failures.Add(1)
		firstFailure.CompareAndSwap(nil, err)
	}
	stop := make(chan struct{})
	var traffic sync.WaitGroup
	traffic.Go(func() { // one long-lived connection
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := check(context.Background(), long); err != nil {
				fail(err)
			}
			requests.Add(1)
		}
	})
	for range 2 { // new connections, one request each
		traffic.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				conn, err := grpc.NewClient(addr, creds)
				if err != nil {
					fail(err)
					continue
				}
				if err := check(context.Background(), conn); err != nil {
					fail(err)
				}
				requests.Add(1)
				conn.Close()
			}
		})
	}

	waitSeen := func(serial string, n int) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); seen.count(serial) < n; {
			if time.Now().After(deadline) {
				close(stop)
				traffic.Wait()
				t.Fatalf("timed out waiting for %d handshakes with serial %s", n, serial)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	waitSeen(p.server.Cert.SerialNumber.String(), 5)
	const rotations = 3
	for range rotations {
		kp := p.rotateServer(t)
		waitSeen(kp.Cert.SerialNumber.String(), 10)
	}
	close(stop)
	traffic.Wait()

	if n := failures.Load(); n != 0 {
		t.Errorf("%d of %d requests failed during %d rotations; first: %v", n, requests.Load(), rotations, firstFailure.Load())
	}
	t.Logf("%d requests over %d rotations", requests.Load(), rotations)
}

// TestREST serves HTTP/2 and HTTP/1.1 from one http.Server whose TLSConfig
// is ServerConfig, as the REST gateway does.
func TestREST(t *testing.T) {
	p := newPKI(t, tlsconfig.ClientAuthRequire)
	r := load(t, p.cfg, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		TLSConfig:         r.ServerConfig(),
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			id, _ := tlsconfig.Identity(req.TLS)
			w.Header().Set("X-Identity", id)
		}),
	}
	var wg sync.WaitGroup
	wg.Go(func() { srv.ServeTLS(l, "", "") })
	defer func() {
		srv.Shutdown(context.Background())
		wg.Wait()
	}()
	alice := client(t, p.ca, "alice", "spiffe://corvid.local/alice", time.Time{}, time.Time{})
	tests := []struct {
		name      string
		http2     bool
		wantProto int
	}{
		{name: "HTTP/2", http2: true, wantProto: 2},
		{name: "HTTP/1.1", http2: false, wantProto: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc := clientConfig(t, p.ca, alice)
			tr := &http.Transport{TLSClientConfig: cc, ForceAttemptHTTP2: tt.http2}
			if !tt.http2 {
				cc.NextProtos = []string{"http/1.1"}
			}
			defer tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + l.Addr().String() + "/")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.ProtoMajor != tt.wantProto {
				t.Errorf("protocol HTTP/%d, want HTTP/%d", resp.ProtoMajor, tt.wantProto)
			}
			if got, want := resp.Header.Get("X-Identity"), "spiffe://corvid.local/alice"; got != want {
				t.Errorf("identity %q, want %q", got, want)
			}
		})
	}
}
