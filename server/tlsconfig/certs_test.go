package tlsconfig_test

import (
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/corvidml/corvid/server/tlsconfig"
)

func TestIssueVerifies(t *testing.T) {
	ca := newCA(t, "test CA")
	if !ca.Cert.IsCA || !ca.Cert.MaxPathLenZero {
		t.Errorf("CA: IsCA %v, MaxPathLenZero %v; want both", ca.Cert.IsCA, ca.Cert.MaxPathLenZero)
	}
	if got := time.Until(ca.Cert.NotAfter); got < tlsconfig.CAValidity-time.Hour {
		t.Errorf("CA valid for %v, want %v", got, tlsconfig.CAValidity)
	}
	server, err := ca.Issue(tlsconfig.Leaf{CommonName: "localhost", DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv6loopback}, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	for _, name := range []string{"localhost", "::1"} {
		if _, err := server.Cert.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("server certificate for %s: %v", name, err)
		}
	}
	if _, err := server.Cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("server certificate verifies for client authentication, want it refused")
	}
	if _, err := ca.Issue(tlsconfig.Leaf{CommonName: "nothing"}); err == nil {
		t.Error("Issue without Server or Client = nil error, want one")
	}
	// A leaf never outlives its CA.
	short, err := tlsconfig.NewCA("short", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := short.Issue(tlsconfig.Leaf{CommonName: "x", Client: true})
	if err != nil {
		t.Fatal(err)
	}
	if leaf.Cert.NotAfter.After(short.Cert.NotAfter) {
		t.Errorf("leaf NotAfter %v is after the CA's %v", leaf.Cert.NotAfter, short.Cert.NotAfter)
	}
}

func TestParseCA(t *testing.T) {
	ca := newCA(t, "test CA")
	got, err := tlsconfig.ParseCA(ca.CertPEM, ca.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Cert.Equal(ca.Cert) || !got.Key.Equal(ca.Key) {
		t.Error("ParseCA did not give back the CA")
	}
	other := newCA(t, "other")
	leaf, err := ca.Issue(tlsconfig.Leaf{CommonName: "x", Client: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name      string
		cert, key []byte
		wantErr   string
	}{
		{"wrong key", ca.CertPEM, other.KeyPEM, "does not match"},
		{"not a CA", leaf.CertPEM, leaf.KeyPEM, "is not a CA"},
		{"no key", ca.CertPEM, nil, "no PEM block"},
		{"truncated", ca.CertPEM[:50], ca.KeyPEM, "truncated"},
	} {
		if _, err := tlsconfig.ParseCA(tt.cert, tt.key); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: ParseCA() = %v, want an error containing %q", tt.name, err, tt.wantErr)
		}
	}
}

func TestWriteFiles(t *testing.T) {
	ca := newCA(t, "test CA")
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	if err := ca.WriteFiles(cert, key); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{cert: 0o644, key: 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %v, want %v", filepath.Base(path), got, want)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Errorf("folder holds %d files, want 2 (no temporary files left)", len(entries))
	}
}
