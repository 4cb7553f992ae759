package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/corvidml/corvid/server"
	"github.com/corvidml/corvid/server/config"
)

// serveFlags binds the serve flags onto cfg, whose values are the defaults.
func serveFlags(cfg *config.Config, configFile *string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(configFile, "config", "", "YAML config file; its keys are these flags' names with underscores")
	fs.StringVar(&cfg.GRPCAddr, "grpc-addr", cfg.GRPCAddr, "gRPC listen address")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", cfg.HTTPAddr, "REST listen address")
	fs.StringVar(&cfg.AdminAddr, "admin-addr", cfg.AdminAddr, "admin listen address (/healthz, /readyz)")
	fs.StringVar(&cfg.Models, "models", cfg.Models, "model repository folder (<model>/<version>/model.onnx); empty serves the embedded model")
	fs.IntVar(&cfg.MaxBatch, "max-batch", cfg.MaxBatch, "largest batch accepted in one request")
	fs.IntVar(&cfg.Workers, "workers", cfg.Workers, "graph instances per model version (0: one per CPU)")
	fs.Var(&cfg.ShutdownGrace, "shutdown-grace", "time in-flight requests get to finish at shutdown")
	fs.StringVar(&cfg.TLS.CertFile, "tls-cert-file", cfg.TLS.CertFile, "server certificate chain `PEM`; with --tls-key-file, every port serves TLS")
	fs.StringVar(&cfg.TLS.KeyFile, "tls-key-file", cfg.TLS.KeyFile, "server private key `PEM`")
	fs.StringVar(&cfg.TLS.ClientCAFile, "tls-client-ca-file", cfg.TLS.ClientCAFile, "CA bundle `PEM` that client certificates must chain to")
	fs.StringVar(&cfg.TLS.ClientAuth, "tls-client-auth", cfg.TLS.ClientAuth, "client certificates: none, request or require (default: require with a client CA, none without)")
	fs.StringVar(&cfg.TLS.MinVersion, "tls-min-version", cfg.TLS.MinVersion, "lowest TLS version accepted: 1.3 (default) or 1.2")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error")
	fs.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "text or json")
	return fs
}

// runServe starts the server and blocks until ctx is cancelled (SIGINT or
// SIGTERM), then shuts down gracefully.
func runServe(ctx context.Context, args []string, stderr io.Writer) error {
	cfg := config.Default()
	var configFile string
	fs := serveFlags(&cfg, &configFile, stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve takes no arguments, got %q", fs.Args())
	}
	if configFile != "" {
		// The file replaces the defaults; parsing the flags again on top of it
		// makes those given on the command line win.
		var err error
		if cfg, err = config.Load(configFile); err != nil {
			return err
		}
		if err := serveFlags(&cfg, &configFile, stderr).Parse(args); err != nil {
			return err
		}
	}
	srv, err := server.New(cfg, newLogger(stderr, cfg))
	if err != nil {
		return err
	}
	return srv.Serve(ctx)
}

func newLogger(w io.Writer, cfg config.Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(strings.ToUpper(cfg.LogLevel)))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
