package main

import (
	"bufio"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/docpipe/docpipe/internal/storage"
)

// `mock storage` serves the Supabase Storage twin until its context ends;
// the Supabase store works against it through the /storage/v1 gateway path.
func TestMockStorageCommand(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pr, pw := io.Pipe()
	cmd := mockStorageCmd()
	cmd.SetArgs([]string{"--addr", "127.0.0.1:0", "--api-key", "svc", "--bucket", "docpipe,other"})
	cmd.SetOut(pw)
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	base := strings.TrimSpace(line[strings.Index(line, "http://"):])

	s, err := storage.NewSupabase(storage.SupabaseOptions{URL: base + "/storage/v1", Key: "svc", Bucket: "other"})
	if err != nil {
		t.Fatal(err)
	}
	key := storage.RawKey(uuid.New(), uuid.New())
	if _, err := s.Put(ctx, key, strings.NewReader("via the command")); err != nil {
		t.Fatal(err)
	}
	if b, err := storage.ReadAll(ctx, s, key, 0); err != nil || string(b) != "via the command" {
		t.Fatalf("get: %q %v", b, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("command: %v", err)
	}
}
