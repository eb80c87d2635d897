// Package storage keeps document bytes (raw uploads and parsed markdown) in a blob
// store. Keys are built from ids only, never from user file names.
package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/google/uuid"
)

// ErrNotFound is returned when a key has no object.
var ErrNotFound = errors.New("object not found")

// Object describes a stored object.
type Object struct {
	Key    string
	Size   int64
	SHA256 string // hex; computed while writing
}

// Store is a blob store.
type Store interface {
	// Put stores r under key, replacing any previous object atomically.
	Put(ctx context.Context, key string, r io.Reader) (Object, error)
	// Get opens the object; ErrNotFound if missing.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// Stat describes the object (SHA256 may be empty); ErrNotFound if missing.
	Stat(ctx context.Context, key string) (Object, error)
	// Delete removes the object; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
}

// RawKey is where a document's uploaded bytes live.
func RawKey(userID, documentID uuid.UUID) string {
	return fmt.Sprintf("raw/%s/%s", userID, documentID)
}

// ParsedKey is where a document's parsed markdown lives.
func ParsedKey(userID, documentID uuid.UUID) string {
	return fmt.Sprintf("parsed/%s/%s.md", userID, documentID)
}

var keyRE = regexp.MustCompile(`^[a-z]+(/[0-9a-zA-Z._-]+)+$`)

// ValidKey rejects keys that could escape the store or were not built by RawKey/ParsedKey-like code.
func ValidKey(key string) error {
	if !keyRE.MatchString(key) || strings.Contains(key, "..") {
		return fmt.Errorf("invalid storage key %q", key)
	}
	return nil
}

// ReadAll reads a whole object, refusing more than limit bytes (0 = no limit).
func ReadAll(ctx context.Context, s Store, key string, limit int64) ([]byte, error) {
	rc, err := s.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if limit <= 0 {
		return io.ReadAll(rc)
	}
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("object %s is larger than %d bytes", key, limit)
	}
	return b, nil
}

// Local is a Store on the local filesystem.
type Local struct{ root string }

// NewLocal returns a store rooted at dir (created if missing).
func NewLocal(dir string) (*Local, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("create data dir %s: %w", abs, err)
	}
	return &Local{root: abs}, nil
}

func (l *Local) path(key string) (string, error) {
	if err := ValidKey(key); err != nil {
		return "", err
	}
	return filepath.Join(l.root, filepath.FromSlash(key)), nil
}

// Put writes to a temporary file, fsyncs it and renames it into place.
func (l *Local) Put(ctx context.Context, key string, r io.Reader) (Object, error) {
	p, err := l.path(key)
	if err != nil {
		return Object{}, err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return Object{}, err
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return Object{}, err
	}
	defer os.Remove(f.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), ctxReader{ctx, r})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Object{}, fmt.Errorf("write %s: %w", key, err)
	}
	if err := os.Rename(f.Name(), p); err != nil {
		return Object{}, fmt.Errorf("write %s: %w", key, err)
	}
	return Object{Key: key, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// Get opens the object.
func (l *Local) Get(_ context.Context, key string) (io.ReadCloser, error) {
	p, err := l.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	return f, err
}

// Stat describes the object.
func (l *Local) Stat(_ context.Context, key string) (Object, error) {
	p, err := l.path(key)
	if err != nil {
		return Object{}, err
	}
	st, err := os.Stat(p)
	if errors.Is(err, os.ErrNotExist) {
		return Object{}, fmt.Errorf("%s: %w", key, ErrNotFound)
	} else if err != nil {
		return Object{}, err
	}
	return Object{Key: key, Size: st.Size()}, nil
}

// Delete removes the object.
func (l *Local) Delete(_ context.Context, key string) error {
	p, err := l.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
