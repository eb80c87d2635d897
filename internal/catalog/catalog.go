// Package catalog is docpipe's read side: scoped queries over runs, documents, chunks
// and events, search (vector, keyword, hybrid), and the two changes people make to
// what they see, cancelling a run and deleting a document. Everything goes through
// one Scope: a user's objects, or every user's for operators (the CLI's direct mode
// and admin keys). The engine that moves runs along (internal/pipeline) writes what
// this package reads.
package catalog

import (
	"context"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Querier is what read paths need (a pool, a connection or a transaction).
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// ErrNotFound is returned for an unknown job or document, and for one the scope may
// not see: another tenant's id behaves exactly like an unknown one.
var ErrNotFound = errors.New("not found")

// Scope says whose objects a read or write may touch: one user's, or every user's
// (an operator's admin key). The zero Scope matches nobody. Every query puts the
// scope into its SQL, so another tenant's id behaves exactly like an unknown id.
type Scope struct {
	user uuid.UUID
	all  bool
}

// UserScope limits queries to one user's documents and runs.
func UserScope(userID uuid.UUID) Scope { return Scope{user: userID} }

// AllUsers is the operators' scope: every tenant's objects.
func AllUsers() Scope { return Scope{all: true} }

// All reports whether the scope spans every user.
func (s Scope) All() bool { return s.all }

// arg is the value for a `($n::uuid IS NULL OR user_id = $n)` predicate.
func (s Scope) arg() *uuid.UUID {
	if s.all {
		return nil
	}
	u := s.user
	return &u
}

// Page is keyset pagination over (created_at, id), newest first.
type Page struct {
	Limit int // default 50, at most 500
	// Before continues a listing: only rows strictly older than (BeforeTime, BeforeID).
	BeforeTime time.Time
	BeforeID   uuid.UUID
}

func (p Page) limit() int {
	switch {
	case p.Limit <= 0:
		return 50
	case p.Limit > 500:
		return 500
	}
	return p.Limit
}

// before returns the cursor arguments: nil time means "from the newest".
func (p Page) before() (*time.Time, uuid.UUID) {
	if p.BeforeTime.IsZero() {
		return nil, uuid.Nil
	}
	t := p.BeforeTime
	return &t, p.BeforeID
}

// NextPage is the Page of limit rows that continues a listing after cursor, a value
// NextCursor made ("" = the first page). Other values are ErrBadCursor.
func NextPage(cursor string, limit int) (Page, error) {
	pg := Page{Limit: limit}
	if cursor == "" {
		return pg, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return pg, ErrBadCursor
	}
	ts, id, ok := strings.Cut(string(b), "|")
	n, err := strconv.ParseInt(ts, 10, 64)
	if !ok || err != nil {
		return pg, ErrBadCursor
	}
	u, err := uuid.Parse(id)
	if err != nil {
		return pg, ErrBadCursor
	}
	pg.BeforeTime, pg.BeforeID = time.Unix(0, n), u
	return pg, nil
}

// ErrBadCursor is returned by NextPage for a cursor NextCursor did not make.
var ErrBadCursor = errors.New("not a cursor docpipe made")

// listed rows can continue a listing: their keyset position.
type listed interface {
	pageKey() (time.Time, uuid.UUID)
}

// NextCursor is the opaque cursor (the API's next_cursor) of the page after rows, a
// page read with pg; "" when rows did not fill it, so the listing has ended.
func NextCursor[T listed](pg Page, rows []T) string {
	if len(rows) == 0 || len(rows) < pg.limit() {
		return ""
	}
	t, id := rows[len(rows)-1].pageKey()
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(t.UnixNano(), 10) + "|" + id.String()))
}

func (ji JobInfo) pageKey() (time.Time, uuid.UUID)     { return ji.CreatedAt, ji.JobID }
func (d DocumentInfo) pageKey() (time.Time, uuid.UUID) { return d.CreatedAt, d.DocumentID }
