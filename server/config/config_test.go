package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultIsValid(t *testing.T) {
	cfg := Default()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v, want nil", err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		yaml    string
		check   func(t *testing.T, c Config)
		wantErr string
	}{
		{
			name: "overrides",
			yaml: "grpc_addr: 127.0.0.1:9000\nmax_batch: 8\nshutdown_grace: 1m30s\n",
			check: func(t *testing.T, c Config) {
				if c.GRPCAddr != "127.0.0.1:9000" || c.MaxBatch != 8 || time.Duration(c.ShutdownGrace) != 90*time.Second {
					t.Errorf("got %+v", c)
				}
				if c.HTTPAddr != ":8501" {
					t.Errorf("http_addr = %q, want the default :8501", c.HTTPAddr)
				}
			},
		},
		{
			name: "tls",
			yaml: "tls:\n  cert_file: s.pem\n  key_file: s-key.pem\n  client_ca_file: ca.pem\n  client_auth: require\n  min_version: \"1.2\"\n  reload_interval: 1s\n",
			check: func(t *testing.T, c Config) {
				want := TLS{ReloadInterval: Duration(time.Second)}
				want.CertFile, want.KeyFile, want.ClientCAFile = "s.pem", "s-key.pem", "ca.pem"
				want.ClientAuth, want.MinVersion = "require", "1.2"
				if c.TLS != want {
					t.Errorf("tls = %+v, want %+v", c.TLS, want)
				}
				if !c.TLS.Enabled() {
					t.Error("tls.Enabled() = false, want true")
				}
			},
		},
		{
			name: "tls keeps the default reload interval",
			yaml: "tls:\n  cert_file: s.pem\n  key_file: s-key.pem\n",
			check: func(t *testing.T, c Config) {
				if got, want := time.Duration(c.TLS.ReloadInterval), 5*time.Second; got != want {
					t.Errorf("tls.reload_interval = %v, want %v", got, want)
				}
			},
		},
		{name: "unknown tls key", yaml: "tls:\n  cert: s.pem\n", wantErr: "cert"},
		{name: "unknown key", yaml: "grpc_adr: :1\n", wantErr: "grpc_adr"},
		{name: "bad duration", yaml: "shutdown_grace: soon\n", wantErr: "soon"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".yaml")
			if err := os.WriteFile(path, []byte(tt.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := Load(path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Load() error = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, got)
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	cfg := Default()
	cfg.GRPCAddr = "nope"
	cfg.MaxBatch = 0
	cfg.LogLevel = "loud"
	cfg.Models = filepath.Join(t.TempDir(), "missing")
	cfg.TLS.CertFile = "server.pem" // no key
	cfg.TLS.ClientAuth = "sometimes"
	cfg.TLS.ReloadInterval = 0
	err := cfg.Validate()
	if err == nil {
		t.Fatal("Validate() = nil, want errors")
	}
	for _, want := range []string{"grpc_addr", "max_batch", "log_level", "models", "tls.key_file", "tls.client_auth", "tls.reload_interval"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %q, want it to mention %s", err, want)
		}
	}
}
