package client

import (
	"os/exec"
	"strings"
	"testing"
)

// The client decodes into the API's wire types (internal/api/apitypes) and never
// imports the server: a program that talks to docpipe links neither the HTTP server,
// nor the pipeline and its database driver. `go list -deps` names every package the
// client is built from.
func TestClientDoesNotImportTheServer(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 2 || !strings.Contains(string(out), "github.com/docpipe/docpipe/internal/api/apitypes") {
		t.Fatalf("go list -deps listed no apitypes; the check would pass vacuously:\n%s", out)
	}
	forbidden := []string{
		"github.com/docpipe/docpipe/internal/api",      // the server
		"github.com/docpipe/docpipe/internal/catalog",  // the read side
		"github.com/docpipe/docpipe/internal/pipeline", // the engine
		"github.com/danielgtaylor/huma/v2",
		"github.com/jackc/pgx/v5",
	}
	for _, d := range deps {
		for _, f := range forbidden {
			if d == f {
				t.Errorf("internal/client depends on %s", d)
			}
		}
	}
}
