package api

import (
	"net/http"
	"reflect"

	"github.com/danielgtaylor/huma/v2"

	"github.com/docpipe/docpipe/internal/api/apitypes"
	"github.com/docpipe/docpipe/internal/runstate"
)

// The request and response bodies are internal/api/apitypes, a leaf clients import
// without the server. This file adds what only the server's OpenAPI document needs.

// describeRuns documents apitypes.Job.status and sets the enum of apitypes.Job.state from the run
// vocabulary (internal/runstate), so a new status or state appears in the OpenAPI
// document without an edit here or in apitypes.
func describeRuns(reg huma.Registry) {
	s := reg.Schema(reflect.TypeFor[apitypes.Job](), false, "Job")
	s.Properties["status"].Description = "Pipeline status: " + runstate.Join(runstate.Statuses(), ", ") + "."
	s.Properties["state"].Enum = enumOf(runstate.States())
}

// enumOf is values as a schema enum.
func enumOf[T ~string](values []T) []any {
	out := make([]any, len(values))
	for i, v := range values {
		out[i] = string(v)
	}
	return out
}

func badCursor() *Problem {
	return problem(http.StatusBadRequest, apitypes.CodeMalformed, "cursor is not a value this API returned")
}
