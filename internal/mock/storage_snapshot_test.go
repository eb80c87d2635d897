package mock_test

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docpipe/docpipe/internal/mock"
	"github.com/docpipe/docpipe/internal/storage"
)

// Objects survive a twin restart through SaveTo/LoadFrom (docpipe dev does this on
// shutdown and start).
func TestStorageTwinSnapshot(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "storage.gob")
	open := func(twin *mock.StorageServer) storage.Store {
		srv := httptest.NewServer(twin)
		t.Cleanup(srv.Close)
		st, err := storage.NewSupabase(storage.SupabaseOptions{URL: srv.URL + "/storage/v1", Key: "k", Bucket: "docpipe"})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	a := mock.NewStorageServer(mock.StorageOptions{APIKey: "k", Buckets: []string{"docpipe"}})
	if _, err := open(a).Put(ctx, "raw/u/doc", strings.NewReader("kept bytes")); err != nil {
		t.Fatal(err)
	}
	if err := a.SaveTo(path); err != nil {
		t.Fatal(err)
	}
	b := mock.NewStorageServer(mock.StorageOptions{APIKey: "k"})
	if err := b.LoadFrom(path); err != nil {
		t.Fatal(err)
	}
	got, err := storage.ReadAll(ctx, open(b), "raw/u/doc", 0)
	if err != nil || string(got) != "kept bytes" {
		t.Fatalf("after reload: %q, %v", got, err)
	}
	if err := mock.NewStorageServer(mock.StorageOptions{}).LoadFrom(filepath.Join(t.TempDir(), "none.gob")); err != nil {
		t.Errorf("a missing snapshot: %v", err)
	}
}
