package db_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/docpipe/docpipe/internal/db"
)

// Unavailable tells "the database is down or restarting, try again" from errors a
// retry will not fix; the API answers the first 503 and the second 500.
func TestUnavailable(t *testing.T) {
	// A refused connection, as pgx reports it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, refused := pgx.Connect(context.Background(), "postgres://u@"+addr+"/db?connect_timeout=2")
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", refused, true},
		{"conn closed (a pooled connection the restart killed)", fmt.Errorf("insert document: %w", pgconn.ErrConnClosed), true},
		{"connection lost mid-query", fmt.Errorf("query: %w", io.ErrUnexpectedEOF), true},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, true},
		{"starting up", fmt.Errorf("wrapped: %w", &pgconn.PgError{Code: "57P03"}), true},
		{"connection exception", &pgconn.PgError{Code: "08006"}, true},
		{"unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"no rows", pgx.ErrNoRows, false},
		{"a bug", errors.New("index out of range"), false},
		{"cancelled by the client", context.Canceled, false},
		{"nil", nil, false},
	} {
		if got := db.Unavailable(c.err); got != c.want {
			t.Errorf("%s (%v): Unavailable = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}
