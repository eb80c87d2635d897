package catalog

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Chunk is one searchable chunk of a document.
type Chunk struct {
	ChunkID     uuid.UUID
	Ord         int
	Text        string
	Tokens      int
	HeadingPath []string
	PageStart   int
	PageEnd     int
	EmbedModel  string
}

// chunkMeta is document_chunks.meta.
type chunkMeta struct {
	HeadingPath []string `json:"heading_path"`
	PageStart   int      `json:"page_start"`
	PageEnd     int      `json:"page_end"`
}

// ListChunks pages through a document's searchable chunks in order: those with an
// ordinal above afterOrd (-1 = from the start), at most limit (default 100, max 1000).
// A document the scope may not see has no chunks; callers check the document first.
func ListChunks(ctx context.Context, q Querier, s Scope, docID uuid.UUID, afterOrd, limit int) ([]Chunk, error) {
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 1000)
	// One row per ordinal: the newest embedding model's copy.
	rows, err := q.Query(ctx, `SELECT DISTINCT ON (c.chunk_ord) c.chunk_id, c.chunk_ord, c.text, c.token_count, c.meta, c.embed_model
		FROM upload_pipeline.document_chunks c
		WHERE c.document_id = $1 AND ($2::uuid IS NULL OR c.user_id = $2) AND c.chunk_ord > $3
		ORDER BY c.chunk_ord, c.created_at DESC LIMIT $4`, docID, s.arg(), afterOrd, limit)
	if err != nil {
		return nil, fmt.Errorf("list chunks: %w", err)
	}
	chunks, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Chunk, error) {
		var c Chunk
		var meta []byte
		if err := r.Scan(&c.ChunkID, &c.Ord, &c.Text, &c.Tokens, &meta, &c.EmbedModel); err != nil {
			return c, err
		}
		var m chunkMeta
		_ = json.Unmarshal(meta, &m)
		c.HeadingPath, c.PageStart, c.PageEnd = m.HeadingPath, m.PageStart, m.PageEnd
		return c, nil
	})
	if err != nil {
		return nil, fmt.Errorf("list chunks: %w", err)
	}
	return chunks, nil
}
