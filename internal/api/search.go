package api

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/docpipe/docpipe/internal/api/apitypes"
	"github.com/docpipe/docpipe/internal/catalog"
)

type searchInput struct {
	Body apitypes.SearchRequest
}

type searchOutput struct {
	Body apitypes.SearchResults
}

func (s *Server) registerSearch() {
	huma.Register(s.api, huma.Operation{
		OperationID: "search", Method: http.MethodPost, Path: "/v1/search", Tags: []string{"search"},
		Summary:     "Search chunks",
		Description: "Searches the caller's searchable chunks (an admin key: everyone's). Results carry document, chunk ordinal, heading path, page span and score.",
		Errors:      []int{400, 401, 422, 429},
	}, func(ctx context.Context, in *searchInput) (*searchOutput, error) {
		scope, _ := scopeOf(ctx)
		req := catalog.SearchRequest{Query: in.Body.Query, K: in.Body.K, Mode: in.Body.Mode}
		if req.Mode == "" {
			req.Mode = catalog.ModeHybrid
		}
		for _, raw := range in.Body.DocumentIDs {
			id, err := uuid.Parse(raw)
			if err != nil {
				return nil, problem(http.StatusUnprocessableEntity, apitypes.CodeValidation, "document_ids: %q is not a UUID", raw)
			}
			req.DocumentIDs = append(req.DocumentIDs, id)
		}
		hits, err := catalog.Search(ctx, s.d.Pool, s.d.Embedder, scope, req)
		if err != nil {
			return nil, s.internal(ctx, "search", err)
		}
		return &searchOutput{Body: apitypes.SearchResults{Mode: req.Mode, Results: catalog.Wires(hits)}}, nil
	})
}
