package catalog

import (
	"encoding/json"

	"github.com/docpipe/docpipe/internal/api/apitypes"
)

// The API's wire form of what the catalog reads (internal/api/apitypes). The API
// answers with it, and the CLI's direct mode prints it, so both show the one
// documented shape.

// Wire is the run as the API shows it: last_error decoded (an unreadable one left out).
func (ji JobInfo) Wire() apitypes.Job {
	j := apitypes.Job{ID: ji.JobID, DocumentID: ji.DocumentID, UserID: ji.UserID, Filename: ji.Filename, Status: ji.Status, State: ji.State,
		Stage: ji.Stage, Percent: ji.Percent, ChunksTotal: ji.ChunksTotal, EmbedsDone: ji.EmbedsDone, EmbedsTotal: ji.EmbedsTotal,
		RetryCount: ji.RetryCount, CorrelationID: ji.CorrelationID, Pages: ji.Pages, Tokens: ji.Tokens, CostUSD: ji.CostUSD,
		CreatedAt: ji.CreatedAt, UpdatedAt: ji.UpdatedAt, FinishedAt: ji.FinishedAt}
	if len(ji.LastError) > 0 {
		var le apitypes.LastError
		if json.Unmarshal(ji.LastError, &le) == nil && le.Code != "" {
			if le.RetryAt != nil && le.RetryAt.IsZero() {
				le.RetryAt = nil
			}
			j.LastError = &le
		}
	}
	return j
}

// Wire is the document as the API shows it, with its latest run's status on top.
func (d DocumentInfo) Wire() apitypes.Document {
	out := apitypes.Document{ID: d.DocumentID, UserID: d.UserID, Filename: d.Filename, MIME: d.MIME, Bytes: d.Bytes, SHA256: d.SHA256,
		Pages: d.Pages, Chunks: d.Chunks, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt}
	if d.Job != nil {
		j := d.Job.Wire()
		out.Job = &j
		out.Status, out.State, out.Stage, out.Percent = j.Status, j.State, j.Stage, j.Percent
	}
	return out
}

// Wire is the chunk as the API shows it.
func (c Chunk) Wire() apitypes.Chunk {
	return apitypes.Chunk{ID: c.ChunkID, Ord: c.Ord, Text: c.Text, Tokens: c.Tokens, HeadingPath: nonNil(c.HeadingPath),
		PageStart: c.PageStart, PageEnd: c.PageEnd, EmbedModel: c.EmbedModel}
}

// Wire is the event as the API shows it.
func (e Event) Wire() apitypes.Event {
	return apitypes.Event{At: e.Time, JobID: e.JobID, Type: e.Type, Stage: e.Stage, Severity: e.Severity, Code: e.Code,
		Payload: e.Payload, WorkerID: e.WorkerID, Attempt: e.Attempt}
}

// Wire is the search result as the API shows it.
func (h Hit) Wire() apitypes.SearchHit {
	return apitypes.SearchHit{DocumentID: h.DocumentID, Filename: h.Filename, ChunkID: h.ChunkID, Ord: h.Ord,
		HeadingPath: nonNil(h.HeadingPath), PageStart: h.PageStart, PageEnd: h.PageEnd, Score: h.Score,
		VectorRank: h.VectorRank, KeywordRank: h.KeywordRank, Text: h.Text}
}

// Wires is the wire form of each of items.
func Wires[T interface{ Wire() W }, W any](items []T) []W {
	out := make([]W, len(items))
	for i, it := range items {
		out[i] = it.Wire()
	}
	return out
}

// nonNil is s, or an empty list for JSON's [] rather than null.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
