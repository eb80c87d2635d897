package validate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/docpipe/docpipe/internal/db"
)

// DB is `docpipe validate db`: the migration versions, then schema drift, one
// failed check per difference with the SQL that restores the expected object.
// The report is nil when the check could not run.
func DB(ctx context.Context, pool *pgxpool.Pool, opts db.DriftOptions) ([]Check, *db.DriftReport) {
	start := time.Now()
	rep, err := db.NewDriftChecker(pool, opts).Check(ctx)
	took := time.Since(start)
	const name = "db: schema drift"
	if err != nil {
		return []Check{timed(driftError(name, err), took)}, nil
	}
	out := []Check{timed(migrationsCheck("db: migrations", rep), took)}
	if rep.Ahead != "" {
		return out, rep
	}
	if len(rep.Differences) == 0 {
		return append(out, Pass(name, fmt.Sprintf("none: %d objects of %s and River's tables match the migrations at version %d (River %d)",
			rep.Objects, db.Schema, rep.Version, rep.RiverVersion))), rep
	}
	for _, d := range rep.Differences {
		out = append(out, Fail(name, d.String(), "restore it with:\n"+d.SQL))
	}
	return out, rep
}

// migrationsCheck reports the versions; pending migrations pass (they are not
// drift: `migrate up` applies them), a database newer than this binary fails.
func migrationsCheck(name string, rep *db.DriftReport) Check {
	if rep.Ahead != "" {
		return Fail(name, rep.Ahead, "run `docpipe validate db` from the docpipe release that migrated this database")
	}
	if len(rep.Pending) == 0 {
		return Pass(name, fmt.Sprintf("at head: %s version %d, River version %d", db.Schema, rep.Version, rep.RiverVersion))
	}
	return Pass(name, fmt.Sprintf("%d pending, not drift (%s): `docpipe migrate up` applies them", len(rep.Pending), names(rep.Pending)))
}

// driftError turns a check that could not run into a failed check with its fix.
func driftError(name string, err error) Check {
	var se *db.ScratchError
	switch {
	case errors.As(err, &se):
		return Fail(name, "cannot build the expected schema in a scratch database: "+oneLine(se.Err), db.ScratchFix)
	case errors.Is(err, db.ErrMigrationInFlight):
		return Fail(name, oneLine(err), "check again when the running migration has finished")
	}
	return Fail(name, "the check could not run: "+oneLine(err), "check DATABASE_URL and that the database answers")
}

func names(ms []db.MigrationState) string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = m.String()
	}
	return strings.Join(s, ", ")
}

func timed(c Check, d time.Duration) Check {
	c.Latency = d
	return c
}

// oneLine keeps an error's first line (driver errors may carry more).
func oneLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}
