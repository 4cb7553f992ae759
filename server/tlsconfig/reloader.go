package tlsconfig

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultNextProtos is the ALPN list ServerConfig advertises when given
// none: HTTP/2 (which gRPC requires) and HTTP/1.1.
var DefaultNextProtos = []string{"h2", "http/1.1"}

// DefaultWatchInterval is how often Watch polls when given no interval.
const DefaultWatchInterval = 5 * time.Second

// maxFileBytes bounds each file read: certificates and CA bundles are small,
// and a file that is not must not exhaust memory on every poll.
const maxFileBytes = 4 << 20

// Reloader holds the server certificate and client-CA bundle read from the
// files of a Config and swaps them atomically when the files change. A
// handshake uses the material current when it starts; established
// connections are never touched.
type Reloader struct {
	cfg        Config
	log        *slog.Logger
	minVersion uint16
	clientAuth tls.ClientAuthType

	cur atomic.Pointer[material]

	mu          sync.Mutex // serialises reloads and guards the fields below
	loaded      [sha256.Size]byte
	lastFailure string // fingerprint or error already logged by Watch
}

// material is one immutable generation of certificates; it is never
// modified once published.
type material struct {
	cert      tls.Certificate
	clientCAs *x509.CertPool
	numCAs    int
}

type files struct{ cert, key, ca []byte }

func (f files) sum() [sha256.Size]byte {
	h := sha256.New()
	for _, b := range [][]byte{f.cert, f.key, f.ca} {
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	var s [sha256.Size]byte
	h.Sum(s[:0])
	return s
}

// Load validates cfg, reads its certificate, key and client-CA bundle, and
// returns a Reloader serving them. log may be nil.
func Load(cfg Config, log *slog.Logger) (*Reloader, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !cfg.Enabled() {
		return nil, errors.New("tls is not configured: tls.cert_file and tls.key_file are empty")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	minVersion, _ := cfg.minVersion()
	r := &Reloader{cfg: cfg, log: log, minVersion: minVersion, clientAuth: cfg.clientAuth()}
	f, err := r.read()
	if err != nil {
		return nil, err
	}
	m, err := r.build(f)
	if err != nil {
		return nil, err
	}
	r.publish(m, f.sum())
	return r, nil
}

// ServerConfig returns a server configuration whose GetConfigForClient
// hands each handshake the current certificates, so reloads take effect on
// the next handshake without a restart. nextProtos is the ALPN list
// (DefaultNextProtos when empty); pass "h2" alone for a gRPC-only listener.
// Use it with credentials.NewTLS or as http.Server.TLSConfig.
func (r *Reloader) ServerConfig(nextProtos ...string) *tls.Config {
	if len(nextProtos) == 0 {
		nextProtos = DefaultNextProtos
	}
	protos := slices.Clone(nextProtos)
	type derived struct {
		m   *material
		cfg *tls.Config
	}
	var last atomic.Pointer[derived]
	return &tls.Config{
		MinVersion:   r.minVersion,
		CipherSuites: r.cipherSuites(),
		NextProtos:   protos,
		ClientAuth:   r.clientAuth,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			m := r.cur.Load()
			if d := last.Load(); d != nil && d.m == m {
				return d.cfg, nil
			}
			c := r.config(m, protos)
			last.Store(&derived{m: m, cfg: c})
			return c, nil
		},
	}
}

// config builds the per-handshake configuration of one generation. Session
// tickets stay on: they are sealed with the outer config's keys, and
// crypto/tls re-verifies a resumed client chain against the current
// ClientCAs, so a CA removed by a reload cannot be bypassed by resumption.
func (r *Reloader) config(m *material, protos []string) *tls.Config {
	return &tls.Config{
		MinVersion:   r.minVersion,
		CipherSuites: r.cipherSuites(),
		Certificates: []tls.Certificate{m.cert},
		ClientAuth:   r.clientAuth,
		ClientCAs:    m.clientCAs,
		NextProtos:   protos,
	}
}

// cipherSuites restricts TLS 1.2 to forward-secret AEAD suites (the ones
// HTTP/2 allows); TLS 1.3 suites are not configurable.
func (r *Reloader) cipherSuites() []uint16 {
	if r.minVersion >= tls.VersionTLS13 {
		return nil
	}
	return []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	}
}

// Leaf returns the server certificate currently served.
func (r *Reloader) Leaf() *x509.Certificate { return r.cur.Load().cert.Leaf }

// Reload reads the files now and swaps them in if they are valid. On error
// the previous certificates stay in use and the error is logged and
// returned.
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, err := r.read()
	if err == nil {
		var m *material
		if m, err = r.build(f); err == nil {
			r.publish(m, f.sum())
			return nil
		}
	}
	r.log.Error("tls reload failed, keeping the previous certificates", "err", err)
	return err
}

// Watch polls the files every interval (DefaultWatchInterval if <= 0) until
// ctx is done, and reloads when their contents change. The files are small
// and hashed in full on each poll, so a rewrite that keeps the size and
// modification time is still seen. A change that does not load (a
// half-written file, a key that does not match the certificate) is logged
// once and retried on each poll until the files settle.
func (r *Reloader) Watch(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = DefaultWatchInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.poll()
		}
	}
}

func (r *Reloader) poll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, err := r.read()
	if err != nil {
		r.failOnce(err.Error(), err)
		return
	}
	sum := f.sum()
	if sum == r.loaded {
		r.lastFailure = ""
		return
	}
	key := hex.EncodeToString(sum[:])
	if key == r.lastFailure {
		return
	}
	m, err := r.build(f)
	if err != nil {
		r.failOnce(key, err)
		return
	}
	r.publish(m, sum)
}

func (r *Reloader) failOnce(key string, err error) {
	if key == r.lastFailure {
		return
	}
	r.lastFailure = key
	r.log.Error("tls reload failed, keeping the previous certificates", "err", err)
}

func (r *Reloader) publish(m *material, sum [sha256.Size]byte) {
	prev := r.cur.Swap(m)
	r.loaded, r.lastFailure = sum, ""
	leaf := m.cert.Leaf
	msg := "tls certificates loaded"
	if prev != nil {
		msg = "tls certificates reloaded"
	}
	r.log.Info(msg,
		"cert_file", r.cfg.CertFile,
		"subject", leaf.Subject.String(),
		"serial", leaf.SerialNumber.Text(16),
		"not_after", leaf.NotAfter.UTC().Format(time.RFC3339),
		"client_cas", m.numCAs)
	if time.Until(leaf.NotAfter) < 7*24*time.Hour {
		r.log.Warn("tls certificate expires soon", "cert_file", r.cfg.CertFile, "not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
}

func (r *Reloader) read() (files, error) {
	var f files
	var err error
	if f.cert, err = readFile("tls.cert_file", r.cfg.CertFile); err != nil {
		return f, err
	}
	if f.key, err = readFile("tls.key_file", r.cfg.KeyFile); err != nil {
		return f, err
	}
	if r.cfg.ClientCAFile != "" {
		if f.ca, err = readFile("tls.client_ca_file", r.cfg.ClientCAFile); err != nil {
			return f, err
		}
	}
	return f, nil
}

func readFile(key, path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: read %s: %w", key, path, err)
	}
	if len(b) > maxFileBytes {
		return nil, fmt.Errorf("%s: %s is over %d bytes", key, path, maxFileBytes)
	}
	return b, nil
}

func (r *Reloader) build(f files) (*material, error) {
	if _, err := parseCertificates(f.cert, true); err != nil {
		return nil, fmt.Errorf("tls.cert_file %s: %w", r.cfg.CertFile, err)
	}
	cert, err := tls.X509KeyPair(f.cert, f.key)
	if err != nil {
		return nil, fmt.Errorf("tls.cert_file %s with tls.key_file %s: %w", r.cfg.CertFile, r.cfg.KeyFile, err)
	}
	if now := time.Now(); now.After(cert.Leaf.NotAfter) {
		return nil, fmt.Errorf("tls.cert_file %s: certificate expired at %s", r.cfg.CertFile, cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	m := &material{cert: cert}
	if r.cfg.ClientCAFile != "" {
		cas, err := parseCertificates(f.ca, false)
		if err != nil {
			return nil, fmt.Errorf("tls.client_ca_file %s: %w", r.cfg.ClientCAFile, err)
		}
		m.clientCAs = x509.NewCertPool()
		for _, c := range cas {
			m.clientCAs.AddCert(c)
		}
		m.numCAs = len(cas)
	}
	return m, nil
}

// parseCertificates parses every CERTIFICATE block of a PEM file strictly:
// unlike x509.CertPool.AppendCertsFromPEM it refuses a file with a
// truncated or unparsable block, so a half-written bundle is never loaded
// with some of its certificates missing. Other block types are an error
// unless allowOther (a certificate file may carry its key).
func parseCertificates(data []byte, allowOther bool) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			if !allowOther {
				return nil, fmt.Errorf("PEM block %d is %q, want CERTIFICATE", len(certs)+1, block.Type)
			}
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%d bytes after the last complete PEM block: file truncated or not PEM", len(bytes.TrimSpace(rest)))
	}
	if len(certs) == 0 {
		return nil, errors.New("no CERTIFICATE PEM block")
	}
	return certs, nil
}
