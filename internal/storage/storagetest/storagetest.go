// Package storagetest is the contract every storage.Store implementation
// must pass: round trips with checksums, Stat, overwrite, delete, not-found,
// key validation, cancellation, large objects, and (for stores that are
// storage.Signers) signed GET/PUT URLs that work over plain HTTP and are
// refused once tampered with, used with the wrong method, or expired.
package storagetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/docpipe/docpipe/internal/storage"
)

// Fixture is one fresh store under test.
type Fixture struct {
	Store storage.Store
	// Advance moves forward the clock that issues and checks signed URLs
	// (for a remote store, the server's clock). nil skips the expiry checks.
	Advance func(time.Duration)
	// HTTPClient fetches signed URLs (nil = http.DefaultClient).
	HTTPClient *http.Client
	// StatSHA256 says Stat returns the SHA256 of objects written by Put
	// (S3 and Supabase keep it as metadata). Either way a SHA256 that Stat
	// returns must be right; the local store's Stat leaves it empty, which
	// storage.Store allows.
	StatSHA256 bool
	// LargeBytes is the size of the large-object test; 0 = 9 MiB (more than
	// the remote stores keep in memory before spooling to disk).
	LargeBytes int
}

// Run runs the contract. newFixture is called once per subtest (subtests run
// in parallel), so each gets an empty store.
func Run(t *testing.T, newFixture func(t *testing.T) Fixture) {
	tests := []struct {
		name string
		fn   func(t *testing.T, f Fixture)
	}{
		{"RoundTrip", roundTrip},
		{"Overwrite", overwrite},
		{"Delete", deleteObject},
		{"NotFound", notFound},
		{"InvalidKeys", invalidKeys},
		{"Cancellation", cancellation},
		{"Large", large},
		{"SignedGet", signedGet},
		{"SignedPut", signedPut},
		{"SignedRefused", signedRefused},
		{"SignedExpired", signedExpired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			if f.HTTPClient == nil {
				f.HTTPClient = http.DefaultClient
			}
			tc.fn(t, f)
		})
	}
}

func newKey() string { return storage.RawKey(uuid.New(), uuid.New()) }

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// onlyReader hides every method but Read (no Seek, no Len, no WriteTo), so
// stores cannot take shortcuts around streaming.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func put(t *testing.T, s storage.Store, key string, data []byte) storage.Object {
	t.Helper()
	obj, err := s.Put(context.Background(), key, onlyReader{bytes.NewReader(data)})
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	if obj.Key != key || obj.Size != int64(len(data)) || obj.SHA256 != sum(data) {
		t.Fatalf("put %s returned %+v, want size %d sha256 %s", key, obj, len(data), sum(data))
	}
	return obj
}

func mustGet(t *testing.T, s storage.Store, key string) []byte {
	t.Helper()
	b, err := storage.ReadAll(context.Background(), s, key, 0)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	return b
}

func mustStat(t *testing.T, s storage.Store, key string, data []byte, wantSum bool) {
	t.Helper()
	st, err := s.Stat(context.Background(), key)
	if err != nil {
		t.Fatalf("stat %s: %v", key, err)
	}
	if st.Key != key || st.Size != int64(len(data)) {
		t.Fatalf("stat %s = %+v, want size %d", key, st, len(data))
	}
	if (wantSum || st.SHA256 != "") && st.SHA256 != sum(data) {
		t.Fatalf("stat %s sha256 = %q, want %s", key, st.SHA256, sum(data))
	}
}

func roundTrip(t *testing.T, f Fixture) {
	for _, data := range [][]byte{[]byte("hello, docpipe"), {}, bytes.Repeat([]byte{0, 0xff, '\n'}, 1000)} {
		key := newKey()
		put(t, f.Store, key, data)
		if got := mustGet(t, f.Store, key); !bytes.Equal(got, data) {
			t.Fatalf("get %s: %d bytes, want %d", key, len(got), len(data))
		}
		mustStat(t, f.Store, key, data, f.StatSHA256)
	}
	key := storage.ParsedKey(uuid.New(), uuid.New())
	put(t, f.Store, key, []byte("# parsed\n"))
	mustStat(t, f.Store, key, []byte("# parsed\n"), f.StatSHA256)
	if _, err := storage.ReadAll(context.Background(), f.Store, key, 4); err == nil {
		t.Fatal("ReadAll ignored its limit")
	}
}

func overwrite(t *testing.T, f Fixture) {
	key := newKey()
	put(t, f.Store, key, []byte("version one, longer"))
	v2 := []byte("v2")
	put(t, f.Store, key, v2)
	if got := mustGet(t, f.Store, key); !bytes.Equal(got, v2) {
		t.Fatalf("after overwrite: %q", got)
	}
	mustStat(t, f.Store, key, v2, f.StatSHA256)
}

func deleteObject(t *testing.T, f Fixture) {
	ctx := context.Background()
	key, other := newKey(), newKey()
	put(t, f.Store, key, []byte("doomed"))
	put(t, f.Store, other, []byte("survivor"))
	if err := f.Store.Delete(ctx, key); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := f.Store.Get(ctx, key); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("get deleted: %v", err)
	}
	if _, err := f.Store.Stat(ctx, key); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("stat deleted: %v", err)
	}
	if err := f.Store.Delete(ctx, key); err != nil {
		t.Fatalf("delete again: %v", err)
	}
	if err := f.Store.Delete(ctx, newKey()); err != nil {
		t.Fatalf("delete never stored: %v", err)
	}
	if got := mustGet(t, f.Store, other); string(got) != "survivor" {
		t.Fatalf("other object: %q", got)
	}
}

func notFound(t *testing.T, f Fixture) {
	ctx := context.Background()
	key := newKey()
	if rc, err := f.Store.Get(ctx, key); !errors.Is(err, storage.ErrNotFound) {
		if rc != nil {
			rc.Close()
		}
		t.Fatalf("get missing: %v, want ErrNotFound", err)
	}
	if _, err := f.Store.Stat(ctx, key); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("stat missing: %v, want ErrNotFound", err)
	}
	if _, err := storage.ReadAll(ctx, f.Store, key, 0); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("ReadAll missing: %v, want ErrNotFound", err)
	}
}

var badKeys = []string{"", "raw", "../x", "/abs/path", "raw/../../etc/passwd", "raw/a b", "raw//x", "raw/x/", "Raw/x", "raw/x?y", "raw/%2e%2e"}

func invalidKeys(t *testing.T, f Fixture) {
	ctx := context.Background()
	sg, _ := f.Store.(storage.Signer)
	for _, k := range badKeys {
		if _, err := f.Store.Put(ctx, k, strings.NewReader("x")); err == nil {
			t.Errorf("put %q accepted", k)
		}
		if rc, err := f.Store.Get(ctx, k); err == nil {
			rc.Close()
			t.Errorf("get %q accepted", k)
		}
		if _, err := f.Store.Stat(ctx, k); err == nil {
			t.Errorf("stat %q accepted", k)
		}
		if err := f.Store.Delete(ctx, k); err == nil {
			t.Errorf("delete %q accepted", k)
		}
		if sg != nil {
			if _, err := sg.SignedGetURL(ctx, k, time.Minute); err == nil {
				t.Errorf("signed get URL for %q", k)
			}
			if _, err := sg.SignedPutURL(ctx, k, time.Minute); err == nil {
				t.Errorf("signed put URL for %q", k)
			}
		}
	}
}

// cancelAfter reads from r and cancels after n bytes, then keeps reading.
type cancelAfter struct {
	r      io.Reader
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.n -= n; c.n <= 0 {
		c.cancel()
	}
	return n, err
}

func cancellation(t *testing.T, f Fixture) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	key := newKey()
	if _, err := f.Store.Put(ctx, key, strings.NewReader("never")); err == nil {
		t.Fatal("put with a cancelled context succeeded")
	}
	if _, err := f.Store.Stat(context.Background(), key); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("cancelled put left something: %v", err)
	}
	// Cancelled mid-stream: the old version stays, whole.
	old := []byte("the old version")
	put(t, f.Store, key, old)
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	body := &cancelAfter{r: bytes.NewReader(make([]byte, 3<<20)), n: 1 << 20, cancel: cancel}
	if _, err := f.Store.Put(ctx, key, onlyReader{body}); err == nil {
		t.Fatal("put cancelled mid-stream succeeded")
	}
	if got := mustGet(t, f.Store, key); !bytes.Equal(got, old) {
		t.Fatalf("after a cancelled overwrite: %d bytes, want the old %d", len(got), len(old))
	}
}

func large(t *testing.T, f Fixture) {
	n := f.LargeBytes
	if n == 0 {
		n = 9 << 20
	}
	gen := func() io.Reader { return io.LimitReader(newPRNGReader(7), int64(n)) }
	h := sha256.New()
	if _, err := io.Copy(h, gen()); err != nil {
		t.Fatal(err)
	}
	want := hex.EncodeToString(h.Sum(nil))
	key := newKey()
	obj, err := f.Store.Put(context.Background(), key, onlyReader{gen()})
	if err != nil {
		t.Fatalf("put large: %v", err)
	}
	if obj.Size != int64(n) || obj.SHA256 != want {
		t.Fatalf("put large = %+v, want size %d sha256 %s", obj, n, want)
	}
	rc, err := f.Store.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	h.Reset()
	got, err := io.Copy(h, rc)
	if err != nil || got != int64(n) || hex.EncodeToString(h.Sum(nil)) != want {
		t.Fatalf("get large: %d bytes, err %v, checksum match %v", got, err, hex.EncodeToString(h.Sum(nil)) == want)
	}
	st, err := f.Store.Stat(context.Background(), key)
	if err != nil || st.Size != int64(n) || (st.SHA256 != want && (f.StatSHA256 || st.SHA256 != "")) {
		t.Fatalf("stat large = %+v, %v", st, err)
	}
}

// prngReader yields incompressible deterministic bytes.
type prngReader struct{ r *rand.ChaCha8 }

func newPRNGReader(seed byte) io.Reader {
	var s [32]byte
	s[0] = seed
	return prngReader{rand.NewChaCha8(s)}
}

func (p prngReader) Read(b []byte) (int, error) { return p.r.Read(b) }

func signer(t *testing.T, f Fixture) storage.Signer {
	t.Helper()
	sg, ok := f.Store.(storage.Signer)
	if !ok {
		t.Skipf("%T does not sign URLs", f.Store)
	}
	return sg
}

type answer struct {
	status int
	body   []byte
}

func (a answer) ok() bool { return a.status >= 200 && a.status < 300 }

func (a answer) String() string {
	b := a.body
	if len(b) > 200 {
		b = b[:200]
	}
	return fmt.Sprintf("HTTP %d %q", a.status, b)
}

// fetch sends a plain request: no auth headers, nothing but the URL.
func fetch(t *testing.T, f Fixture, method, u string, body []byte) answer {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	resp, err := f.HTTPClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read: %v", method, u, err)
	}
	return answer{resp.StatusCode, b}
}

func signedGet(t *testing.T, f Fixture) {
	sg := signer(t, f)
	ctx := context.Background()
	key := newKey()
	data := []byte("%PDF-1.7 pretend\x00\x01")
	put(t, f.Store, key, data)
	u, err := sg.SignedGetURL(ctx, key, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		t.Fatalf("signed URL is not absolute: %s", u)
	}
	a := fetch(t, f, http.MethodGet, u, nil)
	if !a.ok() || !bytes.Equal(a.body, data) {
		t.Fatalf("signed GET: %v", a)
	}
	// The URL can be used more than once while valid.
	if a := fetch(t, f, http.MethodGet, u, nil); !a.ok() || !bytes.Equal(a.body, data) {
		t.Fatalf("signed GET again: %v", a)
	}
	// A URL for a missing object: refused to sign, or 4xx when fetched.
	if u, err := sg.SignedGetURL(ctx, newKey(), time.Minute); err == nil {
		if a := fetch(t, f, http.MethodGet, u, nil); a.ok() {
			t.Fatalf("signed GET of a missing object: %v", a)
		}
	} else if !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("signing a missing object: %v (want ErrNotFound or a URL that 404s)", err)
	}
	for _, ttl := range []time.Duration{0, -time.Second, storage.MaxSignedURLTTL + time.Hour} {
		if _, err := sg.SignedGetURL(ctx, key, ttl); err == nil {
			t.Errorf("ttl %s accepted", ttl)
		}
	}
}

func signedPut(t *testing.T, f Fixture) {
	sg := signer(t, f)
	ctx := context.Background()
	for i, existing := range []bool{false, true} {
		key := newKey()
		if existing {
			put(t, f.Store, key, []byte("to be replaced by a signed upload"))
		}
		u, err := sg.SignedPutURL(ctx, key, 5*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		data := []byte(fmt.Sprintf("uploaded through a signed URL #%d", i))
		if a := fetch(t, f, http.MethodPut, u, data); !a.ok() {
			t.Fatalf("signed PUT (existing=%v): %v", existing, a)
		}
		if got := mustGet(t, f.Store, key); !bytes.Equal(got, data) {
			t.Fatalf("after signed PUT: %q", got)
		}
		mustStat(t, f.Store, key, data, false)
	}
}

// tamper changes the middle character of the longest query value (the
// signature or token).
func tamper(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	name := ""
	for k, v := range q {
		if len(v) > 0 && (name == "" || len(v[0]) > len(q.Get(name))) {
			name = k
		}
	}
	if name == "" {
		t.Fatalf("signed URL has no query: %s", raw)
	}
	v := []byte(q.Get(name))
	i := len(v) / 2
	if v[i] != 'a' {
		v[i] = 'a'
	} else {
		v[i] = 'b'
	}
	q.Set(name, string(v))
	u.RawQuery = q.Encode()
	return u.String()
}

// refused logs a refusal (visible with -v) so reviewers see why it was refused.
func refused(t *testing.T, what string, a answer) answer {
	t.Helper()
	t.Logf("%s → %v", what, a)
	return a
}

func signedRefused(t *testing.T, f Fixture) {
	sg := signer(t, f)
	ctx := context.Background()
	a, b := newKey(), newKey()
	da, db := []byte("object A"), []byte("object B, secret")
	put(t, f.Store, a, da)
	put(t, f.Store, b, db)
	getA, err := sg.SignedGetURL(ctx, a, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	putA, err := sg.SignedPutURL(ctx, a, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if ans := refused(t, "tampered GET", fetch(t, f, http.MethodGet, tamper(t, getA), nil)); ans.ok() {
		t.Errorf("tampered signed GET served: %v", ans)
	}
	if ans := refused(t, "GET of B with A's URL", fetch(t, f, http.MethodGet, strings.Replace(getA, a, b, 1), nil)); ans.ok() || bytes.Equal(ans.body, db) {
		t.Errorf("signed GET for A served B: %v", ans)
	}
	if ans := refused(t, "PUT with a GET URL", fetch(t, f, http.MethodPut, getA, []byte("overwritten via a GET URL"))); ans.ok() {
		t.Errorf("signed GET URL accepted a PUT: %v", ans)
	}
	if ans := refused(t, "tampered PUT", fetch(t, f, http.MethodPut, tamper(t, putA), []byte("tampered upload"))); ans.ok() {
		t.Errorf("tampered signed PUT accepted: %v", ans)
	}
	if ans := refused(t, "PUT to B with A's URL", fetch(t, f, http.MethodPut, strings.Replace(putA, a, b, 1), []byte("upload to B via A's URL"))); ans.ok() {
		t.Errorf("signed PUT for A wrote B: %v", ans)
	}
	if ans := refused(t, "GET with a PUT URL", fetch(t, f, http.MethodGet, putA, nil)); ans.ok() && bytes.Equal(ans.body, da) {
		t.Errorf("signed PUT URL served a GET: %v", ans)
	}
	if got := mustGet(t, f.Store, a); !bytes.Equal(got, da) {
		t.Errorf("A changed: %q", got)
	}
	if got := mustGet(t, f.Store, b); !bytes.Equal(got, db) {
		t.Errorf("B changed: %q", got)
	}
}

func signedExpired(t *testing.T, f Fixture) {
	sg := signer(t, f)
	if f.Advance == nil {
		t.Skip("no clock to advance")
	}
	ctx := context.Background()
	key := newKey()
	data := []byte("short-lived")
	put(t, f.Store, key, data)
	getU, err := sg.SignedGetURL(ctx, key, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	putU, err := sg.SignedPutURL(ctx, key, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// Supabase fixes upload-URL lifetimes server-side (2 h hosted), so jump
	// well past any of them.
	f.Advance(25 * time.Hour)
	if a := refused(t, "expired GET", fetch(t, f, http.MethodGet, getU, nil)); a.ok() {
		t.Errorf("expired signed GET served: %v", a)
	}
	if a := refused(t, "expired PUT", fetch(t, f, http.MethodPut, putU, []byte("too late"))); a.ok() {
		t.Errorf("expired signed PUT accepted: %v", a)
	}
	if got := mustGet(t, f.Store, key); !bytes.Equal(got, data) {
		t.Errorf("object changed: %q", got)
	}
}
