package parse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/klippa-app/go-pdfium"
	pdfiumerrors "github.com/klippa-app/go-pdfium/errors"
	"github.com/klippa-app/go-pdfium/references"
	"github.com/klippa-app/go-pdfium/requests"
	"github.com/klippa-app/go-pdfium/webassembly"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"

	"github.com/docpipe/docpipe/internal/fault"
)

const (
	// A pdfium instance keeps its WebAssembly memory at its high-water mark,
	// so an instance is replaced by a fresh one after a large document, after
	// it has processed a lot of input overall, or after anything went wrong
	// in it.
	recycleDocBytes   = 32 << 20
	recycleTotalBytes = 512 << 20

	// A document gets extra pool instances (when Workers > 1 and they are
	// idle) only if it has at least this many pages per instance.
	pagesPerExtraWorker = 16
)

// pdfEngine is the lazily created pdfium pool shared by all parses.
type pdfEngine struct {
	pool  pdfium.Pool
	cache wazero.CompilationCache // nil without a cache dir

	// tokens bounds the instances handed out to Options.Workers, so that
	// borrowing from the pool never blocks once a token is held, and extra
	// instances for parallel pages can be taken without waiting.
	tokens chan struct{}

	mu    sync.Mutex
	usage map[any]int64 // input bytes processed, per live worker
}

// engine returns the pdfium pool, creating it on first use. A failed start is
// not remembered, so a later PDF tries again.
func (l *Local) engine() (*pdfEngine, error) {
	l.initMu.Lock()
	defer l.initMu.Unlock()
	if l.eng != nil {
		return l.eng, nil
	}
	eng, err := newPDFEngine(l.opts)
	if err != nil {
		return nil, &fault.Error{Kind: fault.Transient, Code: CodePDFEngine,
			Message: "the PDF engine could not be started", Err: err}
	}
	l.eng = eng
	return eng, nil
}

func newPDFEngine(opts Options) (eng *pdfEngine, err error) {
	defer func() {
		if r := recover(); r != nil {
			eng, err = nil, fmt.Errorf("panic while starting pdfium: %v", r)
		}
	}()
	rc := wazero.NewRuntimeConfig().
		WithCoreFeatures(api.CoreFeaturesV2 | experimental.CoreFeaturesExceptionHandling)
	var cache wazero.CompilationCache
	if opts.CacheDir != "" {
		// The cache only makes start-up faster (about 4 s → 0.2 s); if the
		// directory is unusable, run without it rather than fail PDFs.
		if os.MkdirAll(opts.CacheDir, 0o755) == nil {
			if c, err := wazero.NewCompilationCacheWithDir(opts.CacheDir); err == nil {
				cache = c
				rc = rc.WithCompilationCache(c)
			}
		}
	}
	pool, err := webassembly.Init(webassembly.Config{
		// Instances are created with contexts derived from this one, which
		// is how wazero picks up the linear memory allocator.
		Context:       experimental.WithMemoryAllocator(context.Background(), linearMemoryAllocator()),
		MinIdle:       1,
		MaxIdle:       opts.Workers,
		MaxTotal:      opts.Workers,
		RuntimeConfig: rc,
		// Documents are passed in memory: give pdfium no host file system.
		FSConfig:     wazero.NewFSConfig(),
		Stdout:       io.Discard,
		Stderr:       io.Discard,
		ReuseWorkers: true,
	})
	if err != nil {
		if cache != nil {
			_ = cache.Close(context.Background())
		}
		return nil, err
	}
	return &pdfEngine{
		pool:   pool,
		cache:  cache,
		tokens: make(chan struct{}, opts.Workers),
		usage:  map[any]int64{},
	}, nil
}

func (e *pdfEngine) close() error {
	err := e.pool.Close()
	if e.cache != nil {
		if cerr := e.cache.Close(context.Background()); err == nil {
			err = cerr
		}
	}
	return err
}

// acquire waits for an instance.
func (e *pdfEngine) acquire(ctx context.Context) (*pdfWorker, error) {
	select {
	case e.tokens <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return e.borrow(ctx)
}

// tryAcquire returns an instance only if one is free now.
func (e *pdfEngine) tryAcquire(ctx context.Context) *pdfWorker {
	select {
	case e.tokens <- struct{}{}:
	default:
		return nil
	}
	w, err := e.borrow(ctx)
	if err != nil {
		return nil
	}
	return w
}

func (e *pdfEngine) borrow(ctx context.Context) (w *pdfWorker, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic while getting a pdfium instance: %v", r)
		}
		if err != nil {
			<-e.tokens
		}
	}()
	inst, err := e.pool.GetInstanceWithContext(ctx)
	if err != nil {
		return nil, err
	}
	return &pdfWorker{inst: inst}, nil
}

// release returns the instance to the pool, or replaces it (see
// recycleDocBytes) when it is tainted or has grown.
func (e *pdfEngine) release(w *pdfWorker, docBytes int) {
	defer func() { <-e.tokens }()
	defer func() { _ = recover() }()
	recycle := w.tainted || docBytes > recycleDocBytes
	if !recycle && w.docOpen {
		if _, err := w.inst.FPDF_CloseDocument(&requests.FPDF_CloseDocument{Document: w.doc}); err != nil {
			recycle = true
		}
	}
	key := w.inst.GetImplementation()
	e.mu.Lock()
	total := e.usage[key] + int64(docBytes)
	if recycle || total > recycleTotalBytes {
		recycle = true
		delete(e.usage, key)
	} else {
		e.usage[key] = total
	}
	e.mu.Unlock()
	if recycle {
		_ = w.inst.Kill() // the pool creates a fresh instance on demand
	} else {
		_ = w.inst.Close() // back to the pool (ReuseWorkers)
	}
}

// pdfWorker is one borrowed pdfium instance with the document open in it.
type pdfWorker struct {
	inst    pdfium.Pdfium
	doc     references.FPDF_DOCUMENT
	docOpen bool
	tainted bool // something failed inside; do not reuse the instance
}

func (w *pdfWorker) open(data []byte) (pages int, err error) {
	d, err := w.inst.OpenDocument(&requests.OpenDocument{File: &data})
	if err != nil {
		return 0, err
	}
	w.doc, w.docOpen = d.Document, true
	pc, err := w.inst.FPDF_GetPageCount(&requests.FPDF_GetPageCount{Document: w.doc})
	if err != nil {
		return 0, err
	}
	return pc.PageCount, nil
}

// page returns the text of page i (0-based). A page pdfium refuses to load
// counts as empty; any other failure is an error.
func (w *pdfWorker) page(i int) (string, error) {
	pg, err := w.inst.FPDF_LoadPage(&requests.FPDF_LoadPage{Document: w.doc, Index: i})
	if err != nil {
		if errors.Is(err, pdfiumerrors.ErrPage) {
			return "", nil
		}
		return "", err
	}
	defer func() {
		if _, err := w.inst.FPDF_ClosePage(&requests.FPDF_ClosePage{Page: pg.Page}); err != nil {
			w.tainted = true
		}
	}()
	tp, err := w.inst.FPDFText_LoadPage(&requests.FPDFText_LoadPage{Page: requests.Page{ByReference: &pg.Page}})
	if err != nil {
		return "", err
	}
	defer func() {
		if _, err := w.inst.FPDFText_ClosePage(&requests.FPDFText_ClosePage{TextPage: tp.TextPage}); err != nil {
			w.tainted = true
		}
	}()
	cc, err := w.inst.FPDFText_CountChars(&requests.FPDFText_CountChars{TextPage: tp.TextPage})
	if err != nil {
		return "", err
	}
	if cc.Count <= 0 {
		return "", nil
	}
	// FPDFText_GetText keeps pdfium's reading order and the spaces and line
	// breaks it generates from glyph positions.
	t, err := w.inst.FPDFText_GetText(&requests.FPDFText_GetText{TextPage: tp.TextPage, Count: cc.Count})
	if err != nil {
		return "", err
	}
	return t.Text, nil
}

func (l *Local) parsePDF(ctx context.Context, data []byte) (string, int, error) {
	l.life.RLock()
	defer l.life.RUnlock()
	if l.closed {
		return "", 0, &fault.Error{Kind: fault.Transient, Code: CodeParserClosed, Message: "the parser has been shut down"}
	}
	eng, err := l.engine()
	if err != nil {
		return "", 0, err
	}
	return eng.extract(ctx, data, l.opts)
}

// extract opens the document in one instance, then extracts pages, in
// parallel over extra idle instances when the document is large enough.
// Pages are claimed in increasing order and stored by index, so the output
// does not depend on the number of instances or on scheduling.
func (e *pdfEngine) extract(ctx context.Context, data []byte, opts Options) (string, int, error) {
	w, err := e.acquire(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return "", 0, fault.Classify(ctx.Err())
		}
		return "", 0, &fault.Error{Kind: fault.Transient, Code: CodePDFEngine,
			Message: "no PDF engine instance is available", Err: err}
	}
	defer func() { e.release(w, len(data)) }()

	n, err := w.open(data)
	if err != nil {
		return "", 0, openError(w, err)
	}
	if n > opts.MaxPages {
		return "", n, permanent(CodePDFTooManyPages, nil,
			"the PDF has %d pages, more than the limit of %d", n, opts.MaxPages)
	}
	if n <= 0 {
		return "", 0, permanent(CodePDFCorrupt, nil, "the PDF is damaged: it contains no pages")
	}

	texts := make([]string, n)
	errs := make([]error, n)
	var next atomic.Int64
	var stop atomic.Bool
	run := func(w *pdfWorker) {
		i := -1
		defer func() {
			if r := recover(); r != nil {
				w.tainted = true
				stop.Store(true)
				if i >= 0 && i < n {
					errs[i] = fmt.Errorf("panic: %v", r)
				}
			}
		}()
		for !stop.Load() {
			if ctx.Err() != nil {
				stop.Store(true)
				return
			}
			i = int(next.Add(1) - 1)
			if i >= n {
				return
			}
			t, err := w.page(i)
			if err != nil {
				errs[i] = err
				w.tainted = true
				stop.Store(true)
				return
			}
			texts[i] = cleanPDFPage(t)
		}
	}

	var wg sync.WaitGroup
	for k := 1; k < opts.Workers && k*pagesPerExtraWorker < n; k++ {
		hw := e.tryAcquire(ctx)
		if hw == nil {
			break
		}
		wg.Go(func() {
			defer e.release(hw, len(data))
			defer func() {
				if recover() != nil {
					hw.tainted = true
				}
			}()
			if _, err := hw.open(data); err != nil {
				// The first instance opened it, so this should not happen;
				// the first instance still does all the remaining pages.
				hw.tainted = true
				return
			}
			run(hw)
		})
	}
	run(w)
	wg.Wait()

	if err := ctx.Err(); err != nil {
		return "", 0, fault.Classify(err)
	}
	for i, err := range errs {
		if err != nil {
			return "", 0, permanent(CodePDFCorrupt, err, "the PDF is damaged: page %d could not be read", i+1)
		}
	}

	var b strings.Builder
	withText := 0
	for i, t := range texts {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(pageMarker(i + 1))
		b.WriteString("\n")
		if t != "" {
			withText++
			b.WriteString("\n")
			b.WriteString(t)
			b.WriteString("\n")
		}
	}
	if withText == 0 {
		return "", n, pdfNoTextError()
	}
	return b.String(), n, nil
}

func openError(w *pdfWorker, err error) error {
	switch {
	case errors.Is(err, pdfiumerrors.ErrPassword):
		return permanent(CodePDFEncrypted, err,
			"the PDF is password-protected; remove the password and upload it again")
	case errors.Is(err, pdfiumerrors.ErrSecurity):
		return permanent(CodePDFEncrypted, err,
			"the PDF is encrypted with a method that cannot be opened; save an unprotected copy and upload it again")
	case errors.Is(err, pdfiumerrors.ErrFormat), errors.Is(err, pdfiumerrors.ErrFile),
		errors.Is(err, pdfiumerrors.ErrUnknown), errors.Is(err, pdfiumerrors.ErrPage):
		return permanent(CodePDFCorrupt, err, "the PDF is damaged and could not be opened")
	}
	w.tainted = true
	return permanent(CodePDFCorrupt, err, "the PDF could not be opened; it may be damaged or too large")
}
