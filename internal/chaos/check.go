package chaos

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/docpipe/docpipe/internal/runstate"
)

// Violation is one broken guarantee.
type Violation struct {
	Check  string // short name, e.g. "complete exactly once"
	Detail string // what was seen, and the query that shows it
}

// docState is one document of the user as the database has it at the end.
type docState struct {
	DocumentID  uuid.UUID
	SHA         string
	JobID       uuid.UUID
	Status      string
	State       string
	Code        string // last_error.code
	Runs        int
	Finalized   int // DOCUMENT_COMPLETE events of the run
	Chunks      int
	ChunkTokens int64
	Digest      string // sha256 over the ordered chunk_sha/vector_sha pairs
	Tokens      int64  // upload_jobs.tokens (billed)
	Pages       int    // upload_jobs.pages_billed
	DuplicateOf uuid.UUID
	ParseJobID  string // upload_jobs.parse_job_id
	Submits     int    // PARSE_REQUESTED events of the run
	// ChunkRows are the published chunks in order (for the report of a mismatch).
	ChunkRows []chunkRow
}

type chunkRow struct {
	Ord              int
	ChunkSHA, VecSHA string
}

const sqlDocStates = `
SELECT d.document_id, d.file_sha256, coalesce(j.job_id, $2), coalesce(j.status, ''), coalesce(j.state, ''),
       coalesce(j.last_error->>'code', ''), coalesce(j.tokens, 0), coalesce(j.pages_billed, 0), coalesce(j.duplicate_of, $2),
       (SELECT count(*) FROM upload_pipeline.upload_jobs x WHERE x.document_id = d.document_id),
       (SELECT count(*) FROM upload_pipeline.events e WHERE e.job_id = j.job_id AND e.type = 'finalized'),
       c.n, c.tokens, c.digest, coalesce(j.parse_job_id, ''),
       (SELECT count(*) FROM upload_pipeline.events e WHERE e.job_id = j.job_id AND e.code = 'PARSE_REQUESTED')
FROM upload_pipeline.documents d
LEFT JOIN LATERAL (SELECT * FROM upload_pipeline.upload_jobs x WHERE x.document_id = d.document_id
                   ORDER BY x.created_at DESC LIMIT 1) j ON true
LEFT JOIN LATERAL (SELECT count(*) AS n, coalesce(sum(token_count), 0) AS tokens,
                          encode(sha256(convert_to(coalesce(string_agg(chunk_sha || '/' || vector_sha, ','
                              ORDER BY chunk_ord, embed_model), ''), 'UTF8')), 'hex') AS digest
                   FROM upload_pipeline.document_chunks c WHERE c.document_id = d.document_id) c ON true
WHERE d.user_id = $1`

// docStates reads every document of s's user, by file sha256.
func (s *stack) docStates(ctx context.Context) (map[string]docState, error) {
	rows, err := s.pool.Query(ctx, sqlDocStates, s.user, uuid.Nil)
	if err != nil {
		return nil, fmt.Errorf("read documents: %w", err)
	}
	defer rows.Close()
	out := map[string]docState{}
	for rows.Next() {
		var d docState
		if err := rows.Scan(&d.DocumentID, &d.SHA, &d.JobID, &d.Status, &d.State, &d.Code, &d.Tokens, &d.Pages, &d.DuplicateOf,
			&d.Runs, &d.Finalized, &d.Chunks, &d.ChunkTokens, &d.Digest, &d.ParseJobID, &d.Submits); err != nil {
			return nil, err
		}
		out[d.SHA] = d
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	bySHA := map[uuid.UUID]string{}
	for sha, d := range out {
		bySHA[d.DocumentID] = sha
	}
	crows, err := s.pool.Query(ctx, `SELECT document_id, chunk_ord, chunk_sha, vector_sha FROM upload_pipeline.document_chunks
		ORDER BY document_id, chunk_ord, embed_model`)
	if err != nil {
		return nil, fmt.Errorf("read chunks: %w", err)
	}
	defer crows.Close()
	for crows.Next() {
		var id uuid.UUID
		var c chunkRow
		if err := crows.Scan(&id, &c.Ord, &c.ChunkSHA, &c.VecSHA); err != nil {
			return nil, err
		}
		if sha, ok := bySHA[id]; ok {
			d := out[sha]
			d.ChunkRows = append(d.ChunkRows, c)
			out[sha] = d
		}
	}
	return out, crows.Err()
}

// totals are the database-wide sums the billing and leftover checks compare.
type totals struct {
	ChunkBuffer, VectorBuffer  int
	DupOrdinals, DupChunkIDs   int
	Runs                       int
	BilledTokens, ChunkTokens  int64
	UsageTokens                int64
	BilledPages, UsagePages    int64
	ChunkRows                  int
	NonTerminal, RiverLeftover []string
}

const sqlTotals = `
SELECT (SELECT count(*) FROM upload_pipeline.document_chunk_buffer),
       (SELECT count(*) FROM upload_pipeline.document_vector_buffer),
       (SELECT count(*) FROM (SELECT 1 FROM upload_pipeline.document_chunks
            GROUP BY document_id, chunker_name, chunker_version, chunk_ord, embed_model, embed_version HAVING count(*) > 1) x),
       (SELECT count(*) FROM (SELECT 1 FROM upload_pipeline.document_chunks
            GROUP BY chunk_id, embed_model, embed_version HAVING count(*) > 1) x),
       (SELECT count(*) FROM upload_pipeline.upload_jobs),
       (SELECT coalesce(sum(tokens), 0) FROM upload_pipeline.upload_jobs),
       (SELECT coalesce(sum(token_count), 0) FROM upload_pipeline.document_chunks),
       (SELECT coalesce(sum(tokens), 0) FROM upload_pipeline.usage_daily WHERE service = 'openai'),
       (SELECT coalesce(sum(pages_billed), 0) FROM upload_pipeline.upload_jobs),
       (SELECT coalesce(sum(pages), 0) FROM upload_pipeline.usage_daily WHERE service = 'llamaparse'),
       (SELECT count(*) FROM upload_pipeline.document_chunks)`

// sqlNonTerminal lists runs that have not ended.
const sqlNonTerminal = `
SELECT job_id::text || ' ' || status || '/' || state || ' updated ' || to_char(updated_at, 'HH24:MI:SS.MS') ||
       coalesce(' last_error ' || last_error::text, '')
FROM upload_pipeline.upload_jobs WHERE status = ANY($1) ORDER BY updated_at`

// sqlRiverLeftover lists stage jobs River has not finalized.
const sqlRiverLeftover = `
SELECT id::text || ' ' || kind || ' ' || state || ' attempt ' || attempt || ' run ' || (args->>'upload_job_id') ||
       ' scheduled ' || to_char(scheduled_at, 'HH24:MI:SS.MS')
FROM river_job WHERE state NOT IN ('completed', 'cancelled', 'discarded') AND args ? 'upload_job_id' ORDER BY id`

func (s *stack) totals(ctx context.Context) (totals, error) {
	var t totals
	if err := s.pool.QueryRow(ctx, sqlTotals).Scan(&t.ChunkBuffer, &t.VectorBuffer, &t.DupOrdinals, &t.DupChunkIDs, &t.Runs,
		&t.BilledTokens, &t.ChunkTokens, &t.UsageTokens, &t.BilledPages, &t.UsagePages, &t.ChunkRows); err != nil {
		return t, fmt.Errorf("read totals: %w", err)
	}
	var err error
	if t.NonTerminal, err = strings1(ctx, s, sqlNonTerminal, runstate.ActiveStatuses()); err != nil {
		return t, err
	}
	t.RiverLeftover, err = strings1(ctx, s, sqlRiverLeftover)
	return t, err
}

func strings1(ctx context.Context, s *stack, sql string, args ...any) ([]string, error) {
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// pass is what one pass over the set ended with.
type pass struct {
	answers []answer
	states  map[string]docState
	totals  totals
	lpJobs  []lpJob // LlamaParse jobs the twin created
	// embedded is the tokens the OpenAI twin embedded (answers 200): more than was
	// billed when a worker died after an answer, before committing its vectors.
	embedded int64
	// settle is the time from the end of the last fault to the last run ending.
	settle        time.Duration
	answerSummary string
}

// groupResult is a content group's published chunks.
type groupResult struct {
	Digest string
	Chunks int
	Tokens int64
	Rows   []chunkRow
}

// check compares a pass with the set's expectations and, when ref is not nil, with
// the fault-free pass.
func check(docs []Doc, p pass, ref *pass) []Violation {
	var v []Violation
	add := func(check, format string, args ...any) {
		v = append(v, Violation{Check: check, Detail: fmt.Sprintf(format, args...)})
	}
	const docQuery = "SELECT j.* FROM upload_pipeline.upload_jobs j JOIN upload_pipeline.documents d USING (document_id) WHERE d.file_sha256 = '%s'"

	// Answers: refused where expected, accepted elsewhere; the same bytes, the same document.
	for i, d := range docs {
		a := p.answers[i]
		switch {
		case a.Status == 0:
			add("upload answered", "%s: no final answer after %d tries", d.Name, a.Tries)
		case d.Expect == Rejected && (a.Status != d.RejectStatus || a.Code != d.Code):
			add("bad document refused with its reason", "%s: HTTP %d %s, want %d %s", d.Name, a.Status, a.Code, d.RejectStatus, d.Code)
		case d.Expect != Rejected && a.Status != 200 && a.Status != 202:
			add("upload answered", "%s: HTTP %d %s, want 202 (or 200 for the same bytes again)", d.Name, a.Status, a.Code)
		case d.ExactOf >= 0 && d.Expect != Rejected && (a.DocumentID != p.answers[d.ExactOf].DocumentID || a.JobID != p.answers[d.ExactOf].JobID):
			add("same bytes, same document", "%s: document %s run %s, but the first upload of these bytes (%s) got %s run %s",
				d.Name, a.DocumentID, a.JobID, docs[d.ExactOf].Name, p.answers[d.ExactOf].DocumentID, p.answers[d.ExactOf].JobID)
		}
	}

	// Documents: one run each, ending as expected.
	groups := map[string][]Doc{}
	seen := map[string]bool{}
	expected := 0
	for _, d := range docs {
		if seen[d.SHA] {
			continue
		}
		seen[d.SHA] = true
		st, ok := p.states[d.SHA]
		if d.Expect == Rejected {
			if ok {
				add("bad document refused with its reason", "%s was stored (document %s, run %s %s) but should have been refused", d.Name, st.DocumentID, st.JobID, st.Status)
			}
			continue
		}
		expected++
		if !ok {
			add("every document stored", "%s (sha256 %s) has no document row", d.Name, d.SHA)
			continue
		}
		if st.Runs != 1 {
			add("one run per document", "%s: %d runs (%s)", d.Name, st.Runs, fmt.Sprintf(docQuery, d.SHA))
		}
		if d.Expect == Failed {
			if st.Status != d.Status || st.State != string(runstate.Deadletter) || st.Code != d.Code {
				add("bad document failed with its reason", "%s: run %s ended %s/%s code %q, want %s/deadletter code %q",
					d.Name, st.JobID, st.Status, st.State, st.Code, d.Status, d.Code)
			}
			if st.Chunks > 0 || st.Tokens > 0 {
				add("nothing published for a failed document", "%s: %d chunks, %d tokens billed", d.Name, st.Chunks, st.Tokens)
			}
			continue
		}
		groups[d.Group] = append(groups[d.Group], d)
	}
	if n := len(p.states); n != expected {
		add("every document stored", "%d documents in the database, want %d", n, expected)
	}

	refGroups := map[string]groupResult{}
	if ref != nil {
		refGroups = groupResults(docs, ref.states)
	}
	for _, g := range sortedKeys(groups) {
		members := groups[g]
		var complete []docState
		for _, d := range members {
			st := p.states[d.SHA]
			switch st.Status {
			case string(runstate.Complete):
				complete = append(complete, st)
				if st.Finalized != 1 {
					add("complete exactly once", "%s: run %s has %d DOCUMENT_COMPLETE events, want 1", d.Name, st.JobID, st.Finalized)
				}
				if st.Tokens != st.ChunkTokens {
					add("billed tokens = chunk tokens", "%s: run %s billed %d tokens for chunks of %d tokens (SELECT tokens FROM upload_pipeline.upload_jobs WHERE job_id = '%s')",
						d.Name, st.JobID, st.Tokens, st.ChunkTokens, st.JobID)
				}
			case string(runstate.Duplicate):
				if st.Chunks > 0 || st.Tokens > 0 {
					add("nothing published for a duplicate", "%s: duplicate run %s has %d chunks, %d tokens billed", d.Name, st.JobID, st.Chunks, st.Tokens)
				}
			default:
				add("complete exactly once", "%s: run %s ended %s/%s (last_error code %q), want complete (%s)",
					d.Name, st.JobID, st.Status, st.State, st.Code, fmt.Sprintf(docQuery, d.SHA))
			}
		}
		if len(complete) != 1 {
			if len(members) > 1 || len(complete) > 1 {
				add("complete exactly once", "content group %s (%s): %d complete documents, want exactly 1", g, names(members), len(complete))
			}
			continue
		}
		orig := complete[0]
		for _, d := range members {
			if st := p.states[d.SHA]; st.Status == string(runstate.Duplicate) && st.DuplicateOf != orig.DocumentID {
				add("duplicate of the complete document", "%s: duplicate_of %s, want %s", d.Name, st.DuplicateOf, orig.DocumentID)
			}
		}
		if r, ok := refGroups[g]; ok && ref != nil {
			if orig.Digest != r.Digest || orig.Chunks != r.Chunks {
				add("chunks and vectors = fault-free run", "%s: %d chunks, digest %s; the fault-free run: %d chunks, digest %s "+
					"(SELECT chunk_ord, chunk_sha, vector_sha FROM upload_pipeline.document_chunks WHERE document_id = '%s' ORDER BY chunk_ord)\n%s",
					names(members), orig.Chunks, short(orig.Digest), r.Chunks, short(r.Digest), orig.DocumentID, chunkDiff(orig.ChunkRows, r.Rows))
			}
			if orig.Tokens != r.Tokens {
				add("billed tokens = fault-free run", "%s: %d tokens billed, the fault-free run %d", names(members), orig.Tokens, r.Tokens)
			}
		}
	}

	// LlamaParse pages: each document billed its pages once, as in the fault-free run.
	if ref != nil {
		for sha, st := range p.states {
			if r, ok := ref.states[sha]; ok && r.Pages != st.Pages {
				add("LlamaParse pages billed once", "run %s billed %d pages, the fault-free run %d (document %s)", st.JobID, st.Pages, r.Pages, st.DocumentID)
			}
		}
	}

	t := p.totals
	if t.DupOrdinals > 0 || t.DupChunkIDs > 0 {
		add("no duplicate chunk or vector rows", "%d ordinals and %d chunk ids stored more than once", t.DupOrdinals, t.DupChunkIDs)
	}
	if ref != nil && t.ChunkRows != ref.totals.ChunkRows {
		add("no duplicate chunk or vector rows", "%d rows in document_chunks, the fault-free run %d", t.ChunkRows, ref.totals.ChunkRows)
	}
	if t.ChunkBuffer > 0 || t.VectorBuffer > 0 {
		add("no buffer rows left", "%d chunk and %d vector buffer rows (SELECT document_id, count(*) FROM upload_pipeline.document_chunk_buffer GROUP BY 1)",
			t.ChunkBuffer, t.VectorBuffer)
	}
	for _, r := range t.NonTerminal {
		add("no non-terminal run", "%s", r)
	}
	for _, j := range t.RiverLeftover {
		add("every River job finalized", "%s", j)
	}
	if t.BilledTokens != t.ChunkTokens || t.UsageTokens != t.ChunkTokens {
		add("billed tokens = chunk tokens", "upload_jobs.tokens sum %d, usage_daily openai tokens %d, document_chunks.token_count sum %d",
			t.BilledTokens, t.UsageTokens, t.ChunkTokens)
	}
	if t.BilledPages != t.UsagePages {
		add("LlamaParse pages billed once", "upload_jobs.pages_billed sum %d, usage_daily llamaparse pages %d", t.BilledPages, t.UsagePages)
	}
	if len(p.lpJobs) != t.Runs {
		add("LlamaParse submitted once per run", "the LlamaParse twin created %d jobs for %d runs", len(p.lpJobs), t.Runs)
	}
	byRun := map[string][]string{}
	for _, j := range p.lpJobs {
		byRun[j.run] = append(byRun[j.run], j.id)
	}
	for _, d := range docs {
		st, ok := p.states[d.SHA]
		if ids := byRun[st.JobID.String()]; ok && len(ids) > 1 {
			add("LlamaParse submitted once per run", "%s: run %s sent %d LlamaParse jobs %v; it recorded parse_job_id %s and %d PARSE_REQUESTED events "+
				"(SELECT ts, type, code, worker_id, attempt FROM upload_pipeline.events WHERE job_id = '%s' AND stage = 'parse' ORDER BY ts)",
				d.Name, st.JobID, len(ids), ids, st.ParseJobID, st.Submits, st.JobID)
			delete(byRun, st.JobID.String())
		}
	}
	return v
}

// groupResults is, per content group, the chunks of its complete document.
func groupResults(docs []Doc, states map[string]docState) map[string]groupResult {
	out := map[string]groupResult{}
	for _, d := range docs {
		if st, ok := states[d.SHA]; ok && st.Status == string(runstate.Complete) {
			out[d.Group] = groupResult{Digest: st.Digest, Chunks: st.Chunks, Tokens: st.Tokens, Rows: st.ChunkRows}
		}
	}
	return out
}

func names(docs []Doc) string {
	var n []string
	for _, d := range docs {
		n = append(n, d.Name)
	}
	return strings.Join(n, ", ")
}

func short(digest string) string {
	if len(digest) > 12 {
		return digest[:12]
	}
	return digest
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// lpJob is a LlamaParse twin job and the run that asked for it (from its webhook URL).
type lpJob struct{ id, run string }

// chunkDiff names the first ordinals where two passes' chunks differ.
func chunkDiff(got, want []chunkRow) string {
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(got), len(want)) && shown < 5; i++ {
		var g, w chunkRow
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g == w {
			continue
		}
		shown++
		fmt.Fprintf(&b, "    ordinal %d: chunk_sha %s vector_sha %s; fault-free: ordinal %d chunk_sha %s vector_sha %s\n",
			g.Ord, short(g.ChunkSHA), short(g.VecSHA), w.Ord, short(w.ChunkSHA), short(w.VecSHA))
	}
	return strings.TrimRight(b.String(), "\n")
}
