package auth

import (
	"crypto/x509"
	"errors"
)

// Sources of an Identity.
const (
	SourceMTLS = "mtls"
	SourceJWT  = "jwt"
)

// ErrUnauthenticated is wrapped by every verification failure. The wrapping
// text is a short fixed reason; it never contains the token or any header.
var ErrUnauthenticated = errors.New("unauthenticated")

// ErrPermissionDenied is for the server to wrap when Policy.Allow refuses a
// request, so the error-to-status mapping stays in one place.
var ErrPermissionDenied = errors.New("permission denied")

// Identity is a verified caller.
type Identity struct {
	// Name is the JWT "sub" claim, or the client certificate's first URI SAN
	// (a SPIFFE ID) or else its subject common name.
	Name string
	// Source is SourceMTLS or SourceJWT.
	Source string
}

// IdentityFromCertificate names the caller behind a client certificate that
// the TLS stack has already verified against the client CA bundle. The first
// URI SAN wins (spiffe://corvid.local/team-a/svc), so identities can be
// matched by path; the subject CN is the fallback. It returns false when the
// certificate carries neither.
func IdentityFromCertificate(cert *x509.Certificate) (Identity, bool) {
	if cert == nil {
		return Identity{}, false
	}
	for _, u := range cert.URIs {
		if s := u.String(); s != "" {
			return Identity{Name: s, Source: SourceMTLS}, true
		}
	}
	if cn := cert.Subject.CommonName; cn != "" {
		return Identity{Name: cn, Source: SourceMTLS}, true
	}
	return Identity{}, false
}
