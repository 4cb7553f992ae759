package corvid_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	corvid "github.com/corvidml/corvid/client/go"
)

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, written as PEM files.
type testPKI struct {
	ca, cert, key string // client files
	pool          *x509.CertPool
	server        tls.Certificate
}

func newTestPKI(t *testing.T, clientCN string) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, tmpl *x509.Certificate) ([]byte, *ecdsa.PrivateKey) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, key
	}
	srvDER, srvKey := issue(2, &x509.Certificate{
		Subject: pkix.Name{CommonName: "server"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	cliDER, cliKey := issue(3, &x509.Certificate{
		Subject: pkix.Name{CommonName: clientCN}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(cliKey)
	if err != nil {
		t.Fatal(err)
	}
	p := testPKI{
		ca:     write("ca.pem", "CERTIFICATE", caDER),
		cert:   write("client.pem", "CERTIFICATE", cliDER),
		key:    write("client-key.pem", "PRIVATE KEY", keyDER),
		pool:   x509.NewCertPool(),
		server: tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey},
	}
	p.pool.AddCert(ca)
	return p
}

// serveMTLS serves srv with mutual TLS and records the common name of each
// caller's verified certificate.
func serveMTLS(t *testing.T, p testPKI, srv *fakeServer) (addr string, callers func() []string) {
	var mu sync.Mutex
	var names []string
	record := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if pr, ok := peer.FromContext(ctx); ok {
			if info, ok := pr.AuthInfo.(credentials.TLSInfo); ok && len(info.State.VerifiedChains) > 0 {
				mu.Lock()
				names = append(names, info.State.VerifiedChains[0][0].Subject.CommonName)
				mu.Unlock()
			}
		}
		return h(ctx, req)
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{p.server}, ClientCAs: p.pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13,
	}
	addr = serve(t, srv, grpc.Creds(credentials.NewTLS(cfg)), grpc.UnaryInterceptor(record))
	return addr, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), names...)
	}
}

func TestWithTLS(t *testing.T) {
	p := newTestPKI(t, "alice")
	addr, callers := serveMTLS(t, p, &fakeServer{})

	c, err := corvid.Dial(addr, corvid.WithTLS(p.ca, p.cert, p.key))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Predict(t.Context(), "m", nil); err != nil {
		t.Fatalf("Predict with a client certificate: %v", err)
	}
	if got := callers(); len(got) != 1 || got[0] != "alice" {
		t.Errorf("server saw callers %q, want [alice]", got)
	}

	// Without a client certificate the server refuses the handshake.
	noCert, err := corvid.Dial(addr, corvid.WithTLS(p.ca, "", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer noCert.Close()
	if _, err := noCert.Predict(t.Context(), "m", nil); status.Code(err) != codes.Unavailable {
		t.Errorf("Predict without a client certificate: %v, want Unavailable", err)
	}

	// A later WithTransportCredentials wins: plaintext to a TLS port fails.
	plain, err := corvid.Dial(addr, corvid.WithTLS(p.ca, p.cert, p.key),
		corvid.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err := plain.Predict(t.Context(), "m", nil); status.Code(err) != codes.Unavailable {
		t.Errorf("Predict in plaintext: %v, want Unavailable", err)
	}
}

func TestWithTLSBadFiles(t *testing.T) {
	p := newTestPKI(t, "alice")
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name            string
		ca, cert, key   string
		wantErrContains string
	}{
		{name: "missing CA", ca: "/nonexistent/ca.pem", wantErrContains: "CA file"},
		{name: "CA not PEM", ca: notPEM, wantErrContains: "no PEM certificate"},
		{name: "cert without key", ca: p.ca, cert: p.cert, wantErrContains: "want both a certificate file and a key file"},
		{name: "key not matching", ca: p.ca, cert: p.cert, key: notPEM, wantErrContains: "client certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := corvid.Dial("127.0.0.1:1", corvid.WithTLS(tt.ca, tt.cert, tt.key))
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.wantErrContains) {
				t.Errorf("Dial: %v, want an error containing %q", err, tt.wantErrContains)
			}
		})
	}
}
