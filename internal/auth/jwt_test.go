package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func rsaJWK(kid, alg string, k *rsa.PublicKey) map[string]string {
	m := map[string]string{"kty": "RSA", "kid": kid, "n": b64u(k.N.Bytes()), "e": b64u(big.NewInt(int64(k.E)).Bytes())}
	if alg != "" {
		m["alg"] = alg
	}
	return m
}

func mustSign(t *testing.T, m jwt.SigningMethod, kid string, key any, mod ...func(jwt.MapClaims)) string {
	t.Helper()
	c := jwt.MapClaims{"sub": uuid.NewString(), "exp": time.Now().Add(time.Hour).Unix(), "aud": "authenticated"}
	for _, f := range mod {
		f(c)
	}
	tk := jwt.NewWithClaims(m, c)
	if kid != "" {
		tk.Header["kid"] = kid
	}
	s, err := tk.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func serveJWKS(t *testing.T, keys ...map[string]string) (*httptest.Server, *atomic.Int32) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": keys})
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func TestVerifierJWKSOnly(t *testing.T) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srv, hits := serveJWKS(t, rsaJWK("k1", "", &priv.PublicKey),
		map[string]string{"kty": "oct", "kid": "hmac", "k": b64u([]byte("shared"))}, // never used for HS256
		map[string]string{"kty": "RSA", "kid": "enc", "use": "enc", "n": b64u(priv.N.Bytes()), "e": "AQAB"},
		map[string]string{"kty": "EC", "kid": "p384", "crv": "P-384", "x": "AA", "y": "AA"})
	v, err := NewVerifier(JWTOptions{JWKSURL: srv.URL, Audience: "authenticated"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := v.Verify(ctx, mustSign(t, jwt.SigningMethodRS256, "k1", priv)); err != nil {
		t.Fatalf("RS256: %v", err)
	}
	// No kid: the only RS256-capable signing key is used.
	if _, err := v.Verify(ctx, mustSign(t, jwt.SigningMethodRS256, "", priv)); err != nil {
		t.Fatalf("RS256 without kid: %v", err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	for name, tok := range map[string]string{
		"HS256 with the public key": mustSign(t, jwt.SigningMethodHS256, "k1", pemKey),
		"HS256 with the oct key":    mustSign(t, jwt.SigningMethodHS256, "hmac", []byte("shared")),
		"ES256 naming an RSA key":   mustSign(t, jwt.SigningMethodES256, "k1", ec),
		"encryption key":            mustSign(t, jwt.SigningMethodRS256, "enc", priv),
		"alg none":                  mustSign(t, jwt.SigningMethodNone, "", jwt.UnsafeAllowNoneSignatureType),
		"missing sub":               mustSign(t, jwt.SigningMethodRS256, "k1", priv, func(c jwt.MapClaims) { delete(c, "sub") }),
		"nbf in the future":         mustSign(t, jwt.SigningMethodRS256, "k1", priv, func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(time.Hour).Unix() }),
		"iat in the future":         mustSign(t, jwt.SigningMethodRS256, "k1", priv, func(c jwt.MapClaims) { c["iat"] = time.Now().Add(time.Hour).Unix() }),
		"aud missing":               mustSign(t, jwt.SigningMethodRS256, "k1", priv, func(c jwt.MapClaims) { delete(c, "aud") }),
	} {
		if _, err := v.Verify(ctx, tok); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: got %v, want ErrInvalidToken", name, err)
		}
	}
	// Unknown kids re-read the set at most once per JWKSMinRefresh (default 30 s).
	before := hits.Load()
	for range 5 {
		_, _ = v.Verify(ctx, mustSign(t, jwt.SigningMethodRS256, "unknown", priv))
	}
	if n := hits.Load() - before; n > 1 {
		t.Errorf("%d JWKS fetches for 5 unknown-kid tokens, want at most 1", n)
	}
}

func TestVerifierOptions(t *testing.T) {
	if _, err := NewVerifier(JWTOptions{}); err == nil {
		t.Error("no secret and no JWKS accepted")
	}
	if _, err := NewVerifier(JWTOptions{HS256Secret: []byte("short")}); err == nil {
		t.Error("a 5-byte HS256 secret accepted")
	}
	// A JWKS that cannot be read rejects tokens (no keys), it does not accept them.
	v, err := NewVerifier(JWTOptions{JWKSURL: "http://127.0.0.1:1/jwks.json", HTTPClient: &http.Client{Timeout: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	priv, _ := rsa.GenerateKey(rand.Reader, 2048)
	if _, err := v.Verify(context.Background(), mustSign(t, jwt.SigningMethodRS256, "k1", priv)); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("unreachable JWKS: %v", err)
	}
}

func TestParseJWKSRejectsWeakAndMalformedKeys(t *testing.T) {
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	body, _ := json.Marshal(map[string]any{"keys": []map[string]string{
		rsaJWK("small", "RS256", &small.PublicKey),
		{"kty": "EC", "kid": "off-curve", "crv": "P-256", "x": b64u(make([]byte, 32)), "y": b64u(make([]byte, 32))},
		{"kty": "RSA", "kid": "bad", "n": "!!", "e": "AQAB"},
	}})
	if _, err := parseJWKS(body); err == nil {
		t.Fatal("a set of only weak or malformed keys was accepted")
	}
	if _, err := parseJWKS([]byte("<html>")); err == nil {
		t.Fatal("HTML accepted as a JWKS")
	}
}

func TestAuthenticateHeaders(t *testing.T) {
	a := &Authenticator{}
	for name, h := range map[string][2]string{
		"none":        {"", ""},
		"basic":       {"Authorization", "Basic dTpw"},
		"empty token": {"Authorization", "Bearer "},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if h[0] != "" {
			r.Header.Set(h[0], h[1])
		}
		if _, err := a.Authenticate(r); !errors.Is(err, ErrNoCredentials) || !Unauthenticated(err) {
			t.Errorf("%s: %v", name, err)
		}
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("X-API-Key", "not-a-docpipe-key")
	if _, err := a.Authenticate(r); !errors.Is(err, ErrInvalidAPIKey) {
		t.Errorf("foreign X-API-Key: %v", err)
	}
	r.Header.Set("Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.x")
	if _, err := a.Authenticate(r); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("JWT without a verifier: %v", err)
	}
	if !IsAPIKey(KeyPrefix+"abc") || IsAPIKey("eyJ") || len(HashKey("x")) != 64 {
		t.Error("key helpers")
	}
}
