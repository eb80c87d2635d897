package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// JWTOptions configure token verification. At least one of HS256Secret and JWKSURL
// must be set.
type JWTOptions struct {
	// HS256Secret is the shared secret of HS256 tokens (Supabase: the project's JWT
	// secret). Empty: HS256 tokens are rejected.
	HS256Secret []byte
	// JWKSURL serves the public keys of RS256/ES256 tokens (Supabase:
	// https://<ref>.supabase.co/auth/v1/.well-known/jwks.json). Empty: asymmetric
	// tokens are rejected.
	JWKSURL string
	// Audience must be in the token's aud (Supabase: "authenticated"). Empty: aud is
	// not checked.
	Audience string
	// Issuer must equal the token's iss (Supabase: https://<ref>.supabase.co/auth/v1).
	// Empty: iss is not checked.
	Issuer string
	// Leeway tolerates clock skew on exp/nbf/iat (default 30s).
	Leeway time.Duration
	// JWKSRefresh is how often the key set is re-read (default 10m); a token with an
	// unknown kid also triggers a re-read, at most once per JWKSMinRefresh (default 30s).
	JWKSRefresh    time.Duration
	JWKSMinRefresh time.Duration
	// HTTPClient fetches the JWKS (default: 10 s timeout).
	HTTPClient *http.Client
	// Now is the clock (tests); nil = time.Now.
	Now func() time.Time
}

// Verifier checks Bearer JWTs.
type Verifier struct {
	opts   JWTOptions
	jwks   *jwks
	parser *jwt.Parser
}

// Claims are the claims docpipe reads (Supabase adds role, email, session_id, …).
type Claims struct {
	jwt.RegisteredClaims
	Role string `json:"role,omitempty"`
}

// NewVerifier checks the options.
func NewVerifier(o JWTOptions) (*Verifier, error) {
	if len(o.HS256Secret) == 0 && o.JWKSURL == "" {
		return nil, errors.New("JWT verification needs an HS256 secret or a JWKS URL")
	}
	if len(o.HS256Secret) > 0 && len(o.HS256Secret) < 32 {
		return nil, errors.New("the HS256 JWT secret must be at least 32 bytes")
	}
	if o.Leeway <= 0 {
		o.Leeway = 30 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	var methods []string
	if len(o.HS256Secret) > 0 {
		methods = append(methods, jwt.SigningMethodHS256.Alg())
	}
	v := &Verifier{opts: o}
	if o.JWKSURL != "" {
		methods = append(methods, jwt.SigningMethodRS256.Alg(), jwt.SigningMethodES256.Alg())
		if o.JWKSRefresh <= 0 {
			o.JWKSRefresh = 10 * time.Minute
		}
		if o.JWKSMinRefresh <= 0 {
			o.JWKSMinRefresh = 30 * time.Second
		}
		client := o.HTTPClient
		if client == nil {
			client = &http.Client{Timeout: 10 * time.Second}
		}
		v.jwks = &jwks{url: o.JWKSURL, client: client, refresh: o.JWKSRefresh, minRefresh: o.JWKSMinRefresh, now: o.Now}
	}
	opts := []jwt.ParserOption{
		// Only these algorithms, each with its own key type (see keyFor): "none", and
		// an RS/ES token signed with HMAC over the public key, never verify.
		jwt.WithValidMethods(methods),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(o.Leeway),
		jwt.WithTimeFunc(o.Now),
		jwt.WithIssuedAt(),
	}
	if o.Audience != "" {
		opts = append(opts, jwt.WithAudience(o.Audience))
	}
	if o.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(o.Issuer))
	}
	v.parser = jwt.NewParser(opts...)
	v.opts = o
	return v, nil
}

// Verify checks the token's signature, algorithm, exp, aud and iss, and returns the
// principal named by its sub (a UUID). Every failure wraps ErrInvalidToken.
func (v *Verifier) Verify(ctx context.Context, token string) (Principal, error) {
	var c Claims
	_, err := v.parser.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) { return v.keyFor(ctx, t) })
	if err != nil {
		return Principal{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	sub, err := uuid.Parse(c.Subject)
	if err != nil || sub == uuid.Nil {
		return Principal{}, fmt.Errorf("%w: sub %q is not a user id (UUID)", ErrInvalidToken, c.Subject)
	}
	return Principal{UserID: sub, Kind: "jwt", ID: "user:" + sub.String()}, nil
}

// keyFor returns the verification key for the token's algorithm: the shared secret
// ([]byte) for HS256 only, a JWKS public key of the matching type for RS256/ES256.
// The jwt library also refuses a key of the wrong Go type for a method.
func (v *Verifier) keyFor(ctx context.Context, t *jwt.Token) (any, error) {
	switch t.Method.Alg() {
	case jwt.SigningMethodHS256.Alg():
		if len(v.opts.HS256Secret) == 0 {
			return nil, errors.New("HS256 tokens are not accepted")
		}
		return v.opts.HS256Secret, nil
	case jwt.SigningMethodRS256.Alg(), jwt.SigningMethodES256.Alg():
		if v.jwks == nil {
			return nil, errors.New("asymmetric tokens are not accepted (no JWKS URL)")
		}
		kid, _ := t.Header["kid"].(string)
		return v.jwks.key(ctx, kid, t.Method.Alg())
	}
	return nil, fmt.Errorf("algorithm %q is not accepted", t.Method.Alg())
}
