package auth_test

import (
	"errors"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/corvidml/corvid/server/auth"
)

// FuzzVerify feeds arbitrary Authorization headers to a Verifier holding
// RSA, EC and Ed25519 keys: it must never panic, every refusal must wrap
// ErrUnauthenticated without quoting the header, and anything accepted must
// have carried a real signature (the fuzzer cannot forge one, so only the
// seeds signed here may pass).
func FuzzVerify(f *testing.F) {
	k := getKeys(f)
	v := newVerifier(f, writeJWKS(f, k))
	valid := map[string]bool{}
	for _, s := range []struct {
		alg jose.SignatureAlgorithm
		key any
		kid string
	}{{jose.RS256, k.rsa, "rsa"}, {jose.ES256, k.ec, "ec"}, {jose.EdDSA, k.ed, "ed"}} {
		h := "Bearer " + sign(f, s.alg, s.key, s.kid, goodClaims())
		valid[h] = true
		f.Add(h)
		f.Add(h[:len(h)-3]) // truncated signature
	}
	f.Fuzz(func(t *testing.T, header string) {
		id, err := v.Verify(header)
		if err == nil {
			if !valid[header] {
				t.Fatalf("accepted an unsigned header as %+v", id)
			}
			return
		}
		if !errors.Is(err, auth.ErrUnauthenticated) {
			t.Fatalf("error %q does not wrap ErrUnauthenticated", err)
		}
		if len(header) >= 16 && strings.Contains(err.Error(), header) {
			t.Fatalf("error %q quotes the header", err)
		}
	})
}

// FuzzParsePolicy: any bytes give a policy or an error, never a panic, and a
// parsed policy answers Allow.
func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte("rules:\n- identity: \"spiffe://corvid.local/team-a/*\"\n  models: [digits, \"fraud-*\"]\n  actions: [predict, status]\n"))
	f.Add([]byte("rules: [{identity: admin, models: ['*'], actions: [control]}]"))
	f.Add([]byte("rules: [{identity: '[', models: ['*'], actions: [control]}]"))
	f.Add([]byte("rules:\n- &a {identity: a}\n- *a\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := auth.ParsePolicy(b)
		if err != nil {
			return
		}
		for _, m := range []string{"digits", auth.AllModels, ""} {
			p.Allow(auth.Identity{Name: "admin", Source: auth.SourceMTLS}, auth.ActionControl, m)
		}
	})
}
