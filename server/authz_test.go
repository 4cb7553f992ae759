package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	corvid "github.com/corvidml/corvid/client/go"
	corvidv1 "github.com/corvidml/corvid/gen/go/corvid/v1"
	"github.com/corvidml/corvid/server/config"
	"github.com/corvidml/corvid/server/tlsconfig"
)

// testJWT writes a one-key JWKS and returns its path and a token maker.
func testJWT(t *testing.T) (string, func(sub string) string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	p := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: "k1"}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	return p, func(sub string) string {
		tok, err := jwt.Signed(signer).Claims(jwt.Claims{Subject: sub, Issuer: "corvid-test", Audience: jwt.Audience{"corvid"},
			Expiry: jwt.NewNumericDate(time.Now().Add(time.Hour)), IssuedAt: jwt.NewNumericDate(time.Now())}).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
}

// TestAuthorizationEverywhere: one policy, applied alike to gRPC, each
// Stream item, REST (client certificate forwarded by the gateway, or a
// bearer token) and the control service on the admin port. alice (mTLS)
// may predict and see digits; bob (JWT) may only see it; a caller with
// neither is refused as unauthenticated.
func TestAuthorizationEverywhere(t *testing.T) {
	keys, token := testJWT(t)
	policy := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(policy, []byte(`rules:
  - {identity: "spiffe://corvid.test/alice", source: mtls, models: [digits], actions: [predict, status]}
  - {identity: bob, source: jwt, models: [digits], actions: [status]}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	in := startTLS(t, func(c *config.Config) {
		c.TLS.ClientAuth = tlsconfig.ClientAuthRequest
		c.Auth.JWT = &config.JWT{KeysFile: keys, Issuer: "corvid-test", Audience: "corvid"}
		c.Auth.PolicyFile = policy
	})
	ctx := context.Background()
	p := in.pki
	bob, err := corvid.Dial(in.grpc, corvid.WithTLS(p.caFile, "", ""), corvid.WithBearerToken(token("bob")))
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	anon, err := corvid.Dial(in.grpc, corvid.WithTLS(p.caFile, "", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()

	// gRPC.
	if _, err := in.client.Predict(ctx, "digits", digitsInput()); err != nil {
		t.Errorf("alice predict: %v", err)
	}
	if _, err := bob.Predict(ctx, "digits", digitsInput()); status.Code(err) != codes.PermissionDenied {
		t.Errorf("bob predict: %v, want PermissionDenied", err)
	}
	if _, err := bob.ModelStatus(ctx, "digits"); err != nil {
		t.Errorf("bob status: %v", err)
	}
	if _, err := anon.Predict(ctx, "digits", digitsInput()); status.Code(err) != codes.Unauthenticated {
		t.Errorf("anonymous predict: %v, want Unauthenticated", err)
	}

	// Each Stream item is authorized on its own.
	st, err := bob.Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Predict(ctx, &corvidv1.PredictRequest{Model: "digits", Inputs: digitsInput()}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("bob stream item: %v, want PermissionDenied", err)
	}
	st.Close()
	ast, err := in.client.Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ast.Predict(ctx, &corvidv1.PredictRequest{Model: "digits", Inputs: digitsInput()}); err != nil {
		t.Errorf("alice stream item: %v", err)
	}
	ast.Close()

	// REST: the same answers.
	body := restPredictBody(t)
	rest := func(client *http.Client, bearer string) int {
		req, _ := http.NewRequest("POST", "https://"+in.rest+"/v1/models/digits:predict", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	withCert, noCert := p.httpsClient(true), p.httpsClient(false)
	defer withCert.CloseIdleConnections()
	defer noCert.CloseIdleConnections()
	if code := rest(withCert, ""); code != 200 {
		t.Errorf("REST alice: %d, want 200", code)
	}
	if code := rest(noCert, token("bob")); code != 403 {
		t.Errorf("REST bob: %d, want 403", code)
	}
	if code := rest(noCert, ""); code != 401 {
		t.Errorf("REST anonymous: %d, want 401", code)
	}

	// Control on the admin port: alice may not.
	ctl, err := corvid.Dial(in.admin, corvid.WithTLS(p.caFile, p.clientCert, p.clientKey))
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	req, _ := http.NewRequest("POST", "https://"+in.admin+"/v1/repository/models/digits:unload", bytes.NewReader([]byte("{}")))
	resp, err := withCert.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("REST control by alice: %d, want 403", resp.StatusCode)
	}
	if _, err := in.client.Predict(ctx, "digits", digitsInput()); err != nil {
		t.Errorf("digits after a refused unload: %v", err)
	}
}

// TestRateLimit: beyond its bucket an identity gets RESOURCE_EXHAUSTED
// over gRPC and 429 over REST; another identity is not affected.
func TestRateLimit(t *testing.T) {
	in := startTLS(t, func(c *config.Config) {
		c.RateLimit.Rate, c.RateLimit.Burst = 0.01, 3
	})
	ctx := context.Background()
	var last error
	for range 10 {
		if _, last = in.client.Predict(ctx, "digits", digitsInput()); last != nil {
			break
		}
	}
	if status.Code(last) != codes.ResourceExhausted {
		t.Fatalf("over the limit: %v, want ResourceExhausted", last)
	}
	client := in.pki.httpsClient(true)
	defer client.CloseIdleConnections()
	resp, err := client.Post("https://"+in.rest+"/v1/models/digits:predict", "application/json", bytes.NewReader(restPredictBody(t)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("REST over the limit: %d, want 429", resp.StatusCode)
	}
}
