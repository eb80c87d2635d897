package storage_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/google/uuid"

	"github.com/docpipe/docpipe/internal/storage"
)

// Store, read back and delete an object in the local blob store. Every backend
// (local, S3, Supabase) behaves the same way: the contract suite in storagetest
// runs against all three. Keys are built from ids only, never from file names.
func ExampleLocal() {
	dir, err := os.MkdirTemp("", "blobs")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	store, err := storage.NewLocal(dir)
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	user := uuid.MustParse("00000000-0000-4000-8000-000000000001")
	doc := uuid.MustParse("6f0c2d4e-0000-5000-8000-000000000002")
	key := storage.RawKey(user, doc)

	obj, err := store.Put(ctx, key, strings.NewReader("hello"))
	if err != nil {
		panic(err)
	}
	fmt.Println(obj.Key, obj.Size, obj.SHA256[:12])

	b, err := storage.ReadAll(ctx, store, key, 1<<20)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(b))

	_ = store.Delete(ctx, key)
	_, err = store.Get(ctx, key)
	fmt.Println(errors.Is(err, storage.ErrNotFound))
	// Output:
	// raw/00000000-0000-4000-8000-000000000001/6f0c2d4e-0000-5000-8000-000000000002 5 2cf24dba5fb0
	// hello
	// true
}
