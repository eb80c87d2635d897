package db

import (
	"strings"
	"testing"
)

// An enum missing labels gets them added in their places; a label the migrations
// do not have is reported (PostgreSQL cannot drop it); a missing enum is created.
func TestCompareEnums(t *testing.T) {
	empty := func() *catalog {
		return &catalog{tables: map[string]string{}, columns: map[string]columnDef{}, constraints: map[string]namedDef{},
			indexes: map[string]indexDef{}, triggers: map[string]triggerDef{}, functions: map[string]namedDef{},
			enums: map[string][]string{}, extensions: map[string]string{}}
	}
	live, want := empty(), empty()
	want.enums["public.river_job_state"] = []string{"available", "cancelled", "completed"}
	want.enums["public.mood"] = []string{"ok", "sad"}
	live.enums["public.river_job_state"] = []string{"cancelled", "parked"}
	diffs := compare(live, want)
	if len(diffs) != 2 {
		t.Fatalf("differences: %+v", diffs)
	}
	if d := diffs[0]; d.String() != "type public.mood missing" || d.SQL != "CREATE TYPE public.mood AS ENUM ('ok', 'sad');" {
		t.Errorf("missing enum: %s\n%s", d, d.SQL)
	}
	d := diffs[1]
	for _, want := range []string{
		"ALTER TYPE public.river_job_state ADD VALUE IF NOT EXISTS 'available' BEFORE 'cancelled';",
		"ALTER TYPE public.river_job_state ADD VALUE IF NOT EXISTS 'completed' AFTER 'cancelled';",
		"-- 'parked' is not in the migrations",
	} {
		if !strings.Contains(d.SQL, want) {
			t.Errorf("%s: SQL lacks %q:\n%s", d, want, d.SQL)
		}
	}
}
