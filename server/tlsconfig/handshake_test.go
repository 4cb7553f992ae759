package tlsconfig_test

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/corvidml/corvid/server/tlsconfig"
)

func TestHandshake(t *testing.T) {
	p := newPKI(t, tlsconfig.ClientAuthRequire)
	other := newCA(t, "someone else's CA")
	now := time.Now()
	alice := client(t, p.ca, "alice", "spiffe://corvid.local/alice", time.Time{}, time.Time{})
	bob := client(t, p.ca, "bob", "", time.Time{}, time.Time{})
	stranger := client(t, other, "mallory", "spiffe://corvid.local/alice", time.Time{}, time.Time{})
	expired := client(t, p.ca, "carol", "", now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	notYet := client(t, p.ca, "dave", "", now.Add(24*time.Hour), now.Add(48*time.Hour))

	tls12 := func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 }
	alpn := func(protos ...string) func(*tls.Config) {
		return func(c *tls.Config) { c.NextProtos = protos }
	}

	tests := []struct {
		name       string
		clientAuth string
		minVersion string
		nextProtos []string // for ServerConfig
		cert       *tlsconfig.KeyPair
		tweak      func(*tls.Config)
		wantID     string // "-": handshake ok, no identity
		wantALPN   string
		wantErr    string // server-side handshake error (refused)
	}{
		{name: "require/no client cert", clientAuth: "require", wantErr: "client didn't provide a certificate"},
		{name: "require/other CA", clientAuth: "require", cert: stranger, wantErr: "certificate signed by unknown authority"},
		{name: "require/expired", clientAuth: "require", cert: expired, wantErr: "expired"},
		{name: "require/not yet valid", clientAuth: "require", cert: notYet, wantErr: "not yet valid"},
		{name: "require/TLS 1.2 client", clientAuth: "require", cert: alice, tweak: tls12, wantErr: "unsupported versions"},
		{name: "require/SPIFFE identity", clientAuth: "require", cert: alice, wantID: "spiffe://corvid.local/alice"},
		{name: "require/CN identity", clientAuth: "require", cert: bob, wantID: "bob"},
		{name: "default client_auth with CA is require", clientAuth: "", wantErr: "client didn't provide a certificate"},
		{name: "request/no client cert", clientAuth: "request", wantID: "-"},
		{name: "request/valid", clientAuth: "request", cert: alice, wantID: "spiffe://corvid.local/alice"},
		{name: "request/other CA", clientAuth: "request", cert: stranger, wantErr: "unknown authority"},
		{name: "request/expired", clientAuth: "request", cert: expired, wantErr: "expired"},
		{name: "none/no client cert", clientAuth: "none", wantID: "-"},
		{name: "none/unasked cert is no identity", clientAuth: "none", cert: stranger, wantID: "-"},
		{name: "none/TLS 1.2 client", clientAuth: "none", tweak: tls12, wantErr: "unsupported versions"},
		{name: "min 1.2/TLS 1.2 client", clientAuth: "require", minVersion: "1.2", cert: bob, tweak: tls12, wantID: "bob"},
		{name: "min 1.2/TLS 1.2 other CA", clientAuth: "require", minVersion: "1.2", cert: stranger, tweak: tls12, wantErr: "unknown authority"},
		{name: "ALPN/gRPC client", clientAuth: "none", tweak: alpn("h2"), wantID: "-", wantALPN: "h2"},
		{name: "ALPN/browser", clientAuth: "none", tweak: alpn("h2", "http/1.1"), wantID: "-", wantALPN: "h2"},
		{name: "ALPN/HTTP/1.1 client", clientAuth: "none", tweak: alpn("http/1.1"), wantID: "-", wantALPN: "http/1.1"},
		{name: "ALPN h2 only/HTTP/1.1 client", clientAuth: "none", nextProtos: []string{"h2"}, tweak: alpn("http/1.1"), wantID: "-", wantALPN: ""},
		{name: "ALPN/unknown protocol", clientAuth: "none", tweak: alpn("spdy/3"), wantErr: "unsupported application protocols"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := p.cfg
			cfg.ClientAuth, cfg.MinVersion = tt.clientAuth, tt.minVersion
			if tt.clientAuth == tlsconfig.ClientAuthNone {
				cfg.ClientCAFile = ""
			}
			r := load(t, cfg, nil)
			s := serveEcho(t, r.ServerConfig(tt.nextProtos...))
			cc := clientConfig(t, p.ca, tt.cert)
			if tt.tweak != nil {
				tt.tweak(cc)
			}
			id, state, err := dial(s.addr, cc)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("handshake succeeded (identity %q), want it refused with %q", id, tt.wantErr)
				}
				// The server's reason, not the client's view of the alert,
				// says why: wait for the server goroutine to record it.
				var serr error
				for deadline := time.Now().Add(5 * time.Second); serr == nil && time.Now().Before(deadline); {
					serr = s.lastErr()
					time.Sleep(time.Millisecond)
				}
				if serr == nil || !strings.Contains(serr.Error(), tt.wantErr) {
					t.Fatalf("server handshake error = %v, want it to contain %q (client: %v)", serr, tt.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v (server: %v)", err, s.lastErr())
			}
			if id != tt.wantID {
				t.Errorf("identity = %q, want %q", id, tt.wantID)
			}
			wantVersion := uint16(tls.VersionTLS13)
			if cc.MaxVersion == tls.VersionTLS12 {
				wantVersion = tls.VersionTLS12
			}
			if state.Version != wantVersion {
				t.Errorf("version = %x, want %x", state.Version, wantVersion)
			}
			if got := state.NegotiatedProtocol; got != tt.wantALPN {
				t.Errorf("ALPN = %q, want %q", got, tt.wantALPN)
			}
		})
	}
}
