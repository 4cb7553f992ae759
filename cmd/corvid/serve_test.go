package main

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/corvidml/corvid/server/config"
)

// TestServeTLSFlags: the tls flags fill the tls section, and win over the
// config file as every serve flag does.
func TestServeTLSFlags(t *testing.T) {
	cfg := config.Default()
	var file string
	args := []string{
		"--tls-cert-file", "s.pem", "--tls-key-file", "s-key.pem",
		"--tls-client-ca-file", "ca.pem", "--tls-client-auth", "request", "--tls-min-version", "1.2",
	}
	if err := serveFlags(&cfg, &file, io.Discard).Parse(args); err != nil {
		t.Fatal(err)
	}
	got := cfg.TLS
	if got.CertFile != "s.pem" || got.KeyFile != "s-key.pem" || got.ClientCAFile != "ca.pem" || got.ClientAuth != "request" || got.MinVersion != "1.2" {
		t.Errorf("tls = %+v, want the flags' values", got)
	}

	path := filepath.Join(t.TempDir(), "corvid.yaml")
	if err := os.WriteFile(path, []byte("tls:\n  cert_file: file.pem\n  key_file: file-key.pem\n  client_auth: none\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var err error
	if cfg, err = config.Load(path); err != nil {
		t.Fatal(err)
	}
	if err := serveFlags(&cfg, &file, io.Discard).Parse([]string{"--tls-cert-file", "flag.pem"}); err != nil {
		t.Fatal(err)
	}
	if cfg.TLS.CertFile != "flag.pem" || cfg.TLS.KeyFile != "file-key.pem" || cfg.TLS.ClientAuth != "none" {
		t.Errorf("tls = %+v, want cert_file from the flag and the rest from the file", cfg.TLS)
	}
}
