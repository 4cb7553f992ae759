package corvid

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
)

// WithTLS makes [Dial] connect over TLS. The server's certificate must chain
// to a CA in caFile (PEM), or to the system's roots when caFile is empty.
// With certFile and keyFile (PEM) the client presents that certificate when
// the server asks for one: mutual TLS. Give both or neither.
//
// Dial reads the files and fails if one is missing or invalid. The client
// certificate is read again at every new connection's handshake, so a
// rotated one is used without a restart; if it cannot be read then, the
// last one that could is presented. It replaces an earlier
// [WithTransportCredentials], and is replaced by a later one.
func WithTLS(caFile, certFile, keyFile string) Option {
	return optionFunc(func(o *options) {
		o.creds = nil
		o.tlsFiles = &tlsFiles{ca: caFile, cert: certFile, key: keyFile}
	})
}

// tlsFiles are the PEM files named by WithTLS.
type tlsFiles struct{ ca, cert, key string }

// config builds the client TLS configuration. The server name comes from
// the dial target (grpc-go sets it).
func (f *tlsFiles) config() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.ca != "" {
		pem, err := os.ReadFile(f.ca)
		if err != nil {
			return nil, fmt.Errorf("CA file: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no PEM certificate", f.ca)
		}
	}
	if (f.cert == "") != (f.key == "") {
		return nil, errors.New("client certificate: want both a certificate file and a key file, or neither")
	}
	if f.cert != "" {
		cc := &clientCert{certFile: f.cert, keyFile: f.key}
		if _, err := cc.load(); err != nil {
			return nil, err
		}
		cfg.GetClientCertificate = cc.get
	}
	return cfg, nil
}

// clientCert reads a client certificate and key at each handshake.
type clientCert struct {
	certFile, keyFile string
	mu                sync.Mutex
	last              *tls.Certificate // the last pair that loaded
}

func (c *clientCert) load() (*tls.Certificate, error) {
	kp, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return nil, fmt.Errorf("client certificate %s with key %s: %w", c.certFile, c.keyFile, err)
	}
	c.mu.Lock()
	c.last = &kp
	c.mu.Unlock()
	return &kp, nil
}

func (c *clientCert) get(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	if kp, err := c.load(); err == nil {
		return kp, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last, nil
}
