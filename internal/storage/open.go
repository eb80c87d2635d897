package storage

import (
	"fmt"
	"net/http"
	"strings"
)

// Backend names for Settings.Backend.
const (
	BackendLocal    = "local"
	BackendS3       = "s3"
	BackendSupabase = "supabase"
)

// Settings choose and configure a blob store (see Open).
type Settings struct {
	// Backend is "local" (default when empty), "s3" or "supabase".
	Backend string

	// Local: Dir is the root directory. With SignSecret and PublicBaseURL
	// set, the store also signs URLs (SignedLocal) served by
	// BlobHandler(store, SignSecret) mounted at BlobPath on that base URL.
	Dir           string
	SignSecret    string
	PublicBaseURL string

	// S3-compatible (path-style unless S3VirtualHosted).
	S3Endpoint      string // "" = AWS
	S3Region        string // "" = us-east-1
	S3Bucket        string
	S3AccessKey     string
	S3SecretKey     string
	S3SessionToken  string
	S3VirtualHosted bool

	// Supabase Storage REST.
	SupabaseURL    string // https://<ref>.supabase.co[/storage/v1], or a bare storage-api base
	SupabaseKey    string // service_role key
	SupabaseBucket string

	// HTTPClient is used by the s3 and supabase backends (nil = default).
	HTTPClient *http.Client
}

// Open returns the configured store. It makes no network request (call
// EnsureBucket on *S3 or *Supabase to create a missing bucket). The s3 and
// supabase stores, and the local one when SignSecret is set, implement
// Signer.
func Open(s Settings) (Store, error) {
	switch strings.ToLower(strings.TrimSpace(s.Backend)) {
	case "", BackendLocal:
		if s.Dir == "" {
			return nil, fmt.Errorf("local storage: directory is required")
		}
		l, err := NewLocal(s.Dir)
		if err != nil {
			return nil, err
		}
		if s.SignSecret == "" {
			return l, nil
		}
		sg, err := NewLocalSigner(LocalSignerOptions{BaseURL: s.PublicBaseURL, Secret: s.SignSecret})
		if err != nil {
			return nil, fmt.Errorf("local storage: %w", err)
		}
		return SignedLocal{Local: l, LocalSigner: sg}, nil
	case BackendS3:
		return NewS3(S3Options{
			Endpoint: s.S3Endpoint, Region: s.S3Region, Bucket: s.S3Bucket,
			AccessKeyID: s.S3AccessKey, SecretAccessKey: s.S3SecretKey, SessionToken: s.S3SessionToken,
			VirtualHostedStyle: s.S3VirtualHosted, HTTPClient: s.HTTPClient,
		})
	case BackendSupabase:
		return NewSupabase(SupabaseOptions{URL: s.SupabaseURL, Key: s.SupabaseKey, Bucket: s.SupabaseBucket, HTTPClient: s.HTTPClient})
	default:
		return nil, fmt.Errorf("unknown storage backend %q (want local, s3 or supabase)", s.Backend)
	}
}
