package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/google/uuid"
)

func TestLocalStore(t *testing.T) {
	ctx := context.Background()
	s, err := NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	key := RawKey(uuid.New(), uuid.New())
	data := []byte("hello, docpipe")
	obj, err := s.Put(ctx, key, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if obj.Size != int64(len(data)) || obj.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("put: %+v", obj)
	}
	got, err := ReadAll(ctx, s, key, 0)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get: %q %v", got, err)
	}
	if _, err := ReadAll(ctx, s, key, 4); err == nil {
		t.Fatal("read limit ignored")
	}
	if _, err := s.Put(ctx, key, bytes.NewReader([]byte("v2"))); err != nil {
		t.Fatal(err)
	}
	if st, err := s.Stat(ctx, key); err != nil || st.Size != 2 {
		t.Fatalf("overwrite: %+v %v", st, err)
	}
	if err := s.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, key); err != nil {
		t.Fatalf("delete missing: %v", err)
	}
	if _, err := s.Get(ctx, key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get deleted: %v", err)
	}
	if _, err := s.Stat(ctx, key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("stat deleted: %v", err)
	}
	for _, bad := range []string{"", "../x", "/abs/path", "raw/../../etc/passwd", "raw/a b"} {
		if _, err := s.Put(ctx, bad, bytes.NewReader(data)); err == nil {
			t.Errorf("key %q accepted", bad)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Put(cctx, ParsedKey(uuid.New(), uuid.New()), bytes.NewReader(data)); err == nil {
		t.Error("cancelled put succeeded")
	}
}
