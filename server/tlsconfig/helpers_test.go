package tlsconfig_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corvidml/corvid/server/tlsconfig"
)

// pki is a CA and a server certificate written to a temporary folder, and
// the Config naming the files.
type pki struct {
	dir    string
	ca     *tlsconfig.CA
	server *tlsconfig.KeyPair
	cfg    tlsconfig.Config
}

func newPKI(t *testing.T, clientAuth string) *pki {
	t.Helper()
	dir := t.TempDir()
	ca := newCA(t, "test CA")
	p := &pki{
		dir: dir,
		ca:  ca,
		cfg: tlsconfig.Config{
			CertFile:   filepath.Join(dir, "server.pem"),
			KeyFile:    filepath.Join(dir, "server-key.pem"),
			ClientAuth: clientAuth,
		},
	}
	if clientAuth != tlsconfig.ClientAuthNone {
		p.cfg.ClientCAFile = filepath.Join(dir, "ca.pem")
		writeFile(t, p.cfg.ClientCAFile, ca.CertPEM)
	}
	p.rotateServer(t)
	return p
}

// rotateServer issues a new server certificate and replaces the files the
// way a certificate manager does: temporary file, then rename.
func (p *pki) rotateServer(t *testing.T) *tlsconfig.KeyPair {
	t.Helper()
	kp, err := p.ca.Issue(tlsconfig.Leaf{
		CommonName:  "localhost",
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		Server:      true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := kp.WriteFiles(p.cfg.CertFile, p.cfg.KeyFile); err != nil {
		t.Fatal(err)
	}
	p.server = kp
	return kp
}

func newCA(t *testing.T, name string) *tlsconfig.CA {
	t.Helper()
	ca, err := tlsconfig.NewCA(name, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// client issues a client certificate; identity becomes a SPIFFE URI SAN
// unless it is empty, cn the common name.
func client(t *testing.T, ca *tlsconfig.CA, cn, spiffe string, notBefore, notAfter time.Time) *tlsconfig.KeyPair {
	t.Helper()
	l := tlsconfig.Leaf{CommonName: cn, Client: true, NotBefore: notBefore, NotAfter: notAfter}
	if spiffe != "" {
		u, err := url.Parse(spiffe)
		if err != nil {
			t.Fatal(err)
		}
		l.URIs = []*url.URL{{Scheme: "https", Host: "example.com", Path: "/not-this"}, u}
	}
	kp, err := ca.Issue(l)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// clientConfig trusts ca and presents kp (if not nil) whatever CAs the
// server asks for, as an attacker would: crypto/tls's own choice would send
// no certificate at all when kp's issuer is not among them.
func clientConfig(t *testing.T, ca *tlsconfig.CA, kp *tlsconfig.KeyPair) *tls.Config {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	c := &tls.Config{RootCAs: roots, ServerName: "localhost"}
	if kp != nil {
		cert, err := tls.X509KeyPair(kp.CertPEM, kp.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	}
	return c
}

func load(t *testing.T, cfg tlsconfig.Config, log *slog.Logger) *tlsconfig.Reloader {
	t.Helper()
	r, err := tlsconfig.Load(cfg, log)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return r
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// echoServer accepts TLS connections with cfg, and answers each completed
// handshake with one line: the caller's Identity, or "-". Server-side
// handshake errors are kept for the test to read.
type echoServer struct {
	addr string
	mu   sync.Mutex
	errs []error
}

func serveEcho(t *testing.T, cfg *tls.Config) *echoServer {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := &echoServer{addr: l.Addr().String()}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				tc := c.(*tls.Conn)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if err := tc.HandshakeContext(ctx); err != nil {
					s.mu.Lock()
					s.errs = append(s.errs, err)
					s.mu.Unlock()
					return
				}
				state := tc.ConnectionState()
				id, ok := tlsconfig.Identity(&state)
				if !ok {
					id = "-"
				}
				c.Write([]byte(id + "\n"))
			})
		}
	})
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	return s
}

// lastErr returns the most recent server-side handshake error.
func (s *echoServer) lastErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.errs) == 0 {
		return nil
	}
	return s.errs[len(s.errs)-1]
}

// dial connects, completes the handshake and reads the server's line. With
// TLS 1.3 a client learns that its certificate was refused only when it
// reads, so the read is part of the check.
func dial(addr string, cfg *tls.Config) (id string, state tls.ConnectionState, err error) {
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: cfg}
	c, err := d.DialContext(context.Background(), "tcp", addr)
	if err != nil {
		return "", state, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	state = c.(*tls.Conn).ConnectionState()
	if err != nil {
		return "", state, err
	}
	if line == "" {
		return "", state, errors.New("empty answer")
	}
	return strings.TrimSuffix(line, "\n"), state, nil
}

// records is a slog handler that keeps what was logged.
type records struct {
	mu   sync.Mutex
	msgs []string
}

func (h *records) Enabled(context.Context, slog.Level) bool { return true }
func (h *records) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *records) WithGroup(string) slog.Handler            { return h }
func (h *records) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	msg := r.Level.String() + " " + r.Message
	r.Attrs(func(a slog.Attr) bool {
		msg += " " + a.String()
		return true
	})
	h.msgs = append(h.msgs, msg)
	return nil
}

func (h *records) count(prefix string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, m := range h.msgs {
		if strings.HasPrefix(m, prefix) {
			n++
		}
	}
	return n
}
