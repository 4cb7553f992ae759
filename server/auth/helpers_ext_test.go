package auth_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/corvidml/corvid/server/auth"
)

const (
	testIssuer   = "https://issuer.corvid.test"
	testAudience = "corvid"
)

// testKeys are generated once per test binary: RSA 2048 is slow under -race.
type testKeys struct {
	rsa *rsa.PrivateKey
	ec  *ecdsa.PrivateKey
	ed  ed25519.PrivateKey
}

var (
	keysOnce sync.Once
	keys     testKeys
)

func getKeys(tb testing.TB) testKeys {
	tb.Helper()
	keysOnce.Do(func() {
		var err error
		if keys.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if keys.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
		if _, keys.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
			panic(err)
		}
	})
	return keys
}

// writeJWKS writes the public halves of the test keys with kids rsa, ec, ed.
func writeJWKS(tb testing.TB, k testKeys) string {
	tb.Helper()
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: k.rsa.Public(), KeyID: "rsa", Algorithm: "RS256", Use: "sig"},
		{Key: k.ec.Public(), KeyID: "ec", Algorithm: "ES256", Use: "sig"},
		{Key: k.ed.Public(), KeyID: "ed"},
	}}
	b, err := json.Marshal(set)
	if err != nil {
		tb.Fatal(err)
	}
	return writeFile(tb, "keys.json", b)
}

// pemPublic encodes a public key as a PUBLIC KEY block, with a kid header if
// kid is not empty.
func pemPublic(tb testing.TB, pub crypto.PublicKey, kid string) []byte {
	tb.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		tb.Fatal(err)
	}
	b := &pem.Block{Type: "PUBLIC KEY", Bytes: der}
	if kid != "" {
		b.Headers = map[string]string{"kid": kid}
	}
	return pem.EncodeToMemory(b)
}

func writeFile(tb testing.TB, name string, b []byte) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

func newVerifier(tb testing.TB, keysFile string) *auth.Verifier {
	tb.Helper()
	v, err := auth.NewVerifier(auth.JWTConfig{KeysFile: keysFile, Issuer: testIssuer, Audience: testAudience})
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// goodClaims are valid for five minutes.
func goodClaims() jwt.Claims {
	now := time.Now()
	return jwt.Claims{
		Subject:   "spiffe://corvid.local/team-a/svc",
		Issuer:    testIssuer,
		Audience:  jwt.Audience{testAudience},
		Expiry:    jwt.NewNumericDate(now.Add(5 * time.Minute)),
		NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
		IssuedAt:  jwt.NewNumericDate(now.Add(-time.Minute)),
	}
}

// sign makes a well-formed token with go-jose.
func sign(tb testing.TB, alg jose.SignatureAlgorithm, key any, kid string, claims any) string {
	tb.Helper()
	sk := jose.SigningKey{Algorithm: alg, Key: key}
	if kid != "" {
		sk.Key = jose.JSONWebKey{Key: key, KeyID: kid}
	}
	s, err := jose.NewSigner(sk, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		tb.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

var b64 = base64.RawURLEncoding

// forge builds header.payload and signs it with signFn, bypassing any
// library checks, for tokens no honest signer would make.
func forge(tb testing.TB, header map[string]any, claims any, signFn func(signingInput []byte) []byte) string {
	tb.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		tb.Fatal(err)
	}
	in := b64.EncodeToString(h) + "." + b64.EncodeToString(c)
	return in + "." + b64.EncodeToString(signFn([]byte(in)))
}

// es256Sig is a raw r||s ES256 signature.
func es256Sig(tb testing.TB, k *ecdsa.PrivateKey) func([]byte) []byte {
	return func(in []byte) []byte {
		d := sha256.Sum256(in)
		r, s, err := ecdsa.Sign(rand.Reader, k, d[:])
		if err != nil {
			tb.Fatal(err)
		}
		out := make([]byte, 64)
		r.FillBytes(out[:32])
		s.FillBytes(out[32:])
		return out
	}
}
