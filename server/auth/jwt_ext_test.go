package auth_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/corvidml/corvid/server/auth"
)

func TestVerifyAccepts(t *testing.T) {
	k := getKeys(t)
	v := newVerifier(t, writeJWKS(t, k))
	for _, tc := range []struct {
		name   string
		alg    jose.SignatureAlgorithm
		key    any
		kid    string
		scheme string
	}{
		{"RS256", jose.RS256, k.rsa, "rsa", "Bearer "},
		{"ES256", jose.ES256, k.ec, "ec", "Bearer "},
		{"EdDSA", jose.EdDSA, k.ed, "ed", "Bearer "},
		{"lower-case scheme", jose.ES256, k.ec, "ec", "bearer "},
		{"extra spaces", jose.ES256, k.ec, "ec", "Bearer   "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := goodClaims()
			got, err := v.Verify(tc.scheme + sign(t, tc.alg, tc.key, tc.kid, c))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			want := auth.Identity{Name: c.Subject, Source: auth.SourceJWT}
			if got != want {
				t.Errorf("got %+v, want %+v", got, want)
			}
		})
	}
}

func TestVerifyRefuses(t *testing.T) {
	k := getKeys(t)
	v := newVerifier(t, writeJWKS(t, k))
	rsaPEM := pemPublic(t, k.rsa.Public(), "")
	attacker, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	with := func(f func(*jwt.Claims)) jwt.Claims { c := goodClaims(); f(&c); return c }
	claims := goodClaims()

	for _, tc := range []struct {
		name   string
		header string
		reason string // the error must contain it
	}{
		{"alg none with empty signature",
			"Bearer " + forge(t, map[string]any{"alg": "none", "kid": "rsa"}, claims, func([]byte) []byte { return nil }),
			"not a compact JWS"},
		{"alg none with a signature",
			"Bearer " + forge(t, map[string]any{"alg": "none", "kid": "rsa"}, claims, func([]byte) []byte { return []byte("x") }),
			"algorithm not allowed"},
		{"alg None",
			"Bearer " + forge(t, map[string]any{"alg": "None"}, claims, func([]byte) []byte { return []byte("x") }),
			"algorithm not allowed"},
		{"HS256 with the RSA public key PEM as secret",
			"Bearer " + forge(t, map[string]any{"alg": "HS256", "kid": "rsa"}, claims, func(in []byte) []byte {
				m := hmac.New(sha256.New, rsaPEM)
				m.Write(in)
				return m.Sum(nil)
			}),
			"algorithm not allowed"},
		{"RS256 header signed with the EC key, kid of the EC key",
			"Bearer " + forge(t, map[string]any{"alg": "RS256", "kid": "ec"}, claims, es256Sig(t, k.ec)),
			"does not match the key type"},
		{"RS256 header signed with the EC key, kid of the RSA key",
			"Bearer " + forge(t, map[string]any{"alg": "RS256", "kid": "rsa"}, claims, es256Sig(t, k.ec)),
			"bad signature"},
		{"ES256 token whose kid names the RSA key",
			"Bearer " + forge(t, map[string]any{"alg": "ES256", "kid": "rsa"}, claims, es256Sig(t, k.ec)),
			"does not match the key type"},
		{"EdDSA token whose kid names the EC key",
			"Bearer " + sign(t, jose.EdDSA, k.ed, "ec", claims),
			"does not match the key type"},
		{"embedded jwk of the attacker's key",
			"Bearer " + forge(t, map[string]any{"alg": "ES256", "kid": "ec", "jwk": jose.JSONWebKey{Key: attacker.Public()}}, claims, es256Sig(t, attacker)),
			"bad signature"},
		{"signed by an unknown key under a known kid",
			"Bearer " + sign(t, jose.ES256, attacker, "ec", claims),
			"bad signature"},
		{"unknown kid",
			"Bearer " + sign(t, jose.ES256, k.ec, "nope", claims),
			"unknown key id"},
		{"no kid with several keys configured",
			"Bearer " + sign(t, jose.ES256, k.ec, "", claims),
			"no kid"},
		{"wrong audience",
			"Bearer " + sign(t, jose.ES256, k.ec, "ec", with(func(c *jwt.Claims) { c.Audience = jwt.Audience{"other"} })),
			"wrong audience"},
		{"no audience",
			"Bearer " + sign(t, jose.ES256, k.ec, "ec", with(func(c *jwt.Claims) { c.Audience = nil })),
			"wrong audience"},
		{"wrong issuer",
			"Bearer " + sign(t, jose.ES256, k.ec, "ec", with(func(c *jwt.Claims) { c.Issuer = "https://evil.test" })),
			"wrong issuer"},
		{"expired beyond the leeway",
			"Bearer " + sign(t, jose.ES256, k.ec, "ec", with(func(c *jwt.Claims) { c.Expiry = jwt.NewNumericDate(now.Add(-45 * time.Second)) })),
			"expired"},
		{"missing exp",
			"Bearer " + sign(t, jose.ES256, k.ec, "ec", with(func(c *jwt.Claims) { c.Expiry = nil })),
			"no exp"},
		{"nbf in the future",
			"Bearer " + sign(t, jose.ES256, k.ec, "ec", with(func(c *jwt.Claims) { c.NotBefore = jwt.NewNumericDate(now.Add(5 * time.Minute)) })),
			"not valid yet"},
		{"iat in the future",
			"Bearer " + sign(t, jose.ES256, k.ec, "ec", with(func(c *jwt.Claims) { c.IssuedAt = jwt.NewNumericDate(now.Add(5 * time.Minute)) })),
			"issued in the future"},
		{"no sub",
			"Bearer " + sign(t, jose.ES256, k.ec, "ec", with(func(c *jwt.Claims) { c.Subject = "" })),
			"no sub"},
		{"tampered payload",
			"Bearer " + tamper(sign(t, jose.ES256, k.ec, "ec", claims)),
			"bad signature"},
		{"no Bearer scheme", sign(t, jose.ES256, k.ec, "ec", claims), "Bearer <jwt>"},
		{"Basic scheme", "Basic dXNlcjpwYXNz", "Bearer <jwt>"},
		{"Bearer alone", "Bearer ", "Bearer <jwt>"},
		{"empty", "", "Bearer <jwt>"},
		{"two parts", "Bearer a.b", "not a compact JWS"},
		{"four parts", "Bearer a.b.c.d", "not a compact JWS"},
		{"JWE-shaped", "Bearer a.b.c.d.e", "not a compact JWS"},
		{"JSON serialization", `Bearer {"payload":"e30","signatures":[]}`, "not a compact JWS"},
		{"padding", "Bearer a.b.c=", "not a compact JWS"},
		{"header not JSON", "Bearer bm90IGpzb24.e30.c2ln", "algorithm not allowed"},
		{"megabyte header", "Bearer " + strings.Repeat("a", 1<<20), "longer than 8192 bytes"},
		{"one byte over the cap", "Bearer " + strings.Repeat("a", auth.MaxHeaderBytes-len("Bearer ")+1), "longer than 8192 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := v.Verify(tc.header)
			if err == nil {
				t.Fatalf("Verify = %+v, want an error", id)
			}
			if !errors.Is(err, auth.ErrUnauthenticated) {
				t.Errorf("error %q does not wrap ErrUnauthenticated", err)
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("error %q, want it to contain %q", err, tc.reason)
			}
			assertNoLeak(t, err, tc.header)
		})
	}
}

// assertNoLeak fails if the error quotes any part of the header.
func assertNoLeak(t *testing.T, err error, header string) {
	t.Helper()
	msg := err.Error()
	for _, part := range strings.FieldsFunc(header, func(r rune) bool { return r == '.' || r == ' ' }) {
		if len(part) >= 8 && strings.Contains(msg, part) {
			t.Errorf("error %q quotes the token", msg)
		}
	}
}

func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	c := goodClaims()
	c.Subject = "admin"
	b, _ := json.Marshal(c)
	parts[1] = b64.EncodeToString(b)
	return strings.Join(parts, ".")
}

func TestVerifyLeeway(t *testing.T) {
	k := getKeys(t)
	keysFile := writeJWKS(t, k)
	now := time.Now()
	for _, tc := range []struct {
		name   string
		leeway time.Duration
		exp    time.Duration // relative to now
		nbf    time.Duration
		ok     bool
	}{
		{"expired within the default 30s", 0, -10 * time.Second, -time.Minute, true},
		{"expired beyond the default 30s", 0, -45 * time.Second, -time.Minute, false},
		{"expired within a 60s leeway", 60 * time.Second, -45 * time.Second, -time.Minute, true},
		{"expired beyond a 5s leeway", 5 * time.Second, -15 * time.Second, -time.Minute, false},
		{"nbf within the leeway", 0, time.Minute, 10 * time.Second, true},
		{"nbf beyond the leeway", 0, time.Minute, 45 * time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := auth.NewVerifier(auth.JWTConfig{KeysFile: keysFile, Issuer: testIssuer, Audience: testAudience, Leeway: tc.leeway})
			if err != nil {
				t.Fatal(err)
			}
			c := goodClaims()
			c.Expiry = jwt.NewNumericDate(now.Add(tc.exp))
			c.NotBefore = jwt.NewNumericDate(now.Add(tc.nbf))
			c.IssuedAt = nil
			_, err = v.Verify("Bearer " + sign(t, jose.ES256, k.ec, "ec", c))
			if got := err == nil; got != tc.ok {
				t.Errorf("accepted = %v (err %v), want %v", got, err, tc.ok)
			}
		})
	}
}

func TestVerifyMegabyteHeaderIsCheap(t *testing.T) {
	v := newVerifier(t, writeJWKS(t, getKeys(t)))
	h := "Bearer " + strings.Repeat("eyJhbGciOiJSUzI1NiJ9.", 1<<20/21)
	start := time.Now()
	for range 1000 {
		if _, err := v.Verify(h); err == nil || !strings.Contains(err.Error(), "longer than") {
			t.Fatalf("Verify = %v, want a length error", err)
		}
	}
	// One length check each: 1000 calls take microseconds; parsing a
	// megabyte 1000 times would take seconds.
	if d := time.Since(start); d > time.Second {
		t.Errorf("1000 megabyte headers took %v", d)
	}
}

func TestVerifyPEM(t *testing.T) {
	k := getKeys(t)
	var pems bytes.Buffer
	pems.Write(pemPublic(t, k.rsa.Public(), "rsa"))
	// PKCS#1 form, kid taken from the PEM header.
	pems.Write(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Headers: map[string]string{"kid": "rsa1"}, Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)}))
	pems.Write(pemPublic(t, k.ec.Public(), "ec"))
	pems.Write(pemPublic(t, k.ed.Public(), "")) // kid is the thumbprint
	v := newVerifier(t, writeFile(t, "keys.pem", pems.Bytes()))

	thumb := jose.JSONWebKey{Key: k.ed.Public()}
	tp, err := thumb.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		tok  string
	}{
		{"RS256", sign(t, jose.RS256, k.rsa, "rsa", goodClaims())},
		{"RS256 PKCS#1", sign(t, jose.RS256, k.rsa, "rsa1", goodClaims())},
		{"ES256", sign(t, jose.ES256, k.ec, "ec", goodClaims())},
		{"EdDSA by thumbprint", sign(t, jose.EdDSA, k.ed, b64.EncodeToString(tp), goodClaims())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := v.Verify("Bearer " + tc.tok); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}
	if _, err := v.Verify("Bearer " + sign(t, jose.ES256, k.ec, "rsa", goodClaims())); err == nil {
		t.Error("ES256 token with the RSA key's kid accepted")
	}

	// A single key verifies tokens without a kid.
	one := newVerifier(t, writeFile(t, "one.pem", pemPublic(t, k.ec.Public(), "")))
	if _, err := one.Verify("Bearer " + sign(t, jose.ES256, k.ec, "", goodClaims())); err != nil {
		t.Errorf("no kid, one key: %v", err)
	}
	if _, err := one.Verify("Bearer " + sign(t, jose.RS256, k.rsa, "", goodClaims())); err == nil {
		t.Error("RS256 token accepted by the only key, an EC key")
	}
}

func TestReload(t *testing.T) {
	k := getKeys(t)
	path := writeFile(t, "keys.pem", pemPublic(t, k.rsa.Public(), "rsa"))
	v := newVerifier(t, path)
	ecTok := "Bearer " + sign(t, jose.ES256, k.ec, "ec", goodClaims())
	rsaTok := "Bearer " + sign(t, jose.RS256, k.rsa, "rsa", goodClaims())
	if _, err := v.Verify(ecTok); err == nil || !strings.Contains(err.Error(), "unknown key id") {
		t.Fatalf("before reload: %v, want unknown key id", err)
	}

	// Rotate: add the EC key, drop the RSA key.
	if err := os.WriteFile(path, pemPublic(t, k.ec.Public(), "ec"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := v.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ecTok); err != nil {
		t.Errorf("after reload: %v", err)
	}
	if _, err := v.Verify(rsaTok); err == nil {
		t.Error("after reload: a token of the removed key still verifies")
	}

	// A broken file keeps the last good keys.
	if err := os.WriteFile(path, []byte("-----BEGIN PUBLIC KEY-----\ngarbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := v.Reload(); err == nil || !strings.Contains(err.Error(), "auth.jwt.keys_file") {
		t.Errorf("Reload of a broken file = %v, want an error naming auth.jwt.keys_file", err)
	}
	if _, err := v.Verify(ecTok); err != nil {
		t.Errorf("after a failed reload: %v", err)
	}

	// Reload under concurrent Verify calls (run with -race).
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 50 {
			if err := os.WriteFile(path, pemPublic(t, k.ec.Public(), "ec"), 0o600); err != nil {
				t.Error(err)
				return
			}
			_ = v.Reload() // may see a half-written file; the old keys stay
		}
	}()
	for range 200 {
		if _, err := v.Verify(ecTok); err != nil {
			t.Errorf("during reloads: %v", err)
		}
	}
	<-done
}

func TestJWTConfigValidate(t *testing.T) {
	c := auth.JWTConfig{Leeway: 61 * time.Second}
	err := c.Validate()
	for _, want := range []string{"auth.jwt.keys_file", "auth.jwt.issuer", "auth.jwt.audience", "auth.jwt.leeway"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %s", err, want)
		}
	}
	c = auth.JWTConfig{KeysFile: "k", Issuer: "i", Audience: "a", Leeway: -time.Second}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "auth.jwt.leeway") {
		t.Errorf("negative leeway: Validate() = %v", err)
	}
	c.Leeway = 60 * time.Second
	if err := c.Validate(); err != nil {
		t.Errorf("60s leeway: %v", err)
	}
}

func TestKeysFileErrors(t *testing.T) {
	k := getKeys(t)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKCS8PrivateKey(k.ec)
	if err != nil {
		t.Fatal(err)
	}
	jwks := func(keys ...jose.JSONWebKey) []byte {
		b, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name string
		file []byte
		want string
	}{
		{"empty", nil, "want a JWKS JSON object or PEM"},
		{"garbage", []byte("hello"), "want a JWKS JSON object or PEM"},
		{"empty JWKS", []byte(`{"keys":[]}`), "no signing keys"},
		{"bad JSON", []byte(`{"keys":[`), "parse JWKS"},
		{"RSA 1024", pemPublic(t, small.Public(), ""), "shorter than 2048"},
		{"P-384", pemPublic(t, p384.Public(), ""), "want P-256"},
		{"PEM private key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}), "private key"},
		{"PEM unknown type", pem.EncodeToMemory(&pem.Block{Type: "FOO", Bytes: []byte{1}}), `type "FOO"`},
		{"PEM trailing text", append(pemPublic(t, k.ec.Public(), ""), "junk"...), "after the last PEM block"},
		{"PEM duplicate kid", append(pemPublic(t, k.ec.Public(), "a"), pemPublic(t, k.ed.Public(), "a")...), `kid "a" appears twice`},
		{"JWKS private key", jwks(jose.JSONWebKey{Key: k.ec, KeyID: "ec"}), "keys[0]: holds a private"},
		{"JWKS symmetric key", jwks(jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "hs"}), "keys[0]: holds a private or symmetric"},
		{"JWKS alg mismatch", jwks(jose.JSONWebKey{Key: k.ec.Public(), KeyID: "ec", Algorithm: "RS256"}), `keys[0]: alg "RS256" does not fit`},
		{"JWKS use", jwks(jose.JSONWebKey{Key: k.ec.Public(), KeyID: "ec", Use: "other"}), `keys[0]: use "other"`},
		{"JWKS only enc keys", jwks(jose.JSONWebKey{Key: k.ec.Public(), KeyID: "ec", Use: "enc"}), "no signing keys"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := auth.NewVerifier(auth.JWTConfig{KeysFile: writeFile(t, "keys", tc.file), Issuer: testIssuer, Audience: testAudience})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "auth.jwt.keys_file") {
				t.Errorf("NewVerifier = %v, want an error naming auth.jwt.keys_file and containing %q", err, tc.want)
			}
		})
	}
	if _, err := auth.NewVerifier(auth.JWTConfig{KeysFile: "/nonexistent/keys.pem", Issuer: testIssuer, Audience: testAudience}); err == nil {
		t.Error("missing keys file accepted")
	}
}
