// Package parse turns uploaded bytes (PDF, DOCX, HTML, Markdown, plain text)
// into markdown, locally and deterministically: the same bytes always give the
// same Markdown.
//
// Every failure caused by the input is returned as a *fault.Error of kind
// fault.Permanent with one of the Code* constants below and a message a person
// understands. Cancellation is returned as the transient error fault.Classify
// gives for ctx.Err().
package parse

import (
	"context"
	"fmt"
	"sync"

	"github.com/docpipe/docpipe/internal/fault"
)

// Document is the parser output.
type Document struct {
	Markdown      string // for paged formats (PDF) each page starts with a line "<!-- page N -->" (N from 1) followed by a blank line
	Pages         int    // number of pages for PDF, 0 otherwise
	MIME          string // detected type, one of the MIME* constants
	Parser        string // e.g. "local-pdfium", "local-html", "local-markdown", "local-text", "local-docx"
	ParserVersion string // "1"
}

// Detected content types.
const (
	MIMEPDF      = "application/pdf"
	MIMEDOCX     = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
	MIMEHTML     = "text/html"
	MIMEMarkdown = "text/markdown"
	MIMEText     = "text/plain"
)

// Parser names reported in Document.Parser.
const (
	ParserPDF      = "local-pdfium"
	ParserDOCX     = "local-docx"
	ParserHTML     = "local-html"
	ParserMarkdown = "local-markdown"
	ParserText     = "local-text"

	// ParserVersion changes whenever the output for the same input changes.
	ParserVersion = "1"
)

// Error codes. All are permanent (bad input) unless noted.
const (
	CodeEmptyFile       = "EMPTY_FILE"         // zero bytes or only whitespace
	CodeUnsupportedType = "UNSUPPORTED_TYPE"   // binary or unknown content
	CodeTypeMismatch    = "TYPE_MISMATCH"      // named .pdf/.docx but the content is something else
	CodeNoText          = "NO_TEXT"            // parsed fine but nothing readable came out
	CodePDFEncrypted    = "PDF_ENCRYPTED"      // needs a password
	CodePDFCorrupt      = "PDF_CORRUPT"        // PDF header present but unreadable
	CodePDFNoText       = "PDF_NO_TEXT"        // pages have no text layer (scans)
	CodePDFTooManyPages = "PDF_TOO_MANY_PAGES" // more pages than Options.MaxPages
	CodeDOCXCorrupt     = "DOCX_CORRUPT"       // not a valid zip / no word/document.xml / bad XML
	CodeArchiveTooLarge = "ARCHIVE_TOO_LARGE"  // zip-bomb defence
	CodeHTMLCorrupt     = "HTML_CORRUPT"       // the HTML converter failed on this input
	CodePDFEngine       = "PDF_ENGINE"         // transient: the PDF engine could not start
	CodeParserClosed    = "PARSER_CLOSED"      // transient: Parse called after Close
)

const (
	defaultMaxPages      = 5000
	defaultMaxExtract    = 200 << 20
	maxZipEntries        = 10000
	supportedTypesPhrase = "PDF, Word (.docx), HTML, Markdown or plain text"
)

// Options configure Local.
type Options struct {
	CacheDir        string // wazero compilation cache dir ("" = no cache); created if missing
	MaxPages        int    // 0 = 5000
	MaxExtractBytes int64  // limit on decompressed bytes read from a DOCX zip, 0 = 200 MiB
	Workers         int    // pdfium instances in the pool, 0 = 1
}

// Local parses documents in-process. It is safe for concurrent use.
type Local struct {
	opts Options

	// life is held for reading by PDF parses in flight and for writing by
	// Close, so Close waits for them before tearing the pdfium pool down.
	life   sync.RWMutex
	closed bool

	initMu sync.Mutex
	eng    *pdfEngine // created lazily on the first PDF
}

// NewLocal returns a parser. It is cheap: the pdfium pool is created on the
// first PDF and reused afterwards.
func NewLocal(opts Options) *Local {
	if opts.MaxPages <= 0 {
		opts.MaxPages = defaultMaxPages
	}
	if opts.MaxExtractBytes <= 0 {
		opts.MaxExtractBytes = defaultMaxExtract
	}
	if opts.Workers <= 0 {
		opts.Workers = 1
	}
	return &Local{opts: opts}
}

// Close releases the pdfium pool, waiting for PDF parses in flight. Parse
// calls after Close fail with the transient code PARSER_CLOSED for PDFs.
func (l *Local) Close() error {
	l.life.Lock()
	defer l.life.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	l.initMu.Lock()
	defer l.initMu.Unlock()
	if l.eng == nil {
		return nil
	}
	err := l.eng.close()
	l.eng = nil
	return err
}

// Parse detects the type of data (see Sniff) and converts it to markdown.
func (l *Local) Parse(ctx context.Context, data []byte, filename string) (doc Document, err error) {
	if err := ctx.Err(); err != nil {
		return Document{}, fault.Classify(err)
	}
	var s sniffed
	defer func() {
		if r := recover(); r != nil {
			doc, err = Document{}, crashError(s.mime, r)
		}
	}()
	s, err = sniff(data, filename)
	if err != nil {
		return Document{}, err
	}

	doc = Document{MIME: s.mime, ParserVersion: ParserVersion}
	var md string
	switch s.mime {
	case MIMEPDF:
		doc.Parser = ParserPDF
		var pages int
		md, pages, err = l.parsePDF(ctx, data)
		doc.Pages = pages
	case MIMEDOCX:
		doc.Parser = ParserDOCX
		md, err = parseDOCX(ctx, data, l.opts.MaxExtractBytes)
	case MIMEHTML:
		doc.Parser = ParserHTML
		md, err = parseHTML(ctx, s.text)
	case MIMEMarkdown:
		doc.Parser = ParserMarkdown
		md = normalizePlain(s.text)
	default:
		doc.Parser = ParserText
		md = normalizePlain(s.text)
	}
	if err != nil {
		return Document{}, err
	}
	if isBlank(md) {
		if s.mime == MIMEPDF {
			return Document{}, pdfNoTextError()
		}
		return Document{}, permanent(CodeNoText, nil,
			"the %s contains no readable text", describeMIME(s.mime))
	}
	doc.Markdown = md
	return doc, nil
}

func permanent(code string, cause error, format string, args ...any) *fault.Error {
	return &fault.Error{Kind: fault.Permanent, Code: code, Message: fmt.Sprintf(format, args...), Err: cause}
}

func pdfNoTextError() *fault.Error {
	return permanent(CodePDFNoText, nil,
		"the PDF has no extractable text; it may be a scan — OCR is not supported by the local parser")
}

// crashError turns a recovered panic from a third-party parser into a
// permanent error for the detected type.
func crashError(mime string, r any) *fault.Error {
	code := CodeUnsupportedType
	switch mime {
	case MIMEPDF:
		code = CodePDFCorrupt
	case MIMEDOCX:
		code = CodeDOCXCorrupt
	case MIMEHTML:
		code = CodeHTMLCorrupt
	}
	return permanent(code, fmt.Errorf("panic: %v", r),
		"the %s could not be read: the parser failed on this file", describeMIME(mime))
}

func describeMIME(mime string) string {
	switch mime {
	case MIMEPDF:
		return "PDF"
	case MIMEDOCX:
		return "Word document"
	case MIMEHTML:
		return "HTML page"
	case MIMEMarkdown:
		return "Markdown file"
	case MIMEText:
		return "text file"
	}
	return "file"
}
