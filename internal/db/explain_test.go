package db

import (
	"errors"
	"strings"
	"testing"
)

func TestMissingPgvectorIsExplained(t *testing.T) {
	err := explainMigrateError(errors.New(`ERROR: extension "vector" is not available (SQLSTATE 0A000)`))
	if !strings.Contains(err.Error(), "pgvector extension is not installed") || !strings.Contains(err.Error(), "scripts/bootstrap") {
		t.Errorf("unhelpful: %v", err)
	}
}
