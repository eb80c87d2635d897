package api_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/docpipe/docpipe/internal/api"
	"github.com/docpipe/docpipe/internal/api/apitypes"
	"github.com/docpipe/docpipe/internal/auth"
	"github.com/docpipe/docpipe/internal/dbtest"
)

// jwksServer serves a key set that the test can rotate.
type jwksServer struct {
	mu   sync.Mutex
	keys []map[string]string
	srv  *httptest.Server
}

func newJWKSServer(t *testing.T) *jwksServer {
	j := &jwksServer{}
	j.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		j.mu.Lock()
		defer j.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": j.keys})
	}))
	t.Cleanup(j.srv.Close)
	return j
}

func (j *jwksServer) set(keys ...map[string]string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.keys = keys
}

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func rsaJWK(kid string, k *rsa.PublicKey) map[string]string {
	return map[string]string{"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig", "n": b64u(k.N.Bytes()), "e": b64u(big.NewInt(int64(k.E)).Bytes())}
}

func ecJWK(kid string, k *ecdsa.PublicKey) map[string]string {
	raw, _ := k.Bytes() // 0x04 || X || Y
	return map[string]string{"kty": "EC", "kid": kid, "alg": "ES256", "use": "sig", "crv": "P-256", "x": b64u(raw[1:33]), "y": b64u(raw[33:])}
}

func claims(user uuid.UUID, mod ...func(*jwt.RegisteredClaims)) jwt.RegisteredClaims {
	c := jwt.RegisteredClaims{Subject: user.String(), Audience: jwt.ClaimStrings{"authenticated"}, Issuer: "https://proj.supabase.co/auth/v1",
		ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour)), IssuedAt: jwt.NewNumericDate(time.Now())}
	for _, m := range mod {
		m(&c)
	}
	return c
}

func sign(t *testing.T, m jwt.SigningMethod, kid string, c jwt.Claims, key any) string {
	t.Helper()
	tk := jwt.NewWithClaims(m, c)
	if kid != "" {
		tk.Header["kid"] = kid
	}
	s, err := tk.SignedString(key)
	dbtest.Must(t, err, "sign %s", m.Alg())
	return s
}

// Bearer JWTs as Supabase issues them: HS256 with the project secret and RS256/ES256
// from the JWKS; exp, aud, iss and sub are checked; alg none, HS/RS confusion and
// unknown keys are rejected; a rotated JWKS is picked up.
func TestJWTAuth(t *testing.T) {
	t.Parallel()
	rsa1, err := rsa.GenerateKey(rand.Reader, 2048)
	dbtest.Must(t, err, "rsa key")
	rsa2, err := rsa.GenerateKey(rand.Reader, 2048)
	dbtest.Must(t, err, "rsa key")
	ec1, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	dbtest.Must(t, err, "ec key")
	js := newJWKSServer(t)
	js.set(rsaJWK("rsa-1", &rsa1.PublicKey), ecJWK("ec-1", &ec1.PublicKey))

	h := newHarness(t, harnessOpts{api: api.Options{JWT: auth.JWTOptions{
		HS256Secret: hsSecret, JWKSURL: js.srv.URL, Audience: "authenticated", Issuer: "https://proj.supabase.co/auth/v1",
		JWKSRefresh: time.Hour, JWKSMinRefresh: time.Nanosecond,
	}}})
	ok := func(name, tok string) {
		t.Helper()
		if r := h.do(http.MethodGet, "/v1/documents", tok, nil); r.status != http.StatusOK {
			t.Fatalf("%s: %d %s", name, r.status, r.body)
		}
	}
	reject := func(name, tok string) {
		t.Helper()
		r := h.do(http.MethodGet, "/v1/documents", tok, nil)
		r.problem(t, http.StatusUnauthorized, apitypes.CodeUnauthenticated)
		if r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", name)
		}
	}

	ok("HS256", sign(t, jwt.SigningMethodHS256, "", claims(userA), hsSecret))
	ok("RS256", sign(t, jwt.SigningMethodRS256, "rsa-1", claims(userA), rsa1))
	ok("ES256", sign(t, jwt.SigningMethodES256, "ec-1", claims(userA), ec1))

	reject("no credentials", "")
	reject("garbage", "not.a.jwt")
	reject("expired", sign(t, jwt.SigningMethodHS256, "", claims(userA, func(c *jwt.RegisteredClaims) {
		c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-10 * time.Minute))
	}), hsSecret))
	reject("no exp", sign(t, jwt.SigningMethodHS256, "", claims(userA, func(c *jwt.RegisteredClaims) { c.ExpiresAt = nil }), hsSecret))
	reject("wrong audience", sign(t, jwt.SigningMethodHS256, "", claims(userA, func(c *jwt.RegisteredClaims) {
		c.Audience = jwt.ClaimStrings{"anon-app"}
	}), hsSecret))
	reject("wrong issuer", sign(t, jwt.SigningMethodRS256, "rsa-1", claims(userA, func(c *jwt.RegisteredClaims) {
		c.Issuer = "https://evil.example/auth/v1"
	}), rsa1))
	reject("sub not a uuid", sign(t, jwt.SigningMethodHS256, "", claims(userA, func(c *jwt.RegisteredClaims) { c.Subject = "service_role" }), hsSecret))
	reject("wrong HS secret", sign(t, jwt.SigningMethodHS256, "", claims(userA), []byte("another-secret-that-is-32-bytes-long!!")))
	reject("wrong RSA key", sign(t, jwt.SigningMethodRS256, "rsa-1", claims(userA), rsa2))
	reject("alg none", sign(t, jwt.SigningMethodNone, "", claims(userA), jwt.UnsafeAllowNoneSignatureType))
	// Algorithm confusion: HS256 keyed with the RSA public key (PEM or DER) the JWKS publishes.
	der, err := x509.MarshalPKIXPublicKey(&rsa1.PublicKey)
	dbtest.Must(t, err, "der")
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	reject("HS256 with the RSA public key (PEM)", sign(t, jwt.SigningMethodHS256, "rsa-1", claims(userA), pemKey))
	reject("HS256 with the RSA public key (DER)", sign(t, jwt.SigningMethodHS256, "rsa-1", claims(userA), der))
	// An RS256 header naming the EC key, and an HS384 token, are refused.
	reject("RS256 naming the EC key", sign(t, jwt.SigningMethodRS256, "ec-1", claims(userA), rsa1))
	reject("HS384", sign(t, jwt.SigningMethodHS384, "", claims(userA), hsSecret))
	reject("PS256", sign(t, jwt.SigningMethodPS256, "rsa-1", claims(userA), rsa1))

	// Key rotation: the JWKS now publishes rsa-2 only. A token with the new kid makes
	// the verifier re-read the set; the retired key stops working.
	js.set(rsaJWK("rsa-2", &rsa2.PublicKey))
	ok("rotated key", sign(t, jwt.SigningMethodRS256, "rsa-2", claims(userA), rsa2))
	reject("retired key", sign(t, jwt.SigningMethodRS256, "rsa-1", claims(userA), rsa1))
	reject("retired EC key", sign(t, jwt.SigningMethodES256, "ec-1", claims(userA), ec1))

	// Public routes need nothing; a malformed Authorization header is a 401.
	if r := h.do(http.MethodGet, "/v1/openapi.json", "", nil); r.status != http.StatusOK {
		t.Fatalf("openapi: %d", r.status)
	}
	h.do(http.MethodGet, "/v1/documents", "", nil, "Authorization", "Basic dXNlcjpwYXNz").problem(t, 401, apitypes.CodeUnauthenticated)
	h.do(http.MethodGet, "/v1/documents", "", nil, "X-API-Key", "dpk_nope").problem(t, 401, apitypes.CodeUnauthenticated)
}
