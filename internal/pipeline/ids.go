package pipeline

import (
	"strconv"

	"github.com/google/uuid"
)

// Namespace is the UUIDv5 namespace for document and chunk ids (kept from the original
// design so ids are comparable).
var Namespace = uuid.MustParse("6c8a1e6e-1f0b-4aa8-9f0a-1a7c2e6f2b42")

// DocumentID is uuid5(NS, "{user_id}:{file_sha256}").
func DocumentID(userID uuid.UUID, fileSHA256 string) uuid.UUID {
	return uuid.NewSHA1(Namespace, []byte(userID.String()+":"+fileSHA256))
}

// ChunkID is uuid5(NS, "{document_id}:{chunker_name}:{chunker_version}:{chunk_ord}").
func ChunkID(documentID uuid.UUID, chunkerName, chunkerVersion string, ord int) uuid.UUID {
	return uuid.NewSHA1(Namespace, []byte(documentID.String()+":"+chunkerName+":"+chunkerVersion+":"+strconv.Itoa(ord)))
}
