package tlsconfig_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/corvidml/corvid/server/tlsconfig"
)

// Serve gRPC and REST with certificates that reload from disk.
func ExampleLoad() {
	cfg := tlsconfig.Config{
		CertFile:     "certs/server.pem",
		KeyFile:      "certs/server-key.pem",
		ClientCAFile: "certs/ca.pem",
		ClientAuth:   tlsconfig.ClientAuthRequire,
	}
	r, err := tlsconfig.Load(cfg, slog.Default())
	if err != nil {
		slog.Error("tls", "err", err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Watch(ctx, tlsconfig.DefaultWatchInterval)

	// gRPC: "h2" only. MaxConnectionAge makes long-lived connections
	// handshake again, with the current certificates.
	g := grpc.NewServer(grpc.Creds(credentials.NewTLS(r.ServerConfig("h2"))))
	_ = g

	// REST: h2 and http/1.1; ServeTLS with empty file names uses
	// GetConfigForClient.
	srv := &http.Server{TLSConfig: r.ServerConfig(), ReadHeaderTimeout: 5 * time.Second}
	l, err := net.Listen("tcp", "localhost:8501")
	if err != nil {
		return
	}
	go srv.ServeTLS(l, "", "")
	defer srv.Close()
}

// The caller's identity in a gRPC handler or interceptor.
func ExampleIdentity() {
	handler := func(ctx context.Context) string {
		p, ok := peer.FromContext(ctx)
		if !ok {
			return ""
		}
		info, ok := p.AuthInfo.(credentials.TLSInfo)
		if !ok {
			return ""
		}
		id, _ := tlsconfig.Identity(&info.State)
		return id
	}
	_ = handler
}
