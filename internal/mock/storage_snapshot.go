package mock

import (
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// The storage twin keeps objects in memory; `docpipe dev` saves them on shutdown and
// loads them at start, so documents interrupted by Ctrl-C still have their bytes.

type sbSnapshot struct{ Buckets []sbBucketSnap }

type sbBucketSnap struct {
	ID, Name         string
	Public           bool
	FileSizeLimit    int64
	AllowedMime      []string
	Created, Updated time.Time
	Objects          []sbObjectSnap
}

type sbObjectSnap struct {
	ID, Name, Version              string
	Data                           []byte
	Mimetype, Cache, ETag, Owner   string
	UserMeta                       json.RawMessage
	Created, Updated, LastAccessed time.Time
}

// SaveTo writes every bucket and object to path (atomically).
func (s *StorageServer) SaveTo(path string) error {
	s.mu.Lock()
	var snap sbSnapshot
	for _, b := range s.buckets {
		bs := sbBucketSnap{ID: b.id, Name: b.name, Public: b.public, FileSizeLimit: b.fileSizeLimit, AllowedMime: b.allowedMime,
			Created: b.created, Updated: b.updated}
		for _, o := range b.objects {
			bs.Objects = append(bs.Objects, sbObjectSnap{ID: o.id, Name: o.name, Version: o.version, Data: o.data, Mimetype: o.mimetype,
				Cache: o.cache, ETag: o.etag, Owner: o.owner, UserMeta: o.userMeta, Created: o.created, Updated: o.updated, LastAccessed: o.lastAccessed})
		}
		snap.Buckets = append(snap.Buckets, bs)
	}
	s.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if err := gob.NewEncoder(f).Encode(snap); err != nil {
		f.Close()
		return fmt.Errorf("storage twin snapshot: %w", err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// LoadFrom replaces the twin's buckets with a snapshot written by SaveTo; a missing
// file is not an error.
func (s *StorageServer) LoadFrom(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	var snap sbSnapshot
	if err := gob.NewDecoder(f).Decode(&snap); err != nil {
		return fmt.Errorf("storage twin snapshot %s: %w", path, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, bs := range snap.Buckets {
		b := &sbBucket{id: bs.ID, name: bs.Name, public: bs.Public, fileSizeLimit: bs.FileSizeLimit, allowedMime: bs.AllowedMime,
			created: bs.Created, updated: bs.Updated, objects: map[string]*sbObject{}}
		for _, o := range bs.Objects {
			b.objects[o.Name] = &sbObject{id: o.ID, name: o.Name, version: o.Version, data: o.Data, mimetype: o.Mimetype, cache: o.Cache,
				etag: o.ETag, owner: o.Owner, userMeta: o.UserMeta, created: o.Created, updated: o.Updated, lastAccessed: o.LastAccessed}
		}
		s.buckets[bs.ID] = b
	}
	return nil
}
