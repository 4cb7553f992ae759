package auth

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"

	jose "github.com/go-jose/go-jose/v4"
)

const (
	// maxKeysFileBytes bounds the keys file read at start and on every reload.
	maxKeysFileBytes = 1 << 20
	// maxKeys bounds the keys one file may hold.
	maxKeys = 64
	// minRSABits refuses RSA keys too short to trust.
	minRSABits = 2048
)

// publicKey is one verification key and the one algorithm it may verify:
// each accepted key type maps to exactly one accepted algorithm, so a token
// whose alg does not match its key's type is refused before any crypto runs.
type publicKey struct {
	kid string
	alg jose.SignatureAlgorithm
	key crypto.PublicKey
}

// keySet maps kid to key; it is immutable once built and swapped whole.
type keySet struct {
	byKID map[string]publicKey
	only  *publicKey // the sole key, used for tokens without a kid
}

// readKeys loads a JWKS (a JSON object with "keys") or a PEM file holding
// one or more public keys or certificates.
func readKeys(path string) (*keySet, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeysFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxKeysFileBytes {
		return nil, fmt.Errorf("larger than %d bytes", maxKeysFileBytes)
	}
	return parseKeys(b)
}

func parseKeys(b []byte) (*keySet, error) {
	var keys []publicKey
	var err error
	switch t := bytes.TrimSpace(b); {
	case len(t) > 0 && t[0] == '{':
		keys, err = parseJWKS(t)
	case bytes.Contains(t, []byte("-----BEGIN ")):
		keys, err = parsePEM(t)
	default:
		return nil, errors.New("want a JWKS JSON object or PEM public keys")
	}
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, errors.New("no signing keys")
	}
	if len(keys) > maxKeys {
		return nil, fmt.Errorf("%d keys, want at most %d", len(keys), maxKeys)
	}
	ks := &keySet{byKID: make(map[string]publicKey, len(keys))}
	for _, k := range keys {
		if _, dup := ks.byKID[k.kid]; dup {
			return nil, fmt.Errorf("kid %q appears twice", k.kid)
		}
		ks.byKID[k.kid] = k
	}
	if len(keys) == 1 {
		ks.only = &keys[0]
	}
	return ks, nil
}

func parseJWKS(b []byte) ([]publicKey, error) {
	// Decode key by key so an error names the key that caused it.
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("parse JWKS: %w", err)
	}
	var out []publicKey
	for i, r := range raw.Keys {
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(r); err != nil {
			return nil, fmt.Errorf("keys[%d]: %w", i, err)
		}
		if jwk.Use == "enc" {
			continue // an encryption key in a shared JWKS; never used to verify
		}
		if jwk.Use != "" && jwk.Use != "sig" {
			return nil, fmt.Errorf("keys[%d]: use %q, want sig", i, jwk.Use)
		}
		if !jwk.IsPublic() {
			return nil, fmt.Errorf("keys[%d]: holds a private or symmetric key; give public keys only", i)
		}
		k, err := checkKey(jwk.Key)
		if err != nil {
			return nil, fmt.Errorf("keys[%d]: %w", i, err)
		}
		if jwk.Algorithm != "" && jwk.Algorithm != string(k.alg) {
			return nil, fmt.Errorf("keys[%d]: alg %q does not fit a %s key", i, jwk.Algorithm, k.alg)
		}
		k.kid = jwk.KeyID
		if k.kid == "" {
			if k.kid, err = thumbprint(k.key); err != nil {
				return nil, fmt.Errorf("keys[%d]: %w", i, err)
			}
		}
		out = append(out, k)
	}
	return out, nil
}

// parsePEM reads PUBLIC KEY, RSA PUBLIC KEY and CERTIFICATE blocks. A block
// may carry a "kid" header; otherwise its kid is the key's RFC 7638 SHA-256
// thumbprint.
func parsePEM(b []byte) ([]publicKey, error) {
	var out []publicKey
	for i := 0; ; i++ {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		var pub any
		var err error
		switch block.Type {
		case "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var c *x509.Certificate
			if c, err = x509.ParseCertificate(block.Bytes); err == nil {
				pub = c.PublicKey
			}
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY":
			return nil, fmt.Errorf("PEM block %d is a private key; give public keys only", i)
		default:
			return nil, fmt.Errorf("PEM block %d: type %q, want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE", i, block.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", i, err)
		}
		k, err := checkKey(pub)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", i, err)
		}
		if k.kid = block.Headers["kid"]; k.kid == "" {
			if k.kid, err = thumbprint(k.key); err != nil {
				return nil, fmt.Errorf("PEM block %d: %w", i, err)
			}
		}
		out = append(out, k)
	}
	if len(bytes.TrimSpace(b)) != 0 {
		return nil, errors.New("text after the last PEM block")
	}
	return out, nil
}

// checkKey accepts RSA >= 2048 bits (RS256), ECDSA P-256 (ES256) and Ed25519
// (EdDSA), and nothing else.
func checkKey(pub any) (publicKey, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N == nil || k.N.BitLen() < minRSABits {
			return publicKey{}, fmt.Errorf("RSA key shorter than %d bits", minRSABits)
		}
		return publicKey{alg: jose.RS256, key: k}, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return publicKey{}, fmt.Errorf("ECDSA curve %s, want P-256 (ES256)", k.Curve.Params().Name)
		}
		return publicKey{alg: jose.ES256, key: k}, nil
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return publicKey{}, errors.New("Ed25519 key of the wrong size")
		}
		return publicKey{alg: jose.EdDSA, key: k}, nil
	default:
		return publicKey{}, fmt.Errorf("key type %T, want RSA, ECDSA P-256 or Ed25519 public key", pub)
	}
}

func thumbprint(pub crypto.PublicKey) (string, error) {
	jwk := jose.JSONWebKey{Key: pub}
	t, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(t), nil
}
