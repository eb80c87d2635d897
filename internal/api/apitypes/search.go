package apitypes

import "github.com/google/uuid"

// SearchRequest is the body of POST /v1/search.
type SearchRequest struct {
	Query       string   `json:"query" minLength:"1" maxLength:"2000" doc:"What to look for."`
	K           int      `json:"k,omitempty" minimum:"1" maximum:"100" default:"5" doc:"Number of results."`
	Mode        string   `json:"mode,omitempty" enum:"vector,keyword,hybrid" default:"hybrid" doc:"vector: cosine similarity of embeddings; keyword: Postgres full-text search; hybrid: reciprocal-rank fusion of both."`
	DocumentIDs []string `json:"document_ids,omitempty" maxItems:"1000" doc:"Only search these documents (ids the caller cannot see match nothing)."`
}

// SearchResults is the answer to POST /v1/search.
type SearchResults struct {
	Mode    string      `json:"mode"`
	Results []SearchHit `json:"results"`
}

// SearchHit is one search result.
type SearchHit struct {
	DocumentID  uuid.UUID `json:"document_id"`
	Filename    string    `json:"filename"`
	ChunkID     uuid.UUID `json:"chunk_id"`
	Ord         int       `json:"chunk_ord"`
	HeadingPath []string  `json:"heading_path"`
	PageStart   int       `json:"page_start,omitempty"`
	PageEnd     int       `json:"page_end,omitempty"`
	Score       float64   `json:"score" doc:"vector: cosine similarity; keyword: ts_rank_cd; hybrid: reciprocal-rank-fusion score."`
	VectorRank  int       `json:"vector_rank,omitempty" doc:"Place in the vector list (hybrid and vector modes)."`
	KeywordRank int       `json:"keyword_rank,omitempty" doc:"Place in the keyword list (hybrid and keyword modes)."`
	Text        string    `json:"text"`
}
