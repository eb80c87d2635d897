package mock

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

type sbResp struct {
	status int
	header http.Header
	body   []byte
}

func (r sbResp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	return m
}

func (r sbResp) list(t *testing.T) []map[string]any {
	t.Helper()
	var m []map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	return m
}

// wantErr checks a storage-api error: HTTP status and the body's statusCode and code.
func (r sbResp) wantErr(t *testing.T, httpStatus int, statusCode, code string) {
	t.Helper()
	if r.status != httpStatus {
		t.Fatalf("HTTP %d, want %d: %s", r.status, httpStatus, r.body)
	}
	m := r.json(t)
	if m["statusCode"] != statusCode || m["code"] != code {
		t.Fatalf("error body %s, want statusCode %q code %q", r.body, statusCode, code)
	}
	if _, ok := m["message"].(string); !ok {
		t.Fatalf("error body without message: %s", r.body)
	}
}

func (r sbResp) wantOK(t *testing.T) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("HTTP %d: %s", r.status, r.body)
	}
}

// sbClock is a settable clock.
type sbClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *sbClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *sbClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

const sbKey = "service-role-key"

func sbStart(t *testing.T, opts StorageOptions) (*StorageServer, string) {
	t.Helper()
	s := NewStorageServer(opts)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { _ = s.Close() })
	return s, srv.URL
}

// sbDo sends a request; key "" sends no auth headers.
func sbDo(t *testing.T, method, u, key string, h map[string]string, body []byte) sbResp {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("apikey", key)
	}
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return sbResp{resp.StatusCode, resp.Header, b}
}

func sbJSONBody(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

var sbJSONHdr = map[string]string{"Content-Type": "application/json"}

func TestStorageTwinObjectsBothPrefixes(t *testing.T) {
	for _, p := range []string{"", "/storage/v1"} {
		t.Run("prefix="+p, func(t *testing.T) {
			_, base := sbStart(t, StorageOptions{APIKey: sbKey})
			base += p
			sbDo(t, "POST", base+"/bucket", sbKey, sbJSONHdr, sbJSONBody(map[string]any{"name": "docs"})).wantOK(t)
			sbDo(t, "POST", base+"/bucket", sbKey, sbJSONHdr, sbJSONBody(map[string]any{"name": "docs"})).
				wantErr(t, 400, "409", "ResourceAlreadyExists")
			if b := sbDo(t, "GET", base+"/bucket/docs", sbKey, nil, nil).json(t); b["id"] != "docs" || b["public"] != false {
				t.Fatalf("bucket: %v", b)
			}
			sbDo(t, "GET", base+"/bucket/nope", sbKey, nil, nil).wantErr(t, 400, "404", "NoSuchBucket")

			meta := base64.StdEncoding.EncodeToString([]byte(`{"sha256":"abc"}`))
			hdr := map[string]string{"Content-Type": "application/pdf", "x-metadata": meta}
			up := sbDo(t, "POST", base+"/object/docs/raw/u1/d1", sbKey, hdr, []byte("%PDF v1"))
			up.wantOK(t)
			if m := up.json(t); m["Key"] != "docs/raw/u1/d1" || m["Id"] == "" {
				t.Fatalf("upload answer: %v", m)
			}
			// Duplicate without x-upsert: the 409 is in the body, HTTP 400.
			dup := sbDo(t, "POST", base+"/object/docs/raw/u1/d1", sbKey, hdr, []byte("%PDF v2"))
			dup.wantErr(t, 400, "409", "KeyAlreadyExists")
			if m := dup.json(t); m["error"] != "Duplicate" || m["message"] != "The resource already exists" {
				t.Fatalf("duplicate body: %v", m)
			}
			hdr["x-upsert"] = "true"
			sbDo(t, "POST", base+"/object/docs/raw/u1/d1", sbKey, hdr, []byte("%PDF v2")).wantOK(t)
			sbDo(t, "PUT", base+"/object/docs/raw/u1/d1", sbKey, map[string]string{"Content-Type": "application/pdf"}, []byte("%PDF v3")).wantOK(t)

			for _, path := range []string{"/object/docs/raw/u1/d1", "/object/authenticated/docs/raw/u1/d1"} {
				g := sbDo(t, "GET", base+path+"?download=report.pdf", sbKey, nil, nil)
				if g.status != 200 || string(g.body) != "%PDF v3" || g.header.Get("Content-Type") != "application/pdf" ||
					g.header.Get("ETag") == "" || g.header.Get("Content-Length") != "7" ||
					!strings.Contains(g.header.Get("Content-Disposition"), "report.pdf") {
					t.Fatalf("GET %s: %d %q %v", path, g.status, g.body, g.header)
				}
			}
			if h := sbDo(t, "HEAD", base+"/object/authenticated/docs/raw/u1/d1", sbKey, nil, nil); h.status != 200 || h.header.Get("Content-Length") != "7" {
				t.Fatalf("HEAD: %d %v", h.status, h.header)
			}
			if r := sbDo(t, "GET", base+"/object/docs/raw/u1/d1", sbKey, map[string]string{"Range": "bytes=1-3"}, nil); r.status != 206 || string(r.body) != "PDF" {
				t.Fatalf("range: %d %q", r.status, r.body)
			}
			info := sbDo(t, "GET", base+"/object/info/docs/raw/u1/d1", sbKey, nil, nil)
			info.wantOK(t)
			im := info.json(t)
			if im["size"] != float64(7) || im["name"] != "raw/u1/d1" || im["bucket_id"] != "docs" || im["content_type"] != "application/pdf" {
				t.Fatalf("info: %v", im)
			}
			// The PUT sent no x-metadata: user metadata is replaced (null).
			if im["metadata"] != nil {
				t.Fatalf("info metadata after PUT without x-metadata: %v", im["metadata"])
			}
			sbDo(t, "GET", base+"/object/info/authenticated/docs/raw/u1/d1", sbKey, nil, nil).wantOK(t)

			sbDo(t, "GET", base+"/object/docs/raw/u1/missing", sbKey, nil, nil).wantErr(t, 400, "404", "NoSuchKey")
			sbDo(t, "GET", base+"/object/info/docs/raw/u1/missing", sbKey, nil, nil).wantErr(t, 400, "404", "NoSuchKey")
			sbDo(t, "GET", base+"/object/nobucket/raw/x", sbKey, nil, nil).wantErr(t, 400, "404", "NoSuchBucket")
			sbDo(t, "POST", base+"/object/nobucket/raw/x", sbKey, nil, []byte("x")).wantErr(t, 400, "404", "NoSuchBucket")

			if d := sbDo(t, "DELETE", base+"/object/docs/raw/u1/d1", sbKey, nil, nil).json(t); d["message"] != "Successfully deleted" {
				t.Fatalf("delete: %v", d)
			}
			sbDo(t, "DELETE", base+"/object/docs/raw/u1/d1", sbKey, nil, nil).wantErr(t, 400, "404", "NoSuchKey")

			// Unknown routes get Fastify's real 404.
			if r := sbDo(t, "GET", base+"/nothing/here", sbKey, nil, nil); r.status != 404 || r.json(t)["error"] != "Not Found" {
				t.Fatalf("unknown route: %d %s", r.status, r.body)
			}
		})
	}
}

func TestStorageTwinAuth(t *testing.T) {
	_, base := sbStart(t, StorageOptions{APIKey: sbKey, Buckets: []string{"docs"}})
	sbDo(t, "GET", base+"/bucket/docs", "", nil, nil).wantErr(t, 400, "403", "AccessDenied")
	sbDo(t, "GET", base+"/bucket/docs", "wrong", nil, nil).wantErr(t, 400, "403", "AccessDenied")
	sbDo(t, "GET", base+"/bucket/docs", "", map[string]string{"Authorization": "Bearer " + sbKey}, nil).wantOK(t)
	// The gateway also wants apikey.
	if r := sbDo(t, "GET", base+"/storage/v1/bucket/docs", "", map[string]string{"Authorization": "Bearer " + sbKey}, nil); r.status != 401 {
		t.Fatalf("gateway without apikey: %d %s", r.status, r.body)
	}
	if r := sbDo(t, "GET", base+"/storage/v1/bucket/docs", "", map[string]string{"Authorization": "Bearer " + sbKey, "apikey": "nope"}, nil); r.status != 401 {
		t.Fatalf("gateway with a wrong apikey: %d %s", r.status, r.body)
	}
	sbDo(t, "GET", base+"/storage/v1/bucket/docs", sbKey, nil, nil).wantOK(t)
	// No key configured: anything goes.
	_, open := sbStart(t, StorageOptions{Buckets: []string{"docs"}})
	sbDo(t, "GET", open+"/storage/v1/bucket/docs", "", nil, nil).wantOK(t)
}

func TestStorageTwinMultipartUpload(t *testing.T) {
	_, base := sbStart(t, StorageOptions{APIKey: sbKey, Buckets: []string{"docs"}})
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("cacheControl", "3600")
	_ = mw.WriteField("contentType", "text/markdown")
	_ = mw.WriteField("metadata", `{"sha256":"feed"}`)
	fw, _ := mw.CreateFormFile("", "doc.md")
	_, _ = fw.Write([]byte("# Title\n"))
	_ = mw.Close()
	hdr := map[string]string{"Content-Type": mw.FormDataContentType()}
	sbDo(t, "POST", base+"/object/docs/parsed/u/d.md", sbKey, hdr, buf.Bytes()).wantOK(t)
	im := sbDo(t, "GET", base+"/object/info/docs/parsed/u/d.md", sbKey, nil, nil).json(t)
	if im["content_type"] != "text/markdown" || im["cache_control"] != "max-age=3600" || im["size"] != float64(8) {
		t.Fatalf("info: %v", im)
	}
	if m, _ := im["metadata"].(map[string]any); m["sha256"] != "feed" {
		t.Fatalf("user metadata: %v", im["metadata"])
	}
	// A multipart body without a file part.
	buf.Reset()
	mw = multipart.NewWriter(&buf)
	_ = mw.WriteField("cacheControl", "60")
	_ = mw.Close()
	sbDo(t, "POST", base+"/object/docs/parsed/u/e.md", sbKey, map[string]string{"Content-Type": mw.FormDataContentType()}, buf.Bytes()).
		wantErr(t, 400, "400", "InvalidRequest")
}

func TestStorageTwinSizeLimits(t *testing.T) {
	_, base := sbStart(t, StorageOptions{APIKey: sbKey, MaxObjectBytes: 10, Buckets: []string{"docs"}})
	sbDo(t, "POST", base+"/object/docs/raw/a", sbKey, nil, []byte("0123456789")).wantOK(t)
	r := sbDo(t, "POST", base+"/object/docs/raw/b", sbKey, nil, []byte("0123456789A"))
	r.wantErr(t, 400, "413", "EntityTooLarge")
	if m := r.json(t); m["error"] != "Payload too large" || m["message"] != "The object exceeded the maximum allowed size" {
		t.Fatalf("413 body: %v", m)
	}
	// A bucket limit lower than the global one.
	sbDo(t, "POST", base+"/bucket", sbKey, sbJSONHdr, sbJSONBody(map[string]any{"name": "small", "file_size_limit": "5B"})).wantOK(t)
	sbDo(t, "POST", base+"/object/small/raw/c", sbKey, nil, []byte("123456")).wantErr(t, 400, "413", "EntityTooLarge")
	sbDo(t, "POST", base+"/object/small/raw/c", sbKey, nil, []byte("12345")).wantOK(t)
	// Allowed MIME types.
	sbDo(t, "POST", base+"/bucket", sbKey, sbJSONHdr, sbJSONBody(map[string]any{"name": "pdfs", "allowed_mime_types": []string{"application/pdf"}})).wantOK(t)
	sbDo(t, "POST", base+"/object/pdfs/raw/c", sbKey, map[string]string{"Content-Type": "image/png"}, []byte("x")).wantErr(t, 400, "415", "InvalidMimeType")
}

func TestStorageTwinSignedURLs(t *testing.T) {
	clk := &sbClock{t: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)}
	twin, base := sbStart(t, StorageOptions{APIKey: sbKey, Buckets: []string{"docs"}, Now: clk.Now, UploadURLExpiry: time.Hour})
	gw := base + "/storage/v1"
	sbDo(t, "POST", gw+"/object/docs/raw/u/d", sbKey, nil, []byte("secret bytes")).wantOK(t)

	sign := sbDo(t, "POST", gw+"/object/sign/docs/raw/u/d", sbKey, sbJSONHdr, sbJSONBody(map[string]any{"expiresIn": 60}))
	sign.wantOK(t)
	rel, _ := sign.json(t)["signedURL"].(string)
	if !strings.HasPrefix(rel, "/object/sign/docs/raw/u/d?token=") {
		t.Fatalf("signedURL %q is not relative to the storage base", rel)
	}
	g := sbDo(t, "GET", gw+rel, "", nil, nil)
	if g.status != 200 || string(g.body) != "secret bytes" || g.header.Get("Expires") == "" {
		t.Fatalf("signed GET: %d %q %v", g.status, g.body, g.header)
	}
	sbDo(t, "GET", base+rel, "", nil, nil).wantOK(t) // bare server, same token
	sbDo(t, "GET", gw+strings.Replace(rel, "raw/u/d", "raw/u/e", 1), "", nil, nil).wantErr(t, 400, "400", "InvalidSignature")
	sbDo(t, "GET", gw+rel[:len(rel)-4]+"AAAA", "", nil, nil).wantErr(t, 400, "400", "InvalidJWT")
	sbDo(t, "GET", gw+"/object/sign/docs/raw/u/d", "", nil, nil).wantErr(t, 400, "400", "InvalidRequest")
	sbDo(t, "POST", gw+"/object/sign/docs/raw/u/missing", sbKey, sbJSONHdr, sbJSONBody(map[string]any{"expiresIn": 60})).wantErr(t, 400, "404", "NoSuchKey")
	sbDo(t, "POST", gw+"/object/sign/docs/raw/u/d", sbKey, sbJSONHdr, sbJSONBody(map[string]any{"expiresIn": 0})).wantErr(t, 400, "400", "InvalidRequest")
	clk.Add(61 * time.Second)
	sbDo(t, "GET", gw+rel, "", nil, nil).wantErr(t, 400, "400", "ExpiredToken")

	// Batch signing.
	many := sbDo(t, "POST", gw+"/object/sign/docs", sbKey, sbJSONHdr, sbJSONBody(map[string]any{"expiresIn": 60, "paths": []string{"raw/u/d", "raw/u/nope"}})).list(t)
	if len(many) != 2 || many[0]["error"] != nil || many[1]["signedURL"] != nil || many[1]["error"] == nil {
		t.Fatalf("batch sign: %v", many)
	}
	sbDo(t, "GET", gw+many[0]["signedURL"].(string), "", nil, nil).wantOK(t)

	// Upload URLs: upsert is baked in when the URL is made.
	sbDo(t, "POST", gw+"/object/upload/sign/docs/raw/u/d", sbKey, nil, nil).wantErr(t, 400, "409", "KeyAlreadyExists")
	mk := sbDo(t, "POST", gw+"/object/upload/sign/docs/raw/u/new", sbKey, nil, nil)
	mk.wantOK(t)
	um := mk.json(t)
	uurl, _ := um["url"].(string)
	if !strings.HasPrefix(uurl, "/object/upload/sign/docs/raw/u/new?token=") || um["token"] == "" {
		t.Fatalf("upload sign: %v", um)
	}
	if r := sbDo(t, "PUT", gw+uurl, "", map[string]string{"Content-Type": "application/octet-stream"}, []byte("first")); r.status != 200 || r.json(t)["Key"] != "docs/raw/u/new" {
		t.Fatalf("signed upload: %d %s", r.status, r.body)
	}
	// Not an upsert URL: the second upload collides.
	sbDo(t, "PUT", gw+uurl, "", nil, []byte("second")).wantErr(t, 400, "409", "KeyAlreadyExists")
	up := sbDo(t, "POST", gw+"/object/upload/sign/docs/raw/u/new", sbKey, map[string]string{"x-upsert": "true"}, nil)
	up.wantOK(t)
	uurl2 := up.json(t)["url"].(string)
	sbDo(t, "PUT", gw+uurl2, "", nil, []byte("second")).wantOK(t)
	if b, _ := twin.Object("docs", "raw/u/new"); string(b) != "second" {
		t.Fatalf("after the upsert upload: %q", b)
	}
	// Multipart through a signed URL, then expiry (server-wide, 1 h here).
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("", "x")
	_, _ = fw.Write([]byte("third"))
	_ = mw.Close()
	sbDo(t, "PUT", gw+uurl2, "", map[string]string{"Content-Type": mw.FormDataContentType()}, buf.Bytes()).wantOK(t)
	clk.Add(time.Hour + time.Second)
	sbDo(t, "PUT", gw+uurl2, "", nil, []byte("late")).wantErr(t, 400, "400", "ExpiredToken")
	if b, _ := twin.Object("docs", "raw/u/new"); string(b) != "third" {
		t.Fatalf("after the expired upload: %q", b)
	}
}

func TestStorageTwinListAndBulkDelete(t *testing.T) {
	clk := &sbClock{t: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)}
	_, base := sbStart(t, StorageOptions{APIKey: sbKey, Buckets: []string{"docs"}, Now: clk.Now})
	for _, n := range []string{"a/y", "a/x", "a/sub/z", "b/w"} {
		clk.Add(time.Second)
		sbDo(t, "POST", base+"/object/docs/"+n, sbKey, nil, []byte(n)).wantOK(t)
	}
	names := func(rows []map[string]any) string {
		var s []string
		for _, r := range rows {
			s = append(s, fmt.Sprint(r["name"]))
		}
		return strings.Join(s, ",")
	}
	list := func(body map[string]any) []map[string]any {
		r := sbDo(t, "POST", base+"/object/list/docs", sbKey, sbJSONHdr, sbJSONBody(body))
		r.wantOK(t)
		return r.list(t)
	}
	rows := list(map[string]any{"prefix": "a"})
	if names(rows) != "sub,x,y" {
		t.Fatalf("list a: %s", names(rows))
	}
	if rows[0]["id"] != nil || rows[0]["metadata"] != nil {
		t.Fatalf("folder row: %v", rows[0])
	}
	if md, _ := rows[1]["metadata"].(map[string]any); md["size"] != float64(3) || md["mimetype"] == nil {
		t.Fatalf("file row: %v", rows[1])
	}
	if got := names(list(map[string]any{"prefix": "", "limit": 1, "offset": 1})); got != "b" {
		t.Fatalf("list root limit/offset: %s", got)
	}
	if got := names(list(map[string]any{"prefix": "a/", "search": "x"})); got != "x" {
		t.Fatalf("search: %s", got)
	}
	if got := names(list(map[string]any{"prefix": "a", "sortBy": map[string]any{"column": "created_at", "order": "desc"}})); got != "x,y,sub" {
		t.Fatalf("sort by created_at desc: %s", got)
	}
	sbDo(t, "POST", base+"/object/list/docs", sbKey, sbJSONHdr, sbJSONBody(map[string]any{"limit": 5})).wantErr(t, 400, "400", "InvalidRequest")
	sbDo(t, "POST", base+"/object/list/docs", sbKey, sbJSONHdr, sbJSONBody(map[string]any{"prefix": "", "sortBy": map[string]any{"column": "size"}})).wantErr(t, 400, "400", "InvalidRequest")

	// Bulk delete returns the rows it deleted; missing names are skipped.
	del := sbDo(t, "DELETE", base+"/object/docs", sbKey, sbJSONHdr, sbJSONBody(map[string]any{"prefixes": []string{"a/x", "a/nope"}}))
	del.wantOK(t)
	if rows := del.list(t); len(rows) != 1 || rows[0]["name"] != "a/x" || rows[0]["bucket_id"] != "docs" {
		t.Fatalf("bulk delete: %s", del.body)
	}
	sbDo(t, "DELETE", base+"/object/docs", sbKey, sbJSONHdr, sbJSONBody(map[string]any{"prefixes": []string{}})).wantErr(t, 400, "400", "InvalidRequest")
	sbDo(t, "DELETE", base+"/bucket/docs", sbKey, nil, nil).wantErr(t, 400, "409", "InvalidRequest")
	sbDo(t, "POST", base+"/bucket/docs/empty", sbKey, nil, nil).wantOK(t)
	sbDo(t, "DELETE", base+"/bucket/docs", sbKey, nil, nil).wantOK(t)
}

func TestStorageTwinPublicBucket(t *testing.T) {
	_, base := sbStart(t, StorageOptions{APIKey: sbKey, Buckets: []string{"private"}})
	sbDo(t, "POST", base+"/bucket", sbKey, sbJSONHdr, sbJSONBody(map[string]any{"name": "pub", "public": true})).wantOK(t)
	sbDo(t, "POST", base+"/object/pub/img/a", sbKey, nil, []byte("public")).wantOK(t)
	sbDo(t, "POST", base+"/object/private/img/a", sbKey, nil, []byte("private")).wantOK(t)
	if r := sbDo(t, "GET", base+"/storage/v1/object/public/pub/img/a", "", nil, nil); r.status != 200 || string(r.body) != "public" {
		t.Fatalf("public download: %d %q", r.status, r.body)
	}
	sbDo(t, "GET", base+"/object/info/public/pub/img/a", "", nil, nil).wantOK(t)
	sbDo(t, "GET", base+"/object/public/private/img/a", "", nil, nil).wantErr(t, 400, "404", "NoSuchBucket")
}

func TestStorageTwinFaultsDeterministic(t *testing.T) {
	fixed := func() time.Time { return time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC) }
	run := func() (statuses []int, ids []string) {
		_, base := sbStart(t, StorageOptions{Seed: 42, ErrorRates: map[int]float64{500: 0.3, 503: 0.1}, Buckets: []string{"docs"}, Now: fixed})
		for i := range 40 {
			r := sbDo(t, "POST", base+fmt.Sprintf("/object/docs/raw/%d", i), sbKey, map[string]string{"x-upsert": "true"}, []byte("x"))
			statuses = append(statuses, r.status)
			switch r.status {
			case 200:
				ids = append(ids, r.json(t)["Id"].(string))
			case 500:
				r.wantErr(t, 500, "500", "InternalError")
			default:
				r.wantErr(t, 400, "503", "LockTimeout")
			}
		}
		return
	}
	s1, id1 := run()
	s2, id2 := run()
	if fmt.Sprint(s1) != fmt.Sprint(s2) || fmt.Sprint(id1) != fmt.Sprint(id2) {
		t.Fatalf("not deterministic:\n%v\n%v", s1, s2)
	}
	n500 := strings.Count(fmt.Sprint(s1), "500")
	if n500 == 0 || n500 == len(s1) || len(id1) == 0 {
		t.Fatalf("implausible fault mix: %v", s1)
	}
}

func TestStorageTwinStats(t *testing.T) {
	twin, base := sbStart(t, StorageOptions{Buckets: []string{"docs"}})
	sbDo(t, "POST", base+"/object/docs/raw/a", "", nil, []byte("x")).wantOK(t)
	sbDo(t, "GET", base+"/object/docs/raw/a", "", nil, nil).wantOK(t)
	sbDo(t, "GET", base+"/object/docs/raw/b", "", nil, nil).wantErr(t, 400, "404", "NoSuchKey")
	st := twin.Stats()
	if st.Requests != 3 || st.Uploads != 1 || st.Downloads != 1 || st.Status[200] != 2 || st.Status[400] != 1 {
		t.Fatalf("stats: %+v", st)
	}
}
