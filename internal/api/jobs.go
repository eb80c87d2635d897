package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/docpipe/docpipe/internal/api/apitypes"
	"github.com/docpipe/docpipe/internal/catalog"
	"github.com/docpipe/docpipe/internal/pipeline"
	"github.com/docpipe/docpipe/internal/runstate"
)

type jobPath struct {
	ID string `path:"id" doc:"Run id (UUID)."`
}

type jobOutput struct {
	Body apitypes.Job
}

type listJobsInput struct {
	State      runFilter `query:"state" doc:"Only runs in this state or status."`
	DocumentID string    `query:"document_id" doc:"Only runs of this document."`
	Limit      int       `query:"limit" minimum:"1" maximum:"500" default:"50"`
	Cursor     string    `query:"cursor" doc:"next_cursor of the previous page."`
}

// runFilter is a state or a status; its enum is the run vocabulary (internal/runstate).
type runFilter string

// Schema lists the states, then the statuses, as the enum.
func (runFilter) Schema(huma.Registry) *huma.Schema {
	return &huma.Schema{Type: huma.TypeString, Enum: append(enumOf(runstate.States()), enumOf(runstate.Statuses())...)}
}

type listJobsOutput struct {
	Body apitypes.JobList
}

type cancelInput struct {
	ID   string                  `path:"id" doc:"Run id (UUID)."`
	Body *apitypes.CancelRequest `required:"false"`
}

func (s *Server) registerJobs() {
	huma.Register(s.api, huma.Operation{
		OperationID: "get-job", Method: http.MethodGet, Path: "/v1/jobs/{id}", Tags: []string{"jobs"},
		Summary: "Get a run", Errors: []int{401, 404, 429},
	}, func(ctx context.Context, in *jobPath) (*jobOutput, error) {
		scope, _ := scopeOf(ctx)
		id, perr := parseID(in.ID, "job")
		if perr != nil {
			return nil, perr
		}
		ji, err := catalog.GetJob(ctx, s.d.Pool, scope, id)
		if isNotFound(err) {
			return nil, notFound("job")
		} else if err != nil {
			return nil, s.internal(ctx, "read job", err)
		}
		noteCorrelation(ctx, ji.CorrelationID)
		return &jobOutput{Body: ji.Wire()}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "list-jobs", Method: http.MethodGet, Path: "/v1/jobs", Tags: []string{"jobs"},
		Summary: "List runs", Description: "Newest first; filter by state (" + runstate.Join(runstate.States(), ", ") + ") or status.",
		Errors: []int{400, 401, 422, 429},
	}, func(ctx context.Context, in *listJobsInput) (*listJobsOutput, error) {
		scope, _ := scopeOf(ctx)
		pg, err := catalog.NextPage(in.Cursor, in.Limit)
		if err != nil {
			return nil, badCursor()
		}
		var doc *uuid.UUID
		if in.DocumentID != "" {
			id, err := uuid.Parse(in.DocumentID)
			if err != nil {
				return nil, problem(http.StatusUnprocessableEntity, apitypes.CodeValidation, "document_id must be a UUID")
			}
			doc = &id
		}
		jobs, err := catalog.ListJobs(ctx, s.d.Pool, scope, string(in.State), doc, pg)
		if err != nil {
			return nil, s.internal(ctx, "list jobs", err)
		}
		return &listJobsOutput{Body: apitypes.JobList{Items: catalog.Wires(jobs), NextCursor: catalog.NextCursor(pg, jobs)}}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "retry-job", Method: http.MethodPost, Path: "/v1/jobs/{id}/retry", Tags: []string{"jobs"},
		Summary:     "Re-drive a dead-lettered run",
		Description: "The run goes back to the stage that failed (or was cancelled) and is queued again. 409 JOB_NOT_DEADLETTERED for a run that did not fail.",
		Errors:      []int{401, 404, 409, 429},
	}, func(ctx context.Context, in *jobPath) (*jobOutput, error) {
		scope, _ := scopeOf(ctx)
		id, perr := parseID(in.ID, "job")
		if perr != nil {
			return nil, perr
		}
		// The engine's re-drive is not scoped: check the caller may see the run first.
		_, err := catalog.GetJob(ctx, s.d.Pool, scope, id)
		if err == nil {
			_, err = s.d.Pipe.Retry(ctx, id)
		}
		if err != nil {
			switch {
			case isNotFound(err):
				return nil, notFound("job")
			case errors.Is(err, pipeline.ErrNotDeadLettered):
				return nil, problem(http.StatusConflict, apitypes.CodeNotDeadLettered, "%s", err.Error())
			}
			return nil, s.internal(ctx, "retry job", err)
		}
		ji, err := catalog.GetJob(ctx, s.d.Pool, scope, id)
		if err != nil {
			return nil, s.internal(ctx, "read job", err)
		}
		noteCorrelation(ctx, ji.CorrelationID)
		return &jobOutput{Body: ji.Wire()}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "cancel-job", Method: http.MethodPost, Path: "/v1/jobs/{id}/cancel", Tags: []string{"jobs"},
		Summary: "Cancel a run",
		Description: "The run is dead-lettered with last_error.code CANCELLED in the status of the stage it was in; its queued work is dropped " +
			"and a running stage cannot commit. It can be re-driven with retry. 409 JOB_NOT_ACTIVE for a run that has ended.",
		Errors: []int{401, 404, 409, 429},
	}, func(ctx context.Context, in *cancelInput) (*jobOutput, error) {
		scope, _ := scopeOf(ctx)
		id, perr := parseID(in.ID, "job")
		if perr != nil {
			return nil, perr
		}
		reason := ""
		if in.Body != nil {
			reason = in.Body.Reason
		}
		ji, err := s.manage.Cancel(ctx, scope, id, reason)
		if err != nil {
			switch {
			case isNotFound(err):
				return nil, notFound("job")
			case errors.Is(err, catalog.ErrNotActive):
				return nil, problem(http.StatusConflict, apitypes.CodeJobNotActive, "%s", err.Error())
			}
			return nil, s.internal(ctx, "cancel job", err)
		}
		noteCorrelation(ctx, ji.CorrelationID)
		return &jobOutput{Body: ji.Wire()}, nil
	})
}
