package main

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	corvidv1 "github.com/corvidml/corvid/gen/go/corvid/v1"
	"github.com/corvidml/corvid/server/tlsconfig"
)

// serveCLIMTLS runs `corvid certs` into a temp folder and serves cliServer
// with mutual TLS (client_auth require) from the files it wrote, as
// `corvid serve` does. It returns the server address as localhost:PORT and
// the folder.
func serveCLIMTLS(t *testing.T) (addr, dir string) {
	t.Helper()
	dir = t.TempDir()
	if err := run(t.Context(), []string{"certs", "--out", dir, "--client", "alice"}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	r, err := tlsconfig.Load(tlsconfig.Config{
		CertFile:     filepath.Join(dir, "server.pem"),
		KeyFile:      filepath.Join(dir, "server-key.pem"),
		ClientCAFile: filepath.Join(dir, "ca.pem"),
		ClientAuth:   tlsconfig.ClientAuthRequire,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(grpc.Creds(credentials.NewTLS(r.ServerConfig("h2"))))
	corvidv1.RegisterInferenceServiceServer(s, cliServer{})
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	_, port, _ := net.SplitHostPort(lis.Addr().String())
	return net.JoinHostPort("localhost", port), dir
}

func TestStatusAndPredictOverMTLS(t *testing.T) {
	addr, dir := serveCLIMTLS(t)
	ca, cert, key := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "client-alice.pem"), filepath.Join(dir, "client-alice-key.pem")
	mtls := []string{"--addr", addr, "--ca", ca, "--cert", cert, "--key", key}

	var stdout strings.Builder
	if err := runStatus(t.Context(), append([]string{"digits"}, mtls...), &stdout, io.Discard); err != nil {
		t.Fatalf("status with a client certificate: %v", err)
	}
	if !strings.HasPrefix(stdout.String(), "model digits\n") {
		t.Errorf("status output = %q, want the digits table", stdout.String())
	}

	input := filepath.Join(t.TempDir(), "req.json")
	if err := os.WriteFile(input, []byte(requestJSON), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := parsePredictArgs(append([]string{"digits", "--input", input}, mtls...), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	if err := predict(t.Context(), a, nil, &stdout, io.Discard); err != nil {
		t.Fatalf("predict with a client certificate: %v", err)
	}
	if !strings.Contains(stdout.String(), `"req-1"`) {
		t.Errorf("predict output = %q, want a digits response", stdout.String())
	}

	// Refused: no client certificate, and plaintext to a TLS port.
	for name, args := range map[string][]string{
		"CA only":   {"--addr", addr, "--ca", ca},
		"plaintext": {"--addr", addr},
	} {
		err := runStatus(t.Context(), args, io.Discard, io.Discard)
		if status.Code(err) != codes.Unavailable {
			t.Errorf("status, %s: %v, want Unavailable", name, err)
		}
	}
}

func TestTLSFlagsNeedCertAndKey(t *testing.T) {
	_, err := parseStatusArgs([]string{"--cert", "c.pem"}, io.Discard)
	if got, want := errString(err), "status: --cert and --key go together: give both or neither"; got != want {
		t.Errorf("status --cert alone: %q, want %q", got, want)
	}
	_, err = parsePredictArgs([]string{"m", "--input", "x", "--key", "k.pem"}, io.Discard)
	if got, want := errString(err), "predict: --cert and --key go together: give both or neither"; got != want {
		t.Errorf("predict --key alone: %q, want %q", got, want)
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
