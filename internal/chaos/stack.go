package chaos

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/docpipe/docpipe/internal/auth"
	"github.com/docpipe/docpipe/internal/db"
	"github.com/docpipe/docpipe/internal/mock"
)

// stack is one pass over the set: its own database, the three twins (in this
// process, so their counters can be read), one `docpipe serve` and the workers.
type stack struct {
	name  string
	dbURL string
	pool  *pgxpool.Pool
	lp    *mock.LlamaParseServer
	oai   *mock.OpenAIServer
	twins []*http.Server
	fleet *fleet
	base  string // the API's URL (fixed port: it is DOCPIPE_PUBLIC_URL)
	addr  string
	key   string // API key of user
	jwt   string // a Bearer JWT for user
	user  uuid.UUID
	rng   *rand.Rand // picks the worker to kill

	mu      sync.Mutex
	serve   *process
	workers []*process
}

type stackOptions struct {
	name    string // database name and log folder
	faults  bool   // twins inject errors and drop and repeat webhooks
	workers int
	seed    int64
}

// newStack creates the database, starts the twins, the API and the workers.
func (r *runner) newStack(ctx context.Context, so stackOptions) (*stack, error) {
	s := &stack{name: so.name, user: uuid.NewSHA1(uuid.NameSpaceOID, []byte("docpipe chaos user")),
		rng: rand.New(rand.NewPCG(uint64(so.seed), 0x6b696c6c))}
	adminURL := r.cluster.URL("postgres")
	if err := recreateDB(ctx, adminURL, so.name); err != nil {
		return nil, err
	}
	s.dbURL = r.cluster.URL(so.name)
	if err := db.Migrate(ctx, s.dbURL, nil); err != nil {
		return nil, err
	}
	pool, err := db.Open(ctx, s.dbURL, 8)
	if err != nil {
		return nil, err
	}
	s.pool = pool
	key, _, err := auth.NewKeys(pool).Create(ctx, auth.NewKey{Name: "chaos", UserID: &s.user})
	if err != nil {
		s.close()
		return nil, fmt.Errorf("create API key: %w", err)
	}
	s.key = key
	jwtSecret := secret("jwt-")
	s.jwt, err = jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{Subject: s.user.String(),
		Audience: jwt.ClaimStrings{"authenticated"}, ExpiresAt: jwt.NewNumericDate(time.Now().Add(24 * time.Hour))}).
		SignedString([]byte(jwtSecret))
	if err != nil {
		s.close()
		return nil, err
	}

	lpKey, oaiKey, blobKey := secret("llx-"), secret("sk-"), secret("service-")
	lpOpts := mock.LlamaParseOptions{APIKey: lpKey, Parser: r.parser, Delay: 300 * time.Millisecond, Seed: so.seed,
		WebhookRetryDelays: []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second}}
	oaiOpts := mock.OpenAIOptions{APIKey: oaiKey, Seed: so.seed}
	blobOpts := mock.StorageOptions{APIKey: blobKey, Seed: so.seed, Buckets: []string{"docpipe"}}
	if so.faults {
		// 20% 5xx and 10% 429 at the embeddings and storage twins; webhooks dropped or sent three times.
		lpOpts.WebhookDrop, lpOpts.WebhookDuplicate = 0.3, true
		oaiOpts.ErrorRates = map[int]float64{500: 0.1, 503: 0.1, 429: 0.1}
		blobOpts.ErrorRates = map[int]float64{500: 0.1, 503: 0.1, 429: 0.1}
	}
	s.lp, s.oai = mock.NewLlamaParseServer(lpOpts), mock.NewOpenAIServer(oaiOpts)
	var urls []string
	for _, h := range []http.Handler{s.lp, s.oai, mock.NewStorageServer(blobOpts)} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			s.close()
			return nil, err
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(l) }()
		s.twins = append(s.twins, srv)
		urls = append(urls, "http://"+l.Addr().String())
	}

	port, err := freePort()
	if err != nil {
		s.close()
		return nil, err
	}
	s.addr = "127.0.0.1:" + strconv.Itoa(port)
	s.base = "http://" + s.addr
	logDir := filepath.Join(r.workDir, so.name)
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		s.close()
		return nil, err
	}
	env := append(os.Environ(),
		"DATABASE_URL="+s.dbURL,
		"DOCPIPE_DATA_DIR="+filepath.Join(logDir, "data"),
		"DOCPIPE_PARSER=llamaparse", "LLAMAPARSE_BASE_URL="+urls[0], "LLAMA_CLOUD_API_KEY="+lpKey,
		"DOCPIPE_EMBED_PROVIDER=openai", "OPENAI_BASE_URL="+urls[1]+"/v1", "OPENAI_API_KEY="+oaiKey,
		"DOCPIPE_STORAGE=supabase", "SUPABASE_URL="+urls[2]+"/storage/v1", "SUPABASE_SERVICE_ROLE_KEY="+blobKey,
		"SUPABASE_STORAGE_BUCKET=docpipe",
		"DOCPIPE_PUBLIC_URL="+s.base, "DOCPIPE_WEBHOOK_SECRET="+secret("whsec-"), "DOCPIPE_JWT_SECRET="+jwtSecret,
		// The run measures the pipeline, not the per-user admission limits.
		"DOCPIPE_API_RATE_PER_MINUTE=0", "DOCPIPE_UPLOADS_PER_DAY=0", "DOCPIPE_MAX_ACTIVE_JOBS=0",
		"DOCPIPE_LOG_LEVEL=info",
	)
	s.fleet = newFleet(r.o.Bin, append(env, r.o.Env...), logDir)
	if err := s.startServe(ctx); err != nil {
		s.close()
		return nil, err
	}
	for range so.workers {
		if _, err := s.startWorker(); err != nil {
			s.close()
			return nil, err
		}
	}
	return s, nil
}

// startServe starts `docpipe serve` on the stack's port and waits until it answers.
func (s *stack) startServe(ctx context.Context) error {
	p, err := s.fleet.start("serve", "serve", "--addr", s.addr)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.serve = p
	s.mu.Unlock()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		resp, err := http.Get(s.base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if !p.alive() {
			return fmt.Errorf("docpipe serve exited at start:\n%s", tailFile(p.log, 20))
		}
		if !sleep(ctx, 100*time.Millisecond) {
			return ctx.Err()
		}
	}
	return fmt.Errorf("docpipe serve did not answer /healthz within 2 minutes:\n%s", tailFile(p.log, 20))
}

func (s *stack) startWorker() (*process, error) {
	p, err := s.fleet.start("worker", "worker")
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.workers = append(s.workers, p)
	s.mu.Unlock()
	return p, nil
}

// killWorker SIGKILLs a random live worker and starts a replacement.
func (s *stack) killWorker() (string, error) {
	s.mu.Lock()
	var live []int
	for i, w := range s.workers {
		if w.alive() {
			live = append(live, i)
		}
	}
	if len(live) == 0 {
		s.mu.Unlock()
		_, err := s.startWorker()
		return "", err
	}
	victim := s.workers[live[s.rng.IntN(len(live))]]
	s.mu.Unlock()
	victim.kill()
	_, err := s.startWorker()
	return victim.name, err
}

// killAPI SIGKILLs the API process and starts another on the same port.
func (s *stack) killAPI(ctx context.Context) error {
	s.mu.Lock()
	p := s.serve
	s.mu.Unlock()
	p.kill()
	return s.startServe(ctx)
}

func (s *stack) close() {
	if s.fleet != nil {
		s.fleet.stopAll(40 * time.Second)
	}
	for _, srv := range s.twins {
		_ = srv.Close()
	}
	if s.lp != nil {
		_ = s.lp.Close()
	}
	if s.pool != nil {
		s.pool.Close()
	}
}

// recreateDB drops (if it exists) and creates database name.
func recreateDB(ctx context.Context, adminURL, name string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect to the chaos cluster: %w", err)
	}
	defer conn.Close(ctx)
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

// freePort is a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func secret(prefix string) string {
	b := make([]byte, 16)
	_, _ = crand.Read(b)
	return prefix + hex.EncodeToString(b)
}
