// Package auth authenticates API callers: Bearer JWTs as Supabase Auth issues them
// (HS256 with the project's shared secret, RS256/ES256 through the project's JWKS)
// and docpipe's own service API keys (stored as SHA-256 hashes, optionally admin).
// A successful check yields a Principal: the user whose documents the caller may
// see, or every user's for an admin key.
package auth

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/uuid"
)

// Principal is an authenticated caller.
type Principal struct {
	// UserID is the tenant the caller acts as (JWT sub, or the key's user). It is
	// uuid.Nil for an admin key created without a user.
	UserID uuid.UUID
	// Admin callers see and manage every user's documents.
	Admin bool
	// Kind is "jwt" or "api_key".
	Kind string
	// ID identifies the credential for rate limiting and idempotency: "user:<sub>"
	// for JWTs, "key:<key_id>" for API keys.
	ID string
	// KeyName is the API key's name (empty for JWTs).
	KeyName string
}

// Errors of the checks. Every one of them means 401 to a client; the wording says why.
var (
	ErrNoCredentials = errors.New("no credentials: send Authorization: Bearer <JWT or API key> (or X-API-Key)")
	ErrInvalidToken  = errors.New("invalid token")
	ErrInvalidAPIKey = errors.New("invalid or revoked API key")
)

// Authenticator checks a request's credentials: "Authorization: Bearer <token>" where
// the token is a JWT or a docpipe API key (dpk_…), or "X-API-Key: <key>".
type Authenticator struct {
	JWT  *Verifier // nil: JWTs are rejected
	Keys *Keys     // nil: API keys are rejected
}

// Authenticate returns the request's principal, or an error wrapping one of
// ErrNoCredentials, ErrInvalidToken or ErrInvalidAPIKey (all mean 401), or another
// error when a check could not run (a database or JWKS failure: 503).
func (a *Authenticator) Authenticate(r *http.Request) (Principal, error) {
	cred := ""
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, rest, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(rest) == "" {
			return Principal{}, fmt.Errorf("%w (the Authorization header must be \"Bearer <token>\")", ErrNoCredentials)
		}
		cred = strings.TrimSpace(rest)
	} else if k := r.Header.Get("X-API-Key"); k != "" {
		cred = strings.TrimSpace(k)
		if !IsAPIKey(cred) {
			return Principal{}, ErrInvalidAPIKey
		}
	}
	switch {
	case cred == "":
		return Principal{}, ErrNoCredentials
	case IsAPIKey(cred):
		if a.Keys == nil {
			return Principal{}, fmt.Errorf("%w: API keys are not enabled", ErrInvalidAPIKey)
		}
		return a.Keys.Verify(r.Context(), cred)
	default:
		if a.JWT == nil {
			return Principal{}, fmt.Errorf("%w: JWT authentication is not configured", ErrInvalidToken)
		}
		return a.JWT.Verify(r.Context(), cred)
	}
}

// Unauthenticated reports whether err means the credentials were missing or wrong
// (401), as opposed to a failure to check them.
func Unauthenticated(err error) bool {
	return errors.Is(err, ErrNoCredentials) || errors.Is(err, ErrInvalidToken) || errors.Is(err, ErrInvalidAPIKey)
}
