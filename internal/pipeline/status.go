package pipeline

import "github.com/google/uuid"

// Namespace is the UUIDv5 namespace for document and chunk ids (kept from the original
// design so ids are comparable).
var Namespace = uuid.MustParse("6c8a1e6e-1f0b-4aa8-9f0a-1a7c2e6f2b42")

// DocumentID is uuid5(NS, "{user_id}:{file_sha256}").
func DocumentID(userID uuid.UUID, fileSHA256 string) uuid.UUID {
	return uuid.NewSHA1(Namespace, []byte(userID.String()+":"+fileSHA256))
}

// ChunkID is uuid5(NS, "{document_id}:{chunker_name}:{chunker_version}:{chunk_ord}").
func ChunkID(documentID uuid.UUID, chunkerName, chunkerVersion string, ord int) uuid.UUID {
	return uuid.NewSHA1(Namespace, []byte(documentID.String()+":"+chunkerName+":"+chunkerVersion+":"+itoa(ord)))
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	neg := n < 0
	if neg {
		n = -n
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}

// Statuses of upload_jobs.status (the business state machine, DESIGN.md §2).
const (
	StatusUploaded            = "uploaded"
	StatusParseQueued         = "parse_queued"
	StatusParsed              = "parsed"
	StatusParseValidated      = "parse_validated"
	StatusChunking            = "chunking"
	StatusChunksStored        = "chunks_stored"
	StatusEmbeddingQueued     = "embedding_queued"
	StatusEmbeddingInProgress = "embedding_in_progress"
	StatusEmbeddingsStored    = "embeddings_stored"
	StatusComplete            = "complete"
	StatusFailedParse         = "failed_parse"
	StatusFailedChunking      = "failed_chunking"
	StatusFailedEmbedding     = "failed_embedding"
	StatusDuplicate           = "duplicate"
)

// States of upload_jobs.state.
const (
	StateQueued     = "queued"
	StateWorking    = "working"
	StateRetryable  = "retryable"
	StateDone       = "done"
	StateDeadletter = "deadletter"
)

// Terminal reports whether a run in this status will not move again by itself.
func Terminal(status string) bool {
	switch status {
	case StatusComplete, StatusDuplicate, StatusFailedParse, StatusFailedChunking, StatusFailedEmbedding:
		return true
	}
	return false
}

var statusPercent = map[string]float64{
	StatusUploaded: 5, StatusParseQueued: 10, StatusParsed: 30, StatusParseValidated: 35,
	StatusChunking: 40, StatusChunksStored: 50, StatusEmbeddingQueued: 50,
	StatusEmbeddingInProgress: 50, StatusEmbeddingsStored: 95, StatusComplete: 100,
}

// Percent is the progress shown for a run: by stage, and within embedding by the
// share of chunks embedded. Failed and duplicate runs report -1.
func Percent(status string, embedsDone, embedsTotal int) float64 {
	p, ok := statusPercent[status]
	if !ok {
		return -1
	}
	if status == StatusEmbeddingInProgress && embedsTotal > 0 {
		p += 45 * float64(embedsDone) / float64(embedsTotal)
	}
	return p
}
