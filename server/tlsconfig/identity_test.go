package tlsconfig_test

import (
	"crypto/tls"
	"crypto/x509"
	"net/url"
	"testing"

	"github.com/corvidml/corvid/server/tlsconfig"
)

func TestIdentity(t *testing.T) {
	ca := newCA(t, "test CA")
	issue := func(cn string, uris ...string) *x509.Certificate {
		l := tlsconfig.Leaf{CommonName: cn, Client: true}
		for _, u := range uris {
			parsed, err := url.Parse(u)
			if err != nil {
				t.Fatal(err)
			}
			l.URIs = append(l.URIs, parsed)
		}
		kp, err := ca.Issue(l)
		if err != nil {
			t.Fatal(err)
		}
		return kp.Cert
	}
	verified := func(c *x509.Certificate) *tls.ConnectionState {
		return &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c}, VerifiedChains: [][]*x509.Certificate{{c, ca.Cert}}}
	}
	tests := []struct {
		name   string
		state  *tls.ConnectionState
		want   string
		wantOK bool
	}{
		{name: "SPIFFE URI", state: verified(issue("alice", "spiffe://corvid.local/alice")), want: "spiffe://corvid.local/alice", wantOK: true},
		{name: "first SPIFFE URI", state: verified(issue("alice", "https://example.com/x", "spiffe://a/1", "spiffe://b/2")), want: "spiffe://a/1", wantOK: true},
		{name: "CN when no SPIFFE URI", state: verified(issue("bob", "https://example.com/bob")), want: "bob", wantOK: true},
		{name: "neither", state: verified(issue(""))},
		{name: "unverified certificate", state: &tls.ConnectionState{PeerCertificates: []*x509.Certificate{issue("mallory")}}},
		{name: "no certificate", state: &tls.ConnectionState{}},
		{name: "nil", state: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tlsconfig.Identity(tt.state)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("Identity() = %q, %v; want %q, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
