package auth_test

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"net/url"
	"testing"

	"github.com/corvidml/corvid/server/auth"
)

func TestIdentityFromCertificate(t *testing.T) {
	spiffe, err := url.Parse("spiffe://corvid.local/team-a/scorer")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		cert   *x509.Certificate
		want   auth.Identity
		wantOK bool
	}{
		{"URI SAN wins", &x509.Certificate{URIs: []*url.URL{spiffe}, Subject: pkix.Name{CommonName: "scorer"}},
			auth.Identity{Name: spiffe.String(), Source: auth.SourceMTLS}, true},
		{"CN fallback", &x509.Certificate{Subject: pkix.Name{CommonName: "admin"}},
			auth.Identity{Name: "admin", Source: auth.SourceMTLS}, true},
		{"neither", &x509.Certificate{}, auth.Identity{}, false},
		{"nil", nil, auth.Identity{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := auth.IdentityFromCertificate(tc.cert)
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("got %+v, %v, want %+v, %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}
