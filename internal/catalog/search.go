package catalog

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	pgvector "github.com/pgvector/pgvector-go"

	"github.com/docpipe/docpipe/internal/embed"
)

// Search modes.
const (
	ModeVector  = "vector"  // pgvector cosine distance on the per-dimension HNSW index
	ModeKeyword = "keyword" // Postgres full-text search on document_chunks.tsv
	ModeHybrid  = "hybrid"  // reciprocal-rank fusion of both
)

// SearchRequest is one search in a scope.
type SearchRequest struct {
	Query       string
	K           int         // results wanted (default 5)
	Mode        string      // ModeVector (default), ModeKeyword or ModeHybrid
	DocumentIDs []uuid.UUID // optional: only these documents
}

// Hit is a search result; Score is the cosine similarity (vector), the ts_rank_cd
// cover-density rank (keyword) or the RRF score (hybrid). The ranks say where the
// chunk placed in each list (0 = not in that list).
type Hit struct {
	DocumentID  uuid.UUID
	Filename    string
	ChunkID     uuid.UUID
	Ord         int
	HeadingPath []string
	PageStart   int
	PageEnd     int
	Score       float64
	Text        string
	VectorRank  int
	KeywordRank int
}

// rrfK is the reciprocal-rank-fusion constant (Cormack et al.: 60).
const rrfK = 60

// Search searches the chunks the scope may see, embedded with e's model and
// version (keyword mode uses the same rows, so each chunk appears once).
func Search(ctx context.Context, pool *pgxpool.Pool, e embed.Embedder, s Scope, r SearchRequest) ([]Hit, error) {
	if r.K <= 0 {
		r.K = 5
	}
	var docs []uuid.UUID
	if len(r.DocumentIDs) > 0 {
		docs = r.DocumentIDs
	}
	switch r.Mode {
	case "", ModeVector:
		hits, err := vectorHits(ctx, pool, e, s, r.Query, docs, r.K)
		for i := range hits {
			hits[i].VectorRank = i + 1
		}
		return hits, err
	case ModeKeyword:
		hits, err := keywordHits(ctx, pool, e, s, r.Query, docs, r.K)
		for i := range hits {
			hits[i].KeywordRank = i + 1
		}
		return hits, err
	case ModeHybrid:
		// Each list contributes its top candidates; a chunk's fused score is the sum of
		// 1/(rrfK + rank) over the lists it appears in.
		n := max(4*r.K, 50)
		vec, err := vectorHits(ctx, pool, e, s, r.Query, docs, n)
		if err != nil {
			return nil, err
		}
		kw, err := keywordHits(ctx, pool, e, s, r.Query, docs, n)
		if err != nil {
			return nil, err
		}
		fused := map[uuid.UUID]*Hit{}
		var order []*Hit
		add := func(list []Hit, vector bool) {
			for i, h := range list {
				f, ok := fused[h.ChunkID]
				if !ok {
					c := h
					c.Score = 0
					f = &c
					fused[h.ChunkID] = f
					order = append(order, f)
				}
				if vector {
					f.VectorRank = i + 1
				} else {
					f.KeywordRank = i + 1
				}
				f.Score += 1 / float64(rrfK+i+1)
			}
		}
		add(vec, true)
		add(kw, false)
		slices.SortStableFunc(order, func(a, b *Hit) int {
			if c := cmp.Compare(b.Score, a.Score); c != 0 {
				return c
			}
			// Ties: the better single rank first.
			return cmp.Compare(bestRank(a), bestRank(b))
		})
		out := make([]Hit, 0, min(r.K, len(order)))
		for _, h := range order[:min(r.K, len(order))] {
			out = append(out, *h)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown search mode %q (want vector, keyword or hybrid)", r.Mode)
}

func bestRank(h *Hit) int {
	r := 1 << 30
	if h.VectorRank > 0 {
		r = h.VectorRank
	}
	if h.KeywordRank > 0 && h.KeywordRank < r {
		r = h.KeywordRank
	}
	return r
}

// iterativeScan is 1 when the server's pgvector (>= 0.8) supports iterative index
// scans, 2 when it does not, 0 before the first look.
var iterativeScan atomic.Int32

func supportsIterativeScan(ctx context.Context, q Querier) bool {
	switch iterativeScan.Load() {
	case 1:
		return true
	case 2:
		return false
	}
	var v string
	if err := q.QueryRow(ctx, `SELECT coalesce((SELECT extversion FROM pg_extension WHERE extname = 'vector'), '')`).Scan(&v); err != nil {
		return false
	}
	ok := versionAtLeast(v, 0, 8)
	if ok {
		iterativeScan.Store(1)
	} else {
		iterativeScan.Store(2)
	}
	return ok
}

func versionAtLeast(v string, major, minor int) bool {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || (ma == major && mi >= minor)
}

func vectorHits(ctx context.Context, pool *pgxpool.Pool, e embed.Embedder, s Scope, query string, docs []uuid.UUID, k int) ([]Hit, error) {
	vecs, err := e.Embed(ctx, []string{query})
	if err != nil {
		return nil, fmt.Errorf("embed query: %w", err)
	}
	dims := e.Dims()
	// The expression and predicate match the per-dimension HNSW index. A user filter
	// applied after an index scan could leave fewer than k rows; pgvector >= 0.8 keeps
	// scanning (iterative scan) until enough rows pass the filter.
	sql := fmt.Sprintf(`SELECT c.document_id, d.filename, c.chunk_id, c.chunk_ord, c.meta, c.text,
		       1 - ((c.embedding::vector(%[1]d)) <=> $1::vector(%[1]d)) AS score
		FROM upload_pipeline.document_chunks c JOIN upload_pipeline.documents d USING (document_id)
		WHERE c.dims = %[1]d AND c.embed_model = $2 AND c.embed_version = $3 AND ($4::uuid IS NULL OR c.user_id = $4)
		  AND ($5::uuid[] IS NULL OR c.document_id = ANY($5))
		ORDER BY (c.embedding::vector(%[1]d)) <=> $1::vector(%[1]d)
		LIMIT $6`, dims)
	var hits []Hit
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if supportsIterativeScan(ctx, tx) {
			if _, err := tx.Exec(ctx, `SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)`); err != nil {
				return err
			}
		}
		rows, err := tx.Query(ctx, sql, pgvector.NewVector(vecs[0]), e.Model(), e.Version(), s.arg(), docs, k)
		if err != nil {
			return err
		}
		hits, err = collectHits(rows)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("vector search: %w", err)
	}
	// relaxed_order may return rows slightly out of order.
	slices.SortStableFunc(hits, func(a, b Hit) int { return cmp.Compare(b.Score, a.Score) })
	return hits, nil
}

func keywordHits(ctx context.Context, q Querier, e embed.Embedder, s Scope, query string, docs []uuid.UUID, k int) ([]Hit, error) {
	// websearch_to_tsquery accepts what people type ("quoted phrases", or, -not) and
	// never fails on syntax. The dims/model predicate keeps one row per chunk.
	rows, err := q.Query(ctx, `SELECT c.document_id, d.filename, c.chunk_id, c.chunk_ord, c.meta, c.text,
		       ts_rank_cd(c.tsv, q.query)::float8 AS score
		FROM upload_pipeline.document_chunks c JOIN upload_pipeline.documents d USING (document_id),
		     websearch_to_tsquery('english', $1) AS q(query)
		WHERE c.tsv @@ q.query AND c.dims = $2 AND c.embed_model = $3 AND c.embed_version = $4
		  AND ($5::uuid IS NULL OR c.user_id = $5) AND ($6::uuid[] IS NULL OR c.document_id = ANY($6))
		ORDER BY score DESC, c.document_id, c.chunk_ord
		LIMIT $7`, query, e.Dims(), e.Model(), e.Version(), s.arg(), docs, k)
	if err != nil {
		return nil, fmt.Errorf("keyword search: %w", err)
	}
	hits, err := collectHits(rows)
	if err != nil {
		return nil, fmt.Errorf("keyword search: %w", err)
	}
	return hits, nil
}

func collectHits(rows pgx.Rows) ([]Hit, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Hit, error) {
		var h Hit
		var meta []byte
		if err := r.Scan(&h.DocumentID, &h.Filename, &h.ChunkID, &h.Ord, &meta, &h.Text, &h.Score); err != nil {
			return h, err
		}
		var m chunkMeta
		_ = json.Unmarshal(meta, &m)
		h.HeadingPath, h.PageStart, h.PageEnd = m.HeadingPath, m.PageStart, m.PageEnd
		return h, nil
	})
}
