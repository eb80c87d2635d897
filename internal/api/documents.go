package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/docpipe/docpipe/internal/api/apitypes"
	"github.com/docpipe/docpipe/internal/catalog"
)

type idPath struct {
	ID string `path:"id" doc:"Document id (UUID)."`
}

type listDocumentsInput struct {
	Limit  int    `query:"limit" minimum:"1" maximum:"500" default:"50" doc:"Page size."`
	Cursor string `query:"cursor" doc:"next_cursor of the previous page."`
}

type listDocumentsOutput struct {
	Body apitypes.DocumentList
}

type documentOutput struct {
	Body apitypes.Document
}

type chunksInput struct {
	ID    string `path:"id" doc:"Document id (UUID)."`
	After int    `query:"after" minimum:"-1" default:"-1" doc:"Return chunks with an ordinal above this (-1: from the start)."`
	Limit int    `query:"limit" minimum:"1" maximum:"1000" default:"100"`
}

type chunksOutput struct {
	Body apitypes.ChunkList
}

type eventsOutput struct {
	Body apitypes.EventList
}

func (s *Server) registerDocuments() {
	s.registerUpload()

	huma.Register(s.api, huma.Operation{
		OperationID: "list-documents", Method: http.MethodGet, Path: "/v1/documents", Tags: []string{"documents"},
		Summary: "List documents", Description: "The caller's documents (an admin key: everyone's), newest first, each with its latest run.",
		Errors: []int{400, 401, 429},
	}, func(ctx context.Context, in *listDocumentsInput) (*listDocumentsOutput, error) {
		scope, _ := scopeOf(ctx)
		pg, err := catalog.NextPage(in.Cursor, in.Limit)
		if err != nil {
			return nil, badCursor()
		}
		docs, err := catalog.ListDocuments(ctx, s.d.Pool, scope, pg)
		if err != nil {
			return nil, s.internal(ctx, "list documents", err)
		}
		return &listDocumentsOutput{Body: apitypes.DocumentList{Items: catalog.Wires(docs), NextCursor: catalog.NextCursor(pg, docs)}}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "get-document", Method: http.MethodGet, Path: "/v1/documents/{id}", Tags: []string{"documents"},
		Summary:     "Get a document",
		Description: "Status, stage, progress percent, counts, cost, last error and timestamps of the document's latest run.",
		Errors:      []int{401, 404, 429},
	}, func(ctx context.Context, in *idPath) (*documentOutput, error) {
		d, perr := s.document(ctx, in.ID)
		if perr != nil {
			return nil, perr
		}
		return &documentOutput{Body: d.Wire()}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "list-document-chunks", Method: http.MethodGet, Path: "/v1/documents/{id}/chunks", Tags: []string{"documents"},
		Summary: "List a document's chunks", Description: "The searchable chunks in order, paged by ordinal.",
		Errors: []int{401, 404, 429},
	}, func(ctx context.Context, in *chunksInput) (*chunksOutput, error) {
		d, perr := s.document(ctx, in.ID)
		if perr != nil {
			return nil, perr
		}
		scope, _ := scopeOf(ctx)
		chunks, err := catalog.ListChunks(ctx, s.d.Pool, scope, d.DocumentID, in.After, in.Limit)
		if err != nil {
			return nil, s.internal(ctx, "list chunks", err)
		}
		out := &chunksOutput{Body: apitypes.ChunkList{DocumentID: d.DocumentID.String(), Items: catalog.Wires(chunks)}}
		if len(chunks) == in.Limit {
			next := chunks[len(chunks)-1].Ord
			out.Body.NextAfter = &next
		}
		return out, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "list-document-events", Method: http.MethodGet, Path: "/v1/documents/{id}/events", Tags: []string{"documents"},
		Summary: "A document's audit trail", Description: "Every event of every run of the document, oldest first.",
		Errors: []int{401, 404, 429},
	}, func(ctx context.Context, in *idPath) (*eventsOutput, error) {
		d, perr := s.document(ctx, in.ID)
		if perr != nil {
			return nil, perr
		}
		scope, _ := scopeOf(ctx)
		evs, err := catalog.DocumentEvents(ctx, s.d.Pool, scope, d.DocumentID, 0)
		if err != nil {
			return nil, s.internal(ctx, "list events", err)
		}
		return &eventsOutput{Body: apitypes.EventList{DocumentID: d.DocumentID.String(), Items: catalog.Wires(evs)}}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "delete-document", Method: http.MethodDelete, Path: "/v1/documents/{id}", Tags: []string{"documents"},
		Summary:       "Delete a document",
		Description:   "Stops its runs and removes its rows (runs, chunks, vectors, events) and its stored objects.",
		DefaultStatus: http.StatusNoContent,
		Errors:        []int{401, 404, 409, 429},
	}, func(ctx context.Context, in *idPath) (*struct{}, error) {
		scope, _ := scopeOf(ctx)
		id, perr := parseID(in.ID, "document")
		if perr != nil {
			return nil, perr
		}
		if err := s.manage.DeleteDocument(ctx, scope, id); err != nil {
			switch {
			case isNotFound(err):
				return nil, notFound("document")
			case errors.Is(err, catalog.ErrBusy):
				return nil, problem(http.StatusConflict, apitypes.CodeConflict, "%s", err.Error()).withRetryAfter(5 * time.Second)
			}
			return nil, s.internal(ctx, "delete document", err)
		}
		return nil, nil
	})
}

// document reads a document in the caller's scope; unknown, malformed and other
// tenants' ids are all 404.
func (s *Server) document(ctx context.Context, rawID string) (catalog.DocumentInfo, *Problem) {
	id, perr := parseID(rawID, "document")
	if perr != nil {
		return catalog.DocumentInfo{}, perr
	}
	scope, _ := scopeOf(ctx)
	d, err := catalog.GetDocument(ctx, s.d.Pool, scope, id)
	if isNotFound(err) {
		return d, notFound("document")
	} else if err != nil {
		return d, s.internal(ctx, "read document", err)
	}
	if d.Job != nil {
		noteCorrelation(ctx, d.Job.CorrelationID)
	}
	return d, nil
}
