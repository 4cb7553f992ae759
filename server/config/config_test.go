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
	err := cfg.Validate()
	if err == nil {
		t.Fatal("Validate() = nil, want errors")
	}
	for _, want := range []string{"grpc_addr", "max_batch", "log_level", "models"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %q, want it to mention %s", err, want)
		}
	}
}
