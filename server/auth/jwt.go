package auth

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

const (
	// MaxHeaderBytes caps the Authorization header; longer values are refused
	// before any decoding, so a megabyte header costs one length check.
	MaxHeaderBytes = 8 << 10
	// MaxLeeway is the largest clock skew JWTConfig accepts.
	MaxLeeway = 60 * time.Second
	// DefaultLeeway is used when JWTConfig.Leeway is zero.
	DefaultLeeway = 30 * time.Second
)

// allowedAlgs is the whole list: no HMAC (a public key must never become a
// shared secret) and no "none".
var allowedAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA}

// JWTConfig configures bearer-token verification (YAML: auth.jwt).
type JWTConfig struct {
	// KeysFile (auth.jwt.keys_file) is a JWKS JSON file, or a PEM file with
	// one or more PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE blocks. Keys are
	// RSA >= 2048 bits, ECDSA P-256 or Ed25519. A token's kid selects the
	// key; a PEM key's kid is its "kid" PEM header or else its RFC 7638
	// SHA-256 thumbprint (base64url). Keys are never fetched from URLs
	// (jku, x5u and embedded jwk headers are ignored).
	KeysFile string
	// Issuer (auth.jwt.issuer) must equal the token's iss claim.
	Issuer string
	// Audience (auth.jwt.audience) must be one of the token's aud values.
	Audience string
	// Leeway (auth.jwt.leeway) is the clock skew allowed on exp, nbf and
	// iat: 0 means DefaultLeeway (30s); at most MaxLeeway (60s).
	Leeway time.Duration
}

// Validate reports every invalid setting at once, naming YAML keys.
func (c *JWTConfig) Validate() error {
	var errs []error
	if c.KeysFile == "" {
		errs = append(errs, errors.New("auth.jwt.keys_file is empty, want a JWKS or PEM file"))
	}
	if c.Issuer == "" {
		errs = append(errs, errors.New("auth.jwt.issuer is empty, want the iss every token must carry"))
	}
	if c.Audience == "" {
		errs = append(errs, errors.New("auth.jwt.audience is empty, want the aud every token must carry"))
	}
	if c.Leeway < 0 || c.Leeway > MaxLeeway {
		errs = append(errs, fmt.Errorf("auth.jwt.leeway is %v, want 0s..%v (0: %v)", c.Leeway, MaxLeeway, DefaultLeeway))
	}
	return errors.Join(errs...)
}

// Verifier checks bearer JWTs. It is safe for concurrent use; Reload swaps
// the keys atomically under in-flight Verify calls.
type Verifier struct {
	cfg  JWTConfig
	keys atomic.Pointer[keySet]
}

// NewVerifier validates cfg and reads its keys file.
func NewVerifier(cfg JWTConfig) (*Verifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = DefaultLeeway
	}
	v := &Verifier{cfg: cfg}
	if err := v.Reload(); err != nil {
		return nil, err
	}
	return v, nil
}

// Reload re-reads the keys file. On error the previous keys stay in use, so
// a half-written or broken file never locks every caller out.
func (v *Verifier) Reload() error {
	ks, err := readKeys(v.cfg.KeysFile)
	if err != nil {
		return fmt.Errorf("auth.jwt.keys_file %s: %w", v.cfg.KeysFile, err)
	}
	v.keys.Store(ks)
	return nil
}

// Verify checks a raw Authorization header value ("Bearer <jwt>") and returns
// the identity in its sub claim. Every error wraps ErrUnauthenticated with a
// fixed reason that quotes nothing from the header.
func (v *Verifier) Verify(header string) (Identity, error) {
	if len(header) > MaxHeaderBytes {
		return Identity{}, unauthenticated("authorization header longer than %d bytes", MaxHeaderBytes)
	}
	token, ok := bearer(header)
	if !ok {
		return Identity{}, unauthenticated("want an authorization header \"Bearer <jwt>\"")
	}
	if !compactJWS(token) {
		return Identity{}, unauthenticated("token is not a compact JWS")
	}
	if !allowedAlg(token) {
		return Identity{}, unauthenticated("token algorithm not allowed, want RS256, ES256 or EdDSA")
	}
	tok, err := jwt.ParseSigned(token, allowedAlgs)
	if err != nil {
		return Identity{}, unauthenticated("malformed token")
	}
	if len(tok.Headers) != 1 {
		return Identity{}, unauthenticated("want exactly one signature")
	}
	h := tok.Headers[0]
	ks := v.keys.Load()
	if ks == nil {
		return Identity{}, unauthenticated("no keys loaded")
	}
	var key publicKey
	if h.KeyID == "" {
		if ks.only == nil {
			return Identity{}, unauthenticated("token has no kid and several keys are configured")
		}
		key = *ks.only
	} else if key, ok = ks.byKID[h.KeyID]; !ok {
		return Identity{}, unauthenticated("unknown key id")
	}
	// Each key verifies exactly one algorithm: an RS256 header on an EC key,
	// or any other pairing, stops here before the signature is checked.
	if jose.SignatureAlgorithm(h.Algorithm) != key.alg {
		return Identity{}, unauthenticated("token algorithm does not match the key type")
	}
	var c jwt.Claims
	if err := tok.Claims(key.key, &c); err != nil {
		return Identity{}, unauthenticated("bad signature or claims")
	}
	if c.Expiry == nil {
		return Identity{}, unauthenticated("token has no exp")
	}
	err = c.ValidateWithLeeway(jwt.Expected{
		Issuer:      v.cfg.Issuer,
		AnyAudience: jwt.Audience{v.cfg.Audience},
		Time:        time.Now(),
	}, v.cfg.Leeway)
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrInvalidIssuer):
		return Identity{}, unauthenticated("wrong issuer")
	case errors.Is(err, jwt.ErrInvalidAudience):
		return Identity{}, unauthenticated("wrong audience")
	case errors.Is(err, jwt.ErrExpired):
		return Identity{}, unauthenticated("token expired")
	case errors.Is(err, jwt.ErrNotValidYet):
		return Identity{}, unauthenticated("token not valid yet (nbf)")
	case errors.Is(err, jwt.ErrIssuedInTheFuture):
		return Identity{}, unauthenticated("token issued in the future (iat)")
	default:
		return Identity{}, unauthenticated("invalid claims")
	}
	if c.Subject == "" {
		return Identity{}, unauthenticated("token has no sub")
	}
	return Identity{Name: c.Subject, Source: SourceJWT}, nil
}

func unauthenticated(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnauthenticated, fmt.Sprintf(format, args...))
}

// bearer returns the token after a case-insensitive "Bearer" scheme and
// spaces (RFC 7235: the scheme is case-insensitive).
func bearer(h string) (string, bool) {
	const scheme = "bearer "
	if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return "", false
	}
	t := strings.TrimLeft(h[len(scheme):], " ")
	t = strings.TrimRight(t, " ")
	return t, t != ""
}

// compactJWS checks the shape header.payload.signature in the base64url
// alphabet with three non-empty parts, so nothing else reaches the parser
// (and an unsigned "alg: none" token with its empty signature stops here).
func compactJWS(t string) bool {
	dots, run := 0, 0
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case c == '.':
			if run == 0 {
				return false
			}
			dots, run = dots+1, 0
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
			run++
		default:
			return false
		}
	}
	return dots == 2 && run > 0
}

// allowedAlg reads the protected header's alg ahead of the parser, so a
// refused algorithm ("none", HS256, ...) gets its own reason. The parser
// enforces the same list again.
func allowedAlg(token string) bool {
	seg, _, _ := strings.Cut(token, ".")
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return false
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(b, &h) != nil {
		return false
	}
	for _, a := range allowedAlgs {
		if h.Alg == string(a) {
			return true
		}
	}
	return false
}
