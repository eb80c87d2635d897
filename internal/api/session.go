package api

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/docpipe/docpipe/internal/api/apitypes"
)

// The dashboard links to pages it cannot send an Authorization header with (River
// UI at /riverui/, a single-page app of its own). Signing in to the dashboard also
// stores the admin credential in a cookie that only those paths receive: HttpOnly
// (no script reads it), SameSite=Strict (no other site's page sends it) and
// Secure behind https. RequireAdmin accepts that cookie or a Bearer header.
const (
	// SessionCookie is the cookie's name.
	SessionCookie = "docpipe_session"
	// SessionPath is the only path the browser sends the cookie to.
	SessionPath = "/riverui/"
	sessionTTL  = 12 * time.Hour
)

type sessionInput struct {
	Authorization string `header:"Authorization" doc:"The credential to store: Bearer API key or JWT."`
}

type sessionOutput struct {
	SetCookie http.Cookie `header:"Set-Cookie"`
	Body      apitypes.Session
}

type clearSessionOutput struct {
	SetCookie http.Cookie `header:"Set-Cookie"`
}

func (s *Server) registerSession() {
	huma.Register(s.api, huma.Operation{
		OperationID: "create-session", Method: http.MethodPost, Path: "/v1/session", Tags: []string{"operations"},
		Summary: "Store an admin credential in an HttpOnly cookie for River UI (/riverui/), which cannot send Authorization headers",
		Description: "The dashboard calls this after signing in. Only admin credentials get the cookie; it is sent to " + SessionPath +
			" only, expires with the browser session or after 12 hours, and holds the same credential (revoking the key revokes it).",
		Errors: []int{401, 429},
	}, func(ctx context.Context, in *sessionInput) (*sessionOutput, error) {
		_, p := scopeOf(ctx)
		out := &sessionOutput{}
		token, _ := strings.CutPrefix(in.Authorization, "Bearer ")
		c := http.Cookie{Name: SessionCookie, Path: SessionPath, HttpOnly: true, SameSite: http.SameSiteStrictMode,
			Secure: strings.HasPrefix(baseFrom(ctx), "https:")}
		if p.Admin && token != "" {
			c.Value, c.MaxAge = token, int(sessionTTL/time.Second)
			out.Body.RiverUI = true
		} else {
			c.MaxAge = -1
		}
		out.SetCookie = c
		return out, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "delete-session", Method: http.MethodDelete, Path: "/v1/session", Tags: []string{"operations"},
		Summary:       "Forget the River UI cookie (the dashboard's sign-out); needs no credentials",
		DefaultStatus: http.StatusNoContent, Security: []map[string][]string{},
	}, func(ctx context.Context, _ *struct{}) (*clearSessionOutput, error) {
		return &clearSessionOutput{SetCookie: http.Cookie{Name: SessionCookie, Path: SessionPath, MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode}}, nil
	})
}

// RequireAdmin serves next only to admin credentials, given as a Bearer header or
// the session cookie (POST /v1/session), through the API's own authentication and
// rate limit: 401 without a valid credential, 403 without admin scope.
func (s *Server) RequireAdmin(next http.Handler) http.Handler {
	admin := s.protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, _ := principalFrom(r.Context()); !p.Admin {
			problem(http.StatusForbidden, apitypes.CodeForbidden, "%s needs an admin credential", r.URL.Path).write(w, r)
			return
		}
		next.ServeHTTP(w, r)
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" {
			if c, err := r.Cookie(SessionCookie); err == nil && c.Value != "" {
				r = r.Clone(r.Context())
				r.Header.Set("Authorization", "Bearer "+c.Value)
			}
		}
		admin.ServeHTTP(w, r)
	})
}
