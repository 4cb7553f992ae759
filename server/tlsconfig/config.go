package tlsconfig

import (
	"crypto/tls"
	"errors"
	"fmt"
)

// Client authentication modes (Config.ClientAuth).
const (
	ClientAuthNone    = "none"    // no client certificate asked for
	ClientAuthRequest = "request" // verified if given: callers without one are anonymous
	ClientAuthRequire = "require" // mTLS: a certificate signed by the client CA bundle is required
)

// Config is the tls section of the server configuration. YAML keys are the
// json tags. TLS is off when CertFile and KeyFile are both empty.
type Config struct {
	// CertFile is the server certificate chain (PEM), leaf first.
	CertFile string `json:"cert_file"`
	// KeyFile is the server's private key (PEM) matching CertFile.
	KeyFile string `json:"key_file"`
	// ClientCAFile is the bundle of CA certificates (PEM) that client
	// certificates must chain to.
	ClientCAFile string `json:"client_ca_file"`
	// ClientAuth is none, request or require. Empty means require when
	// ClientCAFile is set and none otherwise.
	ClientAuth string `json:"client_auth"`
	// MinVersion is the lowest TLS version accepted: "1.3" (the default) or
	// "1.2".
	MinVersion string `json:"min_version"`
}

// Enabled reports whether TLS is configured at all.
func (c Config) Enabled() bool { return c.CertFile != "" || c.KeyFile != "" }

// Validate reports every invalid setting at once, named by its YAML key.
// A disabled Config (no certificate, no key, no client CA) is valid.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.CertFile == "" && c.KeyFile != "" {
		bad("tls.cert_file is empty but tls.key_file is set: want both or neither")
	}
	if c.KeyFile == "" && c.CertFile != "" {
		bad("tls.key_file is empty but tls.cert_file is set: want both or neither")
	}
	if !c.Enabled() && c.ClientCAFile != "" {
		bad("tls.client_ca_file is set but tls.cert_file and tls.key_file are empty: client certificates need TLS")
	}
	switch c.ClientAuth {
	case "":
	case ClientAuthNone:
		if c.ClientCAFile != "" {
			bad("tls.client_auth is none but tls.client_ca_file is set: want request or require, or no client CA")
		}
	case ClientAuthRequest, ClientAuthRequire:
		if c.ClientCAFile == "" {
			bad("tls.client_auth is %s but tls.client_ca_file is empty: want the CA bundle client certificates chain to", c.ClientAuth)
		}
	default:
		bad("tls.client_auth %q: want none, request or require", c.ClientAuth)
	}
	if _, err := c.minVersion(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// clientAuth maps ClientAuth to crypto/tls; Validate has checked it.
func (c Config) clientAuth() tls.ClientAuthType {
	mode := c.ClientAuth
	if mode == "" && c.ClientCAFile != "" {
		mode = ClientAuthRequire
	}
	switch mode {
	case ClientAuthRequest:
		return tls.VerifyClientCertIfGiven
	case ClientAuthRequire:
		return tls.RequireAndVerifyClientCert
	}
	return tls.NoClientCert
}

func (c Config) minVersion() (uint16, error) {
	switch c.MinVersion {
	case "", "1.3":
		return tls.VersionTLS13, nil
	case "1.2":
		return tls.VersionTLS12, nil
	}
	return 0, fmt.Errorf("tls.min_version %q: want 1.3 or 1.2", c.MinVersion)
}
