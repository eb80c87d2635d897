package storage_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/docpipe/docpipe/internal/mock"
	"github.com/docpipe/docpipe/internal/storage"
	"github.com/docpipe/docpipe/internal/storage/storagetest"
)

// clock is a wall clock that tests can move forward.
type clock struct{ off atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) Advance(d time.Duration) { c.off.Add(int64(d)) }

const testSecret = "contract-test-secret-0123456789"

func TestContractLocal(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storagetest.Fixture {
		l, err := storage.NewLocal(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		c := &clock{}
		// The API server's side: the handler knows only the secret (and clock).
		hs, err := storage.NewLocalSigner(storage.LocalSignerOptions{BaseURL: "http://unused", Secret: testSecret, Now: c.Now})
		if err != nil {
			t.Fatal(err)
		}
		mux := http.NewServeMux()
		mux.Handle(storage.BlobPath, hs.Handler(l))
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		sg, err := storage.NewLocalSigner(storage.LocalSignerOptions{BaseURL: srv.URL + "/", Secret: testSecret, Now: c.Now})
		if err != nil {
			t.Fatal(err)
		}
		return storagetest.Fixture{Store: storage.SignedLocal{Local: l, LocalSigner: sg}, Advance: c.Advance}
	})
}

func TestContractS3(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storagetest.Fixture {
		c := &clock{}
		creds := aws.Credentials{AccessKeyID: "AKIDCONTRACTTEST", SecretAccessKey: "contract-secret"}
		faker := gofakes3.New(s3mem.New())
		srv := httptest.NewServer(&sigV4Gate{next: faker.Server(), creds: creds, region: "eu-central-1", now: c.Now})
		t.Cleanup(srv.Close)
		s, err := storage.NewS3(storage.S3Options{Endpoint: srv.URL, Region: "eu-central-1", Bucket: "docpipe",
			AccessKeyID: creds.AccessKeyID, SecretAccessKey: creds.SecretAccessKey})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.EnsureBucket(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := s.EnsureBucket(context.Background()); err != nil { // idempotent
			t.Fatal(err)
		}
		return storagetest.Fixture{Store: s, Advance: c.Advance, StatSHA256: true}
	})
}

func TestContractSupabase(t *testing.T) {
	for _, prefix := range []string{"/storage/v1", ""} { // hosted gateway, bare storage-api
		name := "gateway"
		if prefix == "" {
			name = "bare"
		}
		t.Run(name, func(t *testing.T) {
			storagetest.Run(t, func(t *testing.T) storagetest.Fixture {
				c := &clock{}
				twin := mock.NewStorageServer(mock.StorageOptions{APIKey: "service-role-key", Buckets: []string{"docpipe"}, Now: c.Now, Seed: 1})
				t.Cleanup(func() { _ = twin.Close() })
				srv := httptest.NewServer(twin)
				t.Cleanup(srv.Close)
				s, err := storage.NewSupabase(storage.SupabaseOptions{URL: srv.URL + prefix, Key: "service-role-key", Bucket: "docpipe"})
				if err != nil {
					t.Fatal(err)
				}
				return storagetest.Fixture{Store: s, Advance: c.Advance, StatSHA256: true}
			})
		})
	}
}

// sigV4Gate checks query-presigned requests the way S3 does before passing
// them to gofakes3, which verifies no signatures: the URL must be unexpired
// and re-signing its method, path and X-Amz-* parameters with the known
// credentials must give exactly the same query. Header-signed SDK calls
// pass through unchecked.
type sigV4Gate struct {
	next   http.Handler
	creds  aws.Credentials
	region string
	now    func() time.Time
}

func (g *sigV4Gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("X-Amz-Signature") == "" && q.Get("X-Amz-Credential") == "" {
		g.next.ServeHTTP(w, r)
		return
	}
	deny := func(code, msg string) {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte("<Error><Code>" + code + "</Code><Message>" + msg + "</Message></Error>"))
	}
	date, err := time.Parse("20060102T150405Z", q.Get("X-Amz-Date"))
	exp, err2 := strconv.Atoi(q.Get("X-Amz-Expires"))
	if err != nil || err2 != nil {
		deny("AuthorizationQueryParametersError", "bad X-Amz-Date or X-Amz-Expires")
		return
	}
	if g.now().After(date.Add(time.Duration(exp) * time.Second)) {
		deny("AccessDenied", "Request has expired")
		return
	}
	rest := url.Values{}
	for k, v := range q {
		switch k {
		case "X-Amz-Signature", "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Security-Token":
		default:
			rest[k] = v
		}
	}
	u := url.URL{Scheme: "http", Host: r.Host, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: rest.Encode()}
	req, err := http.NewRequest(r.Method, u.String(), nil)
	if err != nil {
		deny("AccessDenied", err.Error())
		return
	}
	signed, _, err := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true }).
		PresignHTTP(r.Context(), g.creds, req, "UNSIGNED-PAYLOAD", "s3", g.region, date)
	if err != nil {
		deny("AccessDenied", err.Error())
		return
	}
	su, err := url.Parse(signed)
	if err != nil || !reflect.DeepEqual(su.Query(), q) {
		deny("SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.")
		return
	}
	g.next.ServeHTTP(w, r)
}
