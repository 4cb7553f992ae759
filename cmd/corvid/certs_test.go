package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corvidml/corvid/server/tlsconfig"
)

func TestParseCertsArgs(t *testing.T) {
	loopback := []net.IP{net.IPv4(127, 0, 0, 1).To4(), net.IPv6loopback}
	tests := []struct {
		name    string
		args    []string
		want    certsArgs
		wantErr string
	}{
		{name: "defaults", want: certsArgs{out: "certs", dns: []string{"localhost"}, ips: loopback}},
		{name: "everything", args: []string{"--out", "d", "--hosts", "Corvid.example.com, *.svc.local,10.0.0.1,[::2],localhost,127.0.0.1", "--client", "alice", "--client=bob.smith", "--client", "alice"},
			want: certsArgs{out: "d", dns: []string{"localhost", "corvid.example.com", "*.svc.local"},
				ips: append(append([]net.IP{}, loopback...), net.IPv4(10, 0, 0, 1).To4(), net.ParseIP("::2")), clients: []string{"alice", "bob.smith"}}},
		{name: "identity with a slash", args: []string{"--client", "../alice"}, wantErr: `certs: --client "../alice": want 1 to 64 letters`},
		{name: "empty identity", args: []string{"--client", ""}, wantErr: `certs: --client ""`},
		{name: "bad host", args: []string{"--hosts", "a b"}, wantErr: `certs: --hosts "a b" is neither a host name nor an IP address`},
		{name: "argument", args: []string{"alice"}, wantErr: `certs takes no arguments, got ["alice"]`},
		{name: "empty out", args: []string{"--out", ""}, wantErr: "certs: --out is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseCertsArgs(tt.args, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("parseCertsArgs = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// TestCerts runs `corvid certs`, serves with the files it wrote through
// tlsconfig.Load and connects with a client certificate it wrote: what the
// printed instructions promise.
func TestCerts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	var out bytes.Buffer
	if err := run(t.Context(), []string{"certs", "--out", dir, "--hosts", "corvid.test", "--client", "alice", "--client", "bob"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"new CA", "client_ca_file: " + filepath.Join(dir, "ca.pem"), "client_auth: require", "--cert " + filepath.Join(dir, "client-alice.pem")} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	for name, want := range map[string]os.FileMode{
		"ca.pem": 0o644, "ca-key.pem": 0o600, "server.pem": 0o644, "server-key.pem": 0o600,
		"client-alice.pem": 0o644, "client-alice-key.pem": 0o600, "client-bob.pem": 0o644, "client-bob-key.pem": 0o600,
	} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %v, want %v", name, got, want)
		}
	}

	r, err := tlsconfig.Load(tlsconfig.Config{
		CertFile:     filepath.Join(dir, "server.pem"),
		KeyFile:      filepath.Join(dir, "server-key.pem"),
		ClientCAFile: filepath.Join(dir, "ca.pem"),
		ClientAuth:   "require",
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := serveIdentity(t, r.ServerConfig())
	for _, tt := range []struct{ client, serverName, want string }{
		{"alice", "localhost", "spiffe://corvid.local/alice"},
		{"bob", "corvid.test", "spiffe://corvid.local/bob"},
	} {
		cfg := certsClientConfig(t, dir, tt.client)
		cfg.ServerName = tt.serverName
		if got, err := askIdentity(addr, cfg); err != nil || got != tt.want {
			t.Errorf("%s via %s: identity %q, %v; want %q", tt.client, tt.serverName, got, err, tt.want)
		}
	}
	noCert := certsClientConfig(t, dir, "")
	if got, err := askIdentity(addr, noCert); err == nil {
		t.Errorf("without a client certificate: identity %q, want the handshake refused", got)
	}

	// A second run keeps the CA, so certificates issued before stay valid,
	// and issues a new server certificate.
	ca, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	oldServer := r.Leaf().SerialNumber
	out.Reset()
	if err := run(t.Context(), []string{"certs", "--out", dir}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "existing CA") {
		t.Errorf("second run output lacks %q:\n%s", "existing CA", out.String())
	}
	ca2, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ca, ca2) {
		t.Error("second run replaced ca.pem, want it kept")
	}
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if r.Leaf().SerialNumber.Cmp(oldServer) == 0 {
		t.Error("second run kept the server certificate, want a new one")
	}
	if got, err := askIdentity(addr, certsClientConfig(t, dir, "alice")); err != nil || got != "spiffe://corvid.local/alice" {
		t.Errorf("alice after the second run: identity %q, %v", got, err)
	}
}

func TestCertsRefusesHalfACA(t *testing.T) {
	for _, keep := range []string{"ca.pem", "ca-key.pem"} {
		t.Run(keep, func(t *testing.T) {
			dir := t.TempDir()
			if err := run(t.Context(), []string{"certs", "--out", dir}, io.Discard, io.Discard); err != nil {
				t.Fatal(err)
			}
			lose := map[string]string{"ca.pem": "ca-key.pem", "ca-key.pem": "ca.pem"}[keep]
			if err := os.Remove(filepath.Join(dir, lose)); err != nil {
				t.Fatal(err)
			}
			before, err := os.ReadFile(filepath.Join(dir, keep))
			if err != nil {
				t.Fatal(err)
			}
			err = run(t.Context(), []string{"certs", "--out", dir}, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), lose+" does not") {
				t.Fatalf("error = %v, want it to say %s is missing", err, lose)
			}
			after, _ := os.ReadFile(filepath.Join(dir, keep))
			if !bytes.Equal(before, after) {
				t.Errorf("%s was changed", keep)
			}
		})
	}
}

// certsClientConfig trusts DIR/ca.pem and presents client-ID.pem (none if
// id is empty).
func certsClientConfig(t *testing.T, dir, id string) *tls.Config {
	t.Helper()
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("ca.pem holds no certificate")
	}
	cfg := &tls.Config{RootCAs: roots, ServerName: "localhost"}
	if id != "" {
		cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "client-"+id+".pem"), filepath.Join(dir, "client-"+id+"-key.pem"))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg
}

// serveIdentity answers each TLS connection with the caller's identity.
func serveIdentity(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				tc := c.(*tls.Conn)
				if tc.Handshake() != nil {
					return
				}
				state := tc.ConnectionState()
				id, _ := tlsconfig.Identity(&state)
				io.WriteString(c, id+"\n")
			})
		}
	})
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	return l.Addr().String()
}

func askIdentity(addr string, cfg *tls.Config) (string, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSuffix(line, "\n"), err
}
