package middleware

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/corvidml/corvid/server/auth"
	"github.com/corvidml/corvid/server/gateway/inproc"
	"github.com/corvidml/corvid/server/ratelimit"
	"github.com/corvidml/corvid/server/tlsconfig"
)

// authServer serves the health service over TLS (client certificates
// requested, not required) behind a, and records the identity each
// admitted call carried.
func authServer(t *testing.T, a *Authenticator) (addr string, ca *tlsconfig.CA, seen chan auth.Identity) {
	t.Helper()
	dir := t.TempDir()
	ca, err := tlsconfig.NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.Issue(tlsconfig.Leaf{CommonName: "server", IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.WriteFiles(filepath.Join(dir, "s.pem"), filepath.Join(dir, "s-key.pem")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), ca.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := tlsconfig.Load(tlsconfig.Config{CertFile: filepath.Join(dir, "s.pem"), KeyFile: filepath.Join(dir, "s-key.pem"),
		ClientCAFile: filepath.Join(dir, "ca.pem"), ClientAuth: tlsconfig.ClientAuthRequest}, nil)
	if err != nil {
		t.Fatal(err)
	}
	seen = make(chan auth.Identity, 16)
	record := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		id, _ := IdentityFrom(ctx)
		seen <- id
		return h(ctx, req)
	}
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(r.ServerConfig("h2"))), grpc.ChainUnaryInterceptor(a.Unary(), record))
	healthpb.RegisterHealthServer(gs, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	return lis.Addr().String(), ca, seen
}

func dialTLS(t *testing.T, addr string, ca *tlsconfig.CA, client *tlsconfig.KeyPair) healthpb.HealthClient {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13}
	if client != nil {
		cert, err := tls.X509KeyPair(client.CertPEM, client.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return healthpb.NewHealthClient(conn)
}

// jwtSetup writes a one-key JWKS and returns a verifier and a token signer.
func jwtSetup(t *testing.T) (*auth.Verifier, func(sub string) string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Algorithm: "ES256", Use: "sig"}}}
	b, _ := json.Marshal(set)
	p := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(auth.JWTConfig{KeysFile: p, Issuer: "corvid-test", Audience: "corvid"})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: "k1"}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	return v, func(sub string) string {
		tok, err := jwt.Signed(signer).Claims(jwt.Claims{Subject: sub, Issuer: "corvid-test", Audience: jwt.Audience{"corvid"},
			Expiry: jwt.NewNumericDate(time.Now().Add(time.Minute)), IssuedAt: jwt.NewNumericDate(time.Now())}).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
}

func TestAuthenticator(t *testing.T) {
	v, token := jwtSetup(t)
	a := &Authenticator{JWT: v, Required: true, Open: []string{"/grpc.health.v1.Health/Watch"},
		Limit: ratelimit.New(ratelimit.Config{Rate: 1, Burst: 3})}
	addr, ca, seen := authServer(t, a)
	ctx := context.Background()
	req := &healthpb.HealthCheckRequest{}

	alice, err := ca.Issue(tlsconfig.Leaf{CommonName: "alice", URIs: []*url.URL{{Scheme: "spiffe", Host: "corvid.local", Path: "/alice"}}, Client: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dialTLS(t, addr, ca, alice).Check(ctx, req); err != nil {
		t.Fatalf("mTLS caller: %v", err)
	}
	if id := <-seen; id.Name != "spiffe://corvid.local/alice" || id.Source != auth.SourceMTLS {
		t.Errorf("mTLS identity %+v", id)
	}

	anon := dialTLS(t, addr, ca, nil)
	if _, err := anon.Check(ctx, req); status.Code(err) != codes.Unauthenticated {
		t.Errorf("no certificate, no token: %v, want Unauthenticated", err)
	}
	bearer := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token("bob"))
	if _, err := anon.Check(bearer, req); err != nil {
		t.Fatalf("JWT caller: %v", err)
	}
	if id := <-seen; id.Name != "bob" || id.Source != auth.SourceJWT {
		t.Errorf("JWT identity %+v", id)
	}
	bad := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token("bob")+"x")
	if _, err := anon.Check(bad, req); status.Code(err) != codes.Unauthenticated {
		t.Errorf("tampered token: %v, want Unauthenticated", err)
	}
	forged := metadata.AppendToOutgoingContext(ctx, inproc.ClientCertKey, string(alice.Cert.Raw))
	if _, err := anon.Check(forged, req); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a caller setting %s: %v, want InvalidArgument", inproc.ClientCertKey, err)
	}

	// bob's bucket holds 3; the first request above took one.
	var last error
	for range 3 {
		if _, last = anon.Check(bearer, req); last != nil {
			break
		}
		<-seen
	}
	st := status.Convert(last)
	if st.Code() != codes.ResourceExhausted {
		t.Fatalf("over the rate limit: %v, want ResourceExhausted", last)
	}
	var retry *errdetails.RetryInfo
	for _, d := range st.Details() {
		if r, ok := d.(*errdetails.RetryInfo); ok {
			retry = r
		}
	}
	if retry == nil || retry.GetRetryDelay().AsDuration() <= 0 {
		t.Errorf("rate-limit error carries no retry delay: %v", st.Details())
	}
	// alice has her own bucket.
	if _, err := dialTLS(t, addr, ca, alice).Check(ctx, req); err != nil {
		t.Errorf("alice limited by bob's bucket: %v", err)
	}
}
