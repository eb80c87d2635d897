package parse

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docpipe/docpipe/internal/fault"
)

var hmoPath = filepath.Join(corpusDir, "scan_classic_hmo.pdf")

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

var markerRE = regexp.MustCompile(`(?m)^<!-- page (\d+) -->$`)

// checkMarkers asserts pages markers 1..n, in order, each followed by a blank line.
func checkMarkers(t testing.TB, md string, n int) {
	t.Helper()
	m := markerRE.FindAllStringSubmatchIndex(md, -1)
	if len(m) != n {
		t.Fatalf("%d page markers, want %d", len(m), n)
	}
	if m[0][0] != 0 {
		t.Fatalf("markdown does not start with the first page marker: %q", md[:min(len(md), 40)])
	}
	for i, loc := range m {
		if got, _ := strconv.Atoi(md[loc[2]:loc[3]]); got != i+1 {
			t.Fatalf("marker %d says page %d", i+1, got)
		}
		if rest := md[loc[1]:]; rest != "\n" && !strings.HasPrefix(rest, "\n\n") {
			t.Fatalf("marker for page %d not followed by a blank line: %q", i+1, rest[:min(len(rest), 20)])
		}
	}
}

func TestPDFGenerated(t *testing.T) {
	data := buildPDF([]pdfPage{
		{"Hello PDF world", "second line"},
		nil, // blank page keeps its marker
		{"Deductible: $500", "<!-- page 1 -->"},
	}, false)
	doc, err := parse(t, data, "gen.pdf")
	if err != nil {
		t.Fatal(err)
	}
	want := "<!-- page 1 -->\n\nHello PDF world\nsecond line\n\n" +
		"<!-- page 2 -->\n\n" +
		"<!-- page 3 -->\n\nDeductible: $500\n\\<!-- page 1 -->\n"
	if doc.Markdown != want {
		t.Fatalf("got %q\nwant %q", doc.Markdown, want)
	}
	if doc.Pages != 3 || doc.MIME != MIMEPDF || doc.Parser != ParserPDF || doc.ParserVersion != "1" {
		t.Fatalf("metadata: %+v", doc)
	}
	checkMarkers(t, doc.Markdown, 3)
}

func TestPDFErrors(t *testing.T) {
	good := buildPDF([]pdfPage{{"Hello"}}, false)
	tests := []struct {
		name string
		data []byte
		code string
	}{
		{"encrypted", buildPDF([]pdfPage{{"secret"}}, true), CodePDFEncrypted},
		{"no text (scan-like)", buildPDF([]pdfPage{nil, nil}, false), CodePDFNoText},
		{"truncated", good[:len(good)/2], CodePDFCorrupt},
		{"header then garbage", append([]byte("%PDF-1.4\n"), make([]byte, 300)...), CodePDFCorrupt},
		{"no pages", buildPDF(nil, false), CodePDFCorrupt},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(t, tc.data, "x.pdf")
			fe := requireCode(t, err, tc.code)
			t.Logf("%s: %s", fe.Code, fe.Message)
		})
	}
}

func TestPDFTooManyPages(t *testing.T) {
	l := NewLocal(Options{CacheDir: testCacheDir, MaxPages: 2})
	defer l.Close()
	_, err := l.Parse(context.Background(), buildPDF([]pdfPage{{"a"}, {"b"}, {"c"}}, false), "x.pdf")
	fe := requireCode(t, err, CodePDFTooManyPages)
	if !strings.Contains(fe.Message, "3 pages") || !strings.Contains(fe.Message, "2") {
		t.Errorf("message: %q", fe.Message)
	}
	// The instance is still usable after a refusal.
	if _, err := l.Parse(context.Background(), buildPDF([]pdfPage{{"a"}}, false), "x.pdf"); err != nil {
		t.Fatal(err)
	}
}

func TestPDFSamplePolicy(t *testing.T) {
	data := readFile(t, filepath.Join(corpusDir, "sample-policy.pdf"))
	doc, err := parse(t, data, "sample-policy.pdf")
	if err != nil {
		t.Fatal(err)
	}
	if doc.Pages != 1 || !strings.Contains(doc.Markdown, "Accessa Health Insurance") {
		t.Fatalf("pages=%d\n%s", doc.Pages, doc.Markdown)
	}
	checkMarkers(t, doc.Markdown, 1)
	if body := strings.TrimPrefix(doc.Markdown, "<!-- page 1 -->\n\n"); len(strings.Fields(body)) < 50 {
		t.Fatalf("too little text: %q", body)
	}
}

func TestPDFHMO(t *testing.T) {
	data := readFile(t, hmoPath)
	start := time.Now()
	doc, err := parse(t, data, "scan_classic_hmo.pdf")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first parse (includes pool start): %v, %d bytes of markdown", time.Since(start), len(doc.Markdown))
	if doc.Pages != 232 {
		t.Fatalf("pages = %d", doc.Pages)
	}
	checkMarkers(t, doc.Markdown, 232)
	if !strings.Contains(strings.ToLower(doc.Markdown), "deductible") {
		t.Fatal("no 'deductible'")
	}
	// Cleanup: no CR, NUL, form feed, U+FFFE, trailing spaces; bullets are list items.
	for _, bad := range []string{"\r", "\x00", "\f", "\ufffe", " \n"} {
		if strings.Contains(doc.Markdown, bad) {
			t.Errorf("output contains %q", bad)
		}
	}
	if strings.Contains(doc.Markdown, "\n•") || !strings.Contains(doc.Markdown, "\n- Your plan premium and cost-sharing;\n") {
		t.Error("bullets not turned into list items")
	}
	if !strings.Contains(doc.Markdown, "tobacco-related disease") {
		t.Error("hyphen marked by pdfium (U+FFFE) not restored")
	}

	start = time.Now()
	again, err := parse(t, data, "scan_classic_hmo.pdf")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("second parse: %v", time.Since(start))
	if again != doc {
		t.Fatal("second parse differs")
	}

	// Parallel extraction over two instances gives byte-identical output.
	l2 := NewLocal(Options{CacheDir: testCacheDir, Workers: 2})
	defer l2.Close()
	par, err := l2.Parse(context.Background(), data, "scan_classic_hmo.pdf")
	if err != nil {
		t.Fatal(err)
	}
	if par != doc {
		t.Fatal("Workers=2 output differs from Workers=1")
	}
}

func TestPDFCancelMidway(t *testing.T) {
	data := readFile(t, hmoPath)
	l := NewLocal(Options{CacheDir: testCacheDir, Workers: 2})
	defer l.Close()
	// Warm up so the deadline falls inside page extraction.
	if _, err := l.Parse(context.Background(), buildPDF([]pdfPage{{"warm"}}, false), "w.pdf"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := l.Parse(ctx, data, "scan_classic_hmo.pdf")
	var fe *fault.Error
	if !errors.As(err, &fe) || fe.Kind != fault.Transient || fe.Code != "TIMEOUT" {
		t.Fatalf("want transient TIMEOUT, got %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("cancellation took %v", d)
	}
	// The pool is healthy afterwards.
	doc, err := l.Parse(context.Background(), buildPDF([]pdfPage{{"after cancel"}}, false), "a.pdf")
	if err != nil || !strings.Contains(doc.Markdown, "after cancel") {
		t.Fatalf("after cancel: %v %q", err, doc.Markdown)
	}
}

func TestPDFConcurrent(t *testing.T) {
	l := NewLocal(Options{CacheDir: testCacheDir, Workers: 2})
	defer l.Close()
	var pdfs [][]byte
	var want []string
	for i := range 6 {
		var pages []pdfPage
		for p := range 20 + i {
			pages = append(pages, pdfPage{"doc " + strconv.Itoa(i) + " page " + strconv.Itoa(p+1)})
		}
		pdfs = append(pdfs, buildPDF(pages, false))
		doc, err := parse(t, pdfs[i], "x.pdf")
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, doc.Markdown)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 3*len(pdfs))
	for range 3 {
		for i, data := range pdfs {
			wg.Go(func() {
				doc, err := l.Parse(context.Background(), data, "x.pdf")
				if err != nil {
					errs <- err
				} else if doc.Markdown != want[i] {
					errs <- errors.New("concurrent output differs for doc " + strconv.Itoa(i))
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestClose(t *testing.T) {
	l := NewLocal(Options{CacheDir: testCacheDir})
	pdf := buildPDF([]pdfPage{{"x"}}, false)
	if _, err := l.Parse(context.Background(), pdf, "a.pdf"); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	_, err := l.Parse(context.Background(), pdf, "a.pdf")
	var fe *fault.Error
	if !errors.As(err, &fe) || fe.Code != CodeParserClosed || fe.Kind != fault.Transient {
		t.Fatalf("after Close: %v", err)
	}
	// Formats that need no pdfium still work.
	if _, err := l.Parse(context.Background(), []byte("hi"), "a.txt"); err != nil {
		t.Fatal(err)
	}
	// Close without ever parsing a PDF.
	if err := NewLocal(Options{}).Close(); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkParseHMO measures a full parse of the 232-page corpus PDF after
// the pool has started (the start-up is excluded).
func BenchmarkParseHMO(b *testing.B) {
	data := readFile(b, hmoPath)
	for _, workers := range []int{1, 2} {
		b.Run("workers="+strconv.Itoa(workers), func(b *testing.B) {
			l := NewLocal(Options{CacheDir: testCacheDir, Workers: workers})
			defer l.Close()
			if _, err := l.Parse(context.Background(), data, "hmo.pdf"); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(data)))
			b.ResetTimer()
			for b.Loop() {
				if _, err := l.Parse(context.Background(), data, "hmo.pdf"); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if kb := procStatusKB("VmHWM"); kb > 0 {
				b.ReportMetric(float64(kb)/1024, "peakRSS-MiB")
			}
		})
	}
}

// procStatusKB reads a "kB" field of /proc/self/status (0 if unavailable).
func procStatusKB(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// A tainted instance is replaced, not reused, and the pool keeps working.
func TestPDFRecycleInstance(t *testing.T) {
	l := NewLocal(Options{CacheDir: testCacheDir})
	defer l.Close()
	pdf := buildPDF([]pdfPage{{"recycle me"}}, false)
	first, err := l.Parse(context.Background(), pdf, "a.pdf")
	if err != nil {
		t.Fatal(err)
	}
	eng, err := l.engine()
	if err != nil {
		t.Fatal(err)
	}
	w, err := eng.acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	key := w.inst.GetImplementation()
	w.tainted = true
	eng.release(w, 0)
	eng.mu.Lock()
	_, kept := eng.usage[key]
	eng.mu.Unlock()
	if kept {
		t.Fatal("usage of a recycled instance kept")
	}
	w, err = eng.acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if w.inst.GetImplementation() == key {
		t.Fatal("tainted instance was handed out again")
	}
	eng.release(w, recycleDocBytes+1) // large document: recycled too
	again, err := l.Parse(context.Background(), pdf, "a.pdf")
	if err != nil || again != first {
		t.Fatalf("after recycling: %v\n%q\n%q", err, again.Markdown, first.Markdown)
	}
}
