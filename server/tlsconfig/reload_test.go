package tlsconfig_test

import (
	"context"
	"crypto/tls"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corvidml/corvid/server/tlsconfig"
)

// serial returns the serial of the certificate a handshake presented.
func serial(state tls.ConnectionState) string {
	if len(state.PeerCertificates) == 0 {
		return ""
	}
	return state.PeerCertificates[0].SerialNumber.String()
}

func TestReloadRefusesBadReplacements(t *testing.T) {
	p := newPKI(t, tlsconfig.ClientAuthRequire)
	alice := client(t, p.ca, "alice", "", time.Time{}, time.Time{})
	var logs records
	r := load(t, p.cfg, slog.New(&logs))
	s := serveEcho(t, r.ServerConfig())
	good := p.server
	goodCA, err := os.ReadFile(p.cfg.ClientCAFile)
	if err != nil {
		t.Fatal(err)
	}
	other := newCA(t, "other")
	unrelated, err := other.Issue(tlsconfig.Leaf{CommonName: "localhost", DNSNames: []string{"localhost"}, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	expired, err := p.ca.Issue(tlsconfig.Leaf{CommonName: "localhost", DNSNames: []string{"localhost"}, Server: true,
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name         string
		cert, key    []byte
		ca           []byte
		wantErr      string
		removeCAFile bool
	}{
		{name: "half-written certificate", cert: good.CertPEM[:len(good.CertPEM)/2], key: good.KeyPEM, ca: goodCA, wantErr: "truncated"},
		{name: "half-written key", cert: good.CertPEM, key: good.KeyPEM[:len(good.KeyPEM)/2], ca: goodCA, wantErr: "tls.key_file"},
		{name: "key of another certificate", cert: good.CertPEM, key: unrelated.KeyPEM, ca: goodCA, wantErr: "private key does not match public key"},
		{name: "empty certificate", cert: nil, key: good.KeyPEM, ca: goodCA, wantErr: "no CERTIFICATE"},
		{name: "not PEM", cert: []byte("hello"), key: good.KeyPEM, ca: goodCA, wantErr: "not PEM"},
		{name: "expired certificate", cert: expired.CertPEM, key: expired.KeyPEM, ca: goodCA, wantErr: "expired"},
		{name: "half-written CA bundle", cert: good.CertPEM, key: good.KeyPEM, ca: append(append([]byte{}, goodCA...), other.CertPEM[:100]...), wantErr: "truncated"},
		{name: "key in CA bundle", cert: good.CertPEM, key: good.KeyPEM, ca: append(append([]byte{}, goodCA...), good.KeyPEM...), wantErr: `"PRIVATE KEY", want CERTIFICATE`},
		{name: "CA bundle removed", cert: good.CertPEM, key: good.KeyPEM, removeCAFile: true, wantErr: "tls.client_ca_file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			writeFile(t, p.cfg.CertFile, tt.cert)
			writeFile(t, p.cfg.KeyFile, tt.key)
			if tt.removeCAFile {
				if err := os.Remove(p.cfg.ClientCAFile); err != nil {
					t.Fatal(err)
				}
			} else {
				writeFile(t, p.cfg.ClientCAFile, tt.ca)
			}
			errsBefore := logs.count("ERROR")
			err := r.Reload()
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Reload() = %v, want an error containing %q", err, tt.wantErr)
			}
			if got := logs.count("ERROR") - errsBefore; got != 1 {
				t.Errorf("%d errors logged, want 1", got)
			}
			if got, want := r.Leaf().SerialNumber, good.Cert.SerialNumber; got.Cmp(want) != 0 {
				t.Errorf("Leaf serial = %v, want the previous %v", got, want)
			}
			id, state, err := dial(s.addr, clientConfig(t, p.ca, alice))
			if err != nil {
				t.Fatalf("handshake after a failed reload: %v", err)
			}
			if got, want := serial(state), good.Cert.SerialNumber.String(); got != want || id != "alice" {
				t.Errorf("served serial %s to %q, want the previous %s to alice", got, id, want)
			}
		})
	}
	// Put the good files back: the next reload succeeds.
	writeFile(t, p.cfg.ClientCAFile, goodCA)
	writeFile(t, p.cfg.CertFile, good.CertPEM)
	writeFile(t, p.cfg.KeyFile, good.KeyPEM)
	if err := r.Reload(); err != nil {
		t.Fatalf("Reload() of the good files = %v", err)
	}
}

// TestReloadClientCAs adds and removes a CA from the client bundle: a
// reload changes who may connect, for new sessions and resumed ones alike.
func TestReloadClientCAs(t *testing.T) {
	p := newPKI(t, tlsconfig.ClientAuthRequire)
	r := load(t, p.cfg, nil)
	s := serveEcho(t, r.ServerConfig())
	second := newCA(t, "second CA")
	alice := clientConfig(t, p.ca, client(t, p.ca, "alice", "", time.Time{}, time.Time{}))
	bob := clientConfig(t, p.ca, client(t, second, "bob", "", time.Time{}, time.Time{}))
	// Session tickets let a client skip the certificate exchange; a removed
	// CA must not live on in them.
	alice.ClientSessionCache = tls.NewLRUClientSessionCache(4)

	check := func(step string, cfg *tls.Config, wantOK, wantResumed bool) {
		t.Helper()
		id, state, err := dial(s.addr, cfg)
		if ok := err == nil; ok != wantOK {
			t.Fatalf("%s: handshake ok = %v (%q, %v), want %v", step, ok, id, err, wantOK)
		}
		if wantOK && state.DidResume != wantResumed {
			t.Fatalf("%s: resumed = %v, want %v", step, state.DidResume, wantResumed)
		}
	}
	check("alice before", alice, true, false)
	check("alice resumes", alice, true, true)
	check("bob before", bob, false, false)

	writeFile(t, p.cfg.ClientCAFile, append(append([]byte{}, p.ca.CertPEM...), second.CertPEM...))
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	check("bob after adding his CA", bob, true, false)
	check("alice after adding a CA", alice, true, true)

	writeFile(t, p.cfg.ClientCAFile, second.CertPEM)
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	check("alice after removing her CA (resumption attempt)", alice, false, false)
	alice.ClientSessionCache = nil
	check("alice after removing her CA", alice, false, false)
	check("bob after removing alice's CA", bob, true, false)
}

// TestWatch replaces the files under a running Watch: a corrupt
// replacement is logged once and not served, a good one is served by the
// next handshakes.
func TestWatch(t *testing.T) {
	p := newPKI(t, tlsconfig.ClientAuthRequire)
	var logs records
	r := load(t, p.cfg, slog.New(&logs))
	s := serveEcho(t, r.ServerConfig())
	alice := clientConfig(t, p.ca, client(t, p.ca, "alice", "", time.Time{}, time.Time{}))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { r.Watch(ctx, 5*time.Millisecond) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; logs: %q", what, logs.msgs)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	served := func() string {
		_, state, err := dial(s.addr, alice)
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		return serial(state)
	}

	old := p.server
	next, err := p.ca.Issue(tlsconfig.Leaf{CommonName: "localhost", DNSNames: []string{"localhost"}, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, p.cfg.CertFile, next.CertPEM[:len(next.CertPEM)-40])
	waitFor("the corrupt certificate to be refused", func() bool { return logs.count("ERROR") == 1 })
	time.Sleep(50 * time.Millisecond) // ten more polls of the same corrupt file
	if got := logs.count("ERROR"); got != 1 {
		t.Errorf("a corrupt file that does not change was logged %d times, want once", got)
	}
	if got, want := served(), old.Cert.SerialNumber.String(); got != want {
		t.Errorf("served serial %s during the corrupt replacement, want the previous %s", got, want)
	}

	if err := next.WriteFiles(p.cfg.CertFile, p.cfg.KeyFile); err != nil {
		t.Fatal(err)
	}
	want := next.Cert.SerialNumber.String()
	waitFor("the new certificate", func() bool { return served() == want })
	if got := logs.count("INFO tls certificates reloaded"); got != 1 {
		t.Errorf("%d reloads logged, want 1: %q", got, logs.msgs)
	}
}
