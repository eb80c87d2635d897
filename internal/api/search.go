package api

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/docpipe/docpipe/internal/catalog"
)

type searchInput struct {
	Body struct {
		Query       string   `json:"query" minLength:"1" maxLength:"2000" doc:"What to look for."`
		K           int      `json:"k,omitempty" minimum:"1" maximum:"100" default:"5" doc:"Number of results."`
		Mode        string   `json:"mode,omitempty" enum:"vector,keyword,hybrid" default:"hybrid" doc:"vector: cosine similarity of embeddings; keyword: Postgres full-text search; hybrid: reciprocal-rank fusion of both."`
		DocumentIDs []string `json:"document_ids,omitempty" maxItems:"1000" doc:"Only search these documents (ids the caller cannot see match nothing)."`
	}
}

type searchOutput struct {
	Body struct {
		Mode    string      `json:"mode"`
		Results []SearchHit `json:"results"`
	}
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
				return nil, problem(http.StatusUnprocessableEntity, CodeValidation, "document_ids: %q is not a UUID", raw)
			}
			req.DocumentIDs = append(req.DocumentIDs, id)
		}
		hits, err := catalog.Search(ctx, s.d.Pool, s.d.Embedder, scope, req)
		if err != nil {
			return nil, s.internal(ctx, "search", err)
		}
		out := &searchOutput{}
		out.Body.Mode = req.Mode
		out.Body.Results = make([]SearchHit, 0, len(hits))
		for _, h := range hits {
			out.Body.Results = append(out.Body.Results, SearchHit{DocumentID: h.DocumentID, Filename: h.Filename, ChunkID: h.ChunkID,
				Ord: h.Ord, HeadingPath: nonNil(h.HeadingPath), PageStart: h.PageStart, PageEnd: h.PageEnd, Score: h.Score,
				VectorRank: h.VectorRank, KeywordRank: h.KeywordRank, Text: h.Text})
		}
		return out, nil
	})
}
