package tlsconfig

import (
	"crypto/tls"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr []string // each must appear; none means valid
	}{
		{name: "disabled", cfg: Config{}},
		{name: "server TLS", cfg: Config{CertFile: "c", KeyFile: "k"}},
		{name: "mTLS", cfg: Config{CertFile: "c", KeyFile: "k", ClientCAFile: "ca", ClientAuth: "require"}},
		{name: "mTLS by default", cfg: Config{CertFile: "c", KeyFile: "k", ClientCAFile: "ca"}},
		{name: "request", cfg: Config{CertFile: "c", KeyFile: "k", ClientCAFile: "ca", ClientAuth: "request", MinVersion: "1.2"}},
		{name: "cert without key", cfg: Config{CertFile: "c"}, wantErr: []string{"tls.key_file is empty"}},
		{name: "key without cert", cfg: Config{KeyFile: "k"}, wantErr: []string{"tls.cert_file is empty"}},
		{name: "client CA without TLS", cfg: Config{ClientCAFile: "ca"}, wantErr: []string{"tls.client_ca_file is set"}},
		{name: "require without CA", cfg: Config{CertFile: "c", KeyFile: "k", ClientAuth: "require"}, wantErr: []string{"tls.client_auth is require but tls.client_ca_file is empty"}},
		{name: "none with CA", cfg: Config{CertFile: "c", KeyFile: "k", ClientCAFile: "ca", ClientAuth: "none"}, wantErr: []string{"tls.client_auth is none"}},
		{name: "unknown client_auth", cfg: Config{CertFile: "c", KeyFile: "k", ClientAuth: "yes"}, wantErr: []string{`tls.client_auth "yes"`}},
		{name: "TLS 1.1", cfg: Config{CertFile: "c", KeyFile: "k", MinVersion: "1.1"}, wantErr: []string{`tls.min_version "1.1": want 1.3 or 1.2`}},
		{name: "every problem at once", cfg: Config{KeyFile: "k", ClientAuth: "always", MinVersion: "1.0"}, wantErr: []string{"tls.cert_file", "tls.client_auth", "tls.min_version"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors mentioning %q", tt.wantErr)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Validate() = %q, want it to mention %q", err, want)
				}
			}
		})
	}
}

func TestClientAuthAndVersion(t *testing.T) {
	tests := []struct {
		cfg         Config
		wantAuth    tls.ClientAuthType
		wantVersion uint16
	}{
		{Config{}, tls.NoClientCert, tls.VersionTLS13},
		{Config{ClientCAFile: "ca"}, tls.RequireAndVerifyClientCert, tls.VersionTLS13},
		{Config{ClientAuth: "none", MinVersion: "1.3"}, tls.NoClientCert, tls.VersionTLS13},
		{Config{ClientAuth: "request", MinVersion: "1.2"}, tls.VerifyClientCertIfGiven, tls.VersionTLS12},
		{Config{ClientAuth: "require"}, tls.RequireAndVerifyClientCert, tls.VersionTLS13},
	}
	for _, tt := range tests {
		if got := tt.cfg.clientAuth(); got != tt.wantAuth {
			t.Errorf("%+v: clientAuth() = %v, want %v", tt.cfg, got, tt.wantAuth)
		}
		if got, _ := tt.cfg.minVersion(); got != tt.wantVersion {
			t.Errorf("%+v: minVersion() = %x, want %x", tt.cfg, got, tt.wantVersion)
		}
	}
}

func TestLoadRefusesBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{CertFile: "c"},
		{CertFile: "/nonexistent/c.pem", KeyFile: "/nonexistent/k.pem"},
	} {
		if _, err := Load(cfg, nil); err == nil {
			t.Errorf("Load(%+v) = nil error, want one", cfg)
		}
	}
}
