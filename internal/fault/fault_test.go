package fault_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/docpipe/docpipe/internal/fault"
)

// pgxError is the error pgx returns when it connects to addr.
func pgxError(t *testing.T, addr string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, "postgres://docpipe@"+addr+"/docpipe?sslmode=disable&connect_timeout=5")
	if err == nil {
		conn.Close(ctx)
		t.Fatalf("connected to %s", addr)
	}
	return err
}

// Stages wrap SQL errors with the statement that failed (fmt.Errorf("…: %w", err)):
// the classification is the same as the bare error's (a lost connection stays a
// transient NETWORK error, a server error a transient INTERNAL one), and the context
// stays in the cause that last_error shows.
func TestClassifySeesThroughWrappedPgxErrors(t *testing.T) {
	// Nothing listens: connection refused.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	// A server that hangs up at once: the connection is lost mid-conversation.
	hangup, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hangup.Close()
	go func() {
		for {
			c, err := hangup.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()

	for _, c := range []struct {
		name string
		err  error
		kind fault.Kind
		code string
	}{
		{"connection refused", pgxError(t, closed), fault.Transient, "NETWORK"},
		{"connection lost", pgxError(t, hangup.Addr().String()), fault.Transient, ""},
		{"server error", &pgconn.PgError{Severity: "ERROR", Code: "23505", Message: "duplicate key value"}, fault.Transient, "INTERNAL"},
		{"timeout", context.DeadlineExceeded, fault.Transient, "TIMEOUT"},
		{"classified", fault.Permanentf("EMBED_MODEL_UNKNOWN", "no model"), fault.Permanent, "EMBED_MODEL_UNKNOWN"},
	} {
		bare := fault.Classify(c.err)
		wrapped := fault.Classify(fmt.Errorf("store embedding batch: %w", fmt.Errorf("record embedding progress: %w", c.err)))
		if bare.Kind != c.kind || (c.code != "" && bare.Code != c.code) {
			t.Errorf("%s: %v classified %s %s, want %s %s", c.name, c.err, bare.Kind, bare.Code, c.kind, c.code)
		}
		if wrapped.Kind != bare.Kind || wrapped.Code != bare.Code {
			t.Errorf("%s: wrapped %s %s, bare %s %s", c.name, wrapped.Kind, wrapped.Code, bare.Kind, bare.Code)
		}
		if wrapped.Code == "INTERNAL" && !strings.HasPrefix(wrapped.Err.Error(), "store embedding batch: record embedding progress: ") {
			t.Errorf("%s: the cause lost its context: %v", c.name, wrapped.Err)
		}
		if !errors.Is(wrapped, c.err) {
			t.Errorf("%s: the original error is not in the chain", c.name)
		}
	}
}
