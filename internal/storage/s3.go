package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// S3Options configure an S3-compatible store.
type S3Options struct {
	// Endpoint is the S3 API base URL: http://127.0.0.1:9000 (MinIO),
	// https://<ref>.supabase.co/storage/v1/s3 (Supabase), … "" = AWS itself.
	Endpoint string
	// Region signs requests; "" = us-east-1 (MinIO and gofakes3 accept any;
	// Supabase wants the project's region).
	Region string
	// Bucket holds the objects; it must exist (see EnsureBucket).
	Bucket string
	// Static credentials (S3 access keys; Supabase: Storage → S3 access keys).
	AccessKeyID, SecretAccessKey, SessionToken string
	// VirtualHostedStyle addresses buckets as <bucket>.<host> instead of the
	// path style <host>/<bucket> used by default (MinIO, Supabase, gofakes3).
	VirtualHostedStyle bool
	// HTTPClient sends the requests (nil = the SDK's default).
	HTTPClient *http.Client
}

// S3 is a Store on an S3-compatible service (aws-sdk-go-v2). Put spools the
// body (memory up to 8 MiB, then a temporary file) while hashing it, then
// uploads it with its length and the SHA256 as user metadata
// (x-amz-meta-sha256, next to x-amz-meta-md5), which Stat returns. Stat
// returns it only while the object's ETag is still that MD5, so an object
// replaced some other way (a signed PUT on a service that keeps old
// metadata, like gofakes3) never reports a stale checksum; on SSE-KMS
// buckets, whose ETags are not MD5s, Stat's SHA256 is therefore empty.
// Signed URLs are SigV4 presigned.
type S3 struct {
	client  *s3.Client
	presign *s3.PresignClient
	bucket  string
}

// User-metadata keys of the hex SHA256 and MD5 (x-amz-meta-sha256, -md5).
const (
	s3ShaMeta = "sha256"
	s3MD5Meta = "md5"
)

// NewS3 returns the store; it makes no request.
func NewS3(o S3Options) (*S3, error) {
	if o.Bucket == "" {
		return nil, errors.New("s3 storage: bucket is required")
	}
	if o.AccessKeyID == "" || o.SecretAccessKey == "" {
		return nil, errors.New("s3 storage: access key id and secret access key are required")
	}
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	opts := s3.Options{
		Region:       o.Region,
		Credentials:  credentials.NewStaticCredentialsProvider(o.AccessKeyID, o.SecretAccessKey, o.SessionToken),
		UsePathStyle: !o.VirtualHostedStyle,
		// The SDK's default CRC32 checksums (and the empty-body checksum it
		// would bake into presigned PUT URLs) are not understood by every
		// S3-compatible service; SigV4's signed payload hash already
		// protects uploads.
		RequestChecksumCalculation:                aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation:                aws.ResponseChecksumValidationWhenRequired,
		DisableLogOutputChecksumValidationSkipped: true,
	}
	if o.Endpoint != "" {
		opts.BaseEndpoint = aws.String(strings.TrimRight(o.Endpoint, "/"))
	}
	if o.HTTPClient != nil {
		opts.HTTPClient = o.HTTPClient
	}
	c := s3.New(opts)
	return &S3{client: c, presign: s3.NewPresignClient(c), bucket: o.Bucket}, nil
}

// EnsureBucket creates the bucket if it does not exist.
func (s *S3) EnsureBucket(ctx context.Context) error {
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.bucket})
	if err == nil {
		return nil
	}
	if s3Status(err) != http.StatusNotFound {
		return s.fail("head bucket", s.bucket, err)
	}
	in := &s3.CreateBucketInput{Bucket: &s.bucket}
	if r := s.client.Options().Region; r != "us-east-1" {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraint(r)}
	}
	if _, err := s.client.CreateBucket(ctx, in); err != nil {
		var owned *types.BucketAlreadyOwnedByYou
		if errors.As(err, &owned) {
			return nil
		}
		return s.fail("create bucket", s.bucket, err)
	}
	return nil
}

// Put implements Store.
func (s *S3) Put(ctx context.Context, key string, r io.Reader) (Object, error) {
	if err := ValidKey(key); err != nil {
		return Object{}, err
	}
	sp, err := spool(ctx, r)
	if err != nil {
		return Object{}, fmt.Errorf("s3 put %s: read body: %w", key, err)
	}
	defer sp.Close()
	_, err = s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        &s.bucket,
		Key:           &key,
		Body:          sp.body(),
		ContentLength: aws.Int64(sp.size),
		ContentType:   aws.String("application/octet-stream"),
		Metadata:      map[string]string{s3ShaMeta: sp.sha256, s3MD5Meta: sp.md5},
	})
	if err != nil {
		return Object{}, s.fail("put", key, err)
	}
	return Object{Key: key, Size: sp.size, SHA256: sp.sha256}, nil
}

// Get implements Store.
func (s *S3) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := ValidKey(key); err != nil {
		return nil, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return nil, s.fail("get", key, err)
	}
	return out.Body, nil
}

// Stat implements Store; SHA256 is empty for objects not written by Put.
func (s *S3) Stat(ctx context.Context, key string) (Object, error) {
	if err := ValidKey(key); err != nil {
		return Object{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return Object{}, s.fail("stat", key, err)
	}
	obj := Object{Key: key, Size: aws.ToInt64(out.ContentLength)}
	if sum := out.Metadata[s3ShaMeta]; sum != "" && strings.Trim(aws.ToString(out.ETag), `"`) == out.Metadata[s3MD5Meta] {
		obj.SHA256 = sum
	}
	return obj, nil
}

// Delete implements Store.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := ValidKey(key); err != nil {
		return err
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		if err := s.fail("delete", key, err); !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	return nil
}

// SignedGetURL implements Signer (SigV4 query presigning).
func (s *S3) SignedGetURL(ctx context.Context, key string, ttl time.Duration) (string, error) {
	if err := ValidKey(key); err != nil {
		return "", err
	}
	if err := checkTTL(ttl); err != nil {
		return "", err
	}
	req, err := s.presign.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key}, s3.WithPresignExpires(ttl))
	if err != nil {
		return "", s.fail("sign get", key, err)
	}
	return req.URL, nil
}

// SignedPutURL implements Signer. The URL signs no headers besides Host, so
// any plain PUT of the bytes works; the object then has no sha256 metadata.
func (s *S3) SignedPutURL(ctx context.Context, key string, ttl time.Duration) (string, error) {
	if err := ValidKey(key); err != nil {
		return "", err
	}
	if err := checkTTL(ttl); err != nil {
		return "", err
	}
	req, err := s.presign.PresignPutObject(ctx, &s3.PutObjectInput{Bucket: &s.bucket, Key: &key}, s3.WithPresignExpires(ttl))
	if err != nil {
		return "", s.fail("sign put", key, err)
	}
	return req.URL, nil
}

// fail wraps an SDK error; a missing object (not a missing bucket) becomes
// ErrNotFound.
func (s *S3) fail(op, key string, err error) error {
	var ae smithy.APIError
	code := ""
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	if code != "NoSuchBucket" && (code == "NoSuchKey" || code == "NotFound" || s3Status(err) == http.StatusNotFound) {
		return fmt.Errorf("s3 %s %s: %w", op, key, ErrNotFound)
	}
	if code == "NoSuchBucket" {
		return fmt.Errorf("s3 %s %s: bucket %q does not exist: %w", op, key, s.bucket, err)
	}
	return fmt.Errorf("s3 %s %s: %w", op, key, err)
}

// s3Status is the HTTP status of a failed request (0 if none).
func s3Status(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}
