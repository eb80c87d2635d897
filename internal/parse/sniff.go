package parse

import (
	"archive/zip"
	"bytes"
	"io"
	"net/http"
	"path"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"golang.org/x/net/html/charset"
)

// sniffed is the result of content detection. text holds the decoded UTF-8
// content (BOM removed) for the text types: HTML, Markdown and plain text.
type sniffed struct {
	mime string
	text string
}

// Sniff detects the type from the content; filename's extension is only a
// hint and a cross-check. It returns one of the MIME* constants, or a
// permanent *fault.Error (EMPTY_FILE, UNSUPPORTED_TYPE, TYPE_MISMATCH,
// DOCX_CORRUPT).
func Sniff(data []byte, filename string) (string, error) {
	s, err := sniff(data, filename)
	if err != nil {
		return "", err
	}
	return s.mime, nil
}

var (
	utf8BOM    = []byte{0xEF, 0xBB, 0xBF}
	utf16LEBOM = []byte{0xFF, 0xFE}
	utf16BEBOM = []byte{0xFE, 0xFF}
	oleMagic   = []byte{0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1}
)

func sniff(data []byte, filename string) (sniffed, error) {
	ext := extOf(filename)
	if len(data) == 0 {
		return sniffed{}, permanent(CodeEmptyFile, nil, "the file is empty (0 bytes)")
	}

	// Binary containers first: they are recognised by magic numbers.
	if looksLikePDF(data) {
		if ext == ".docx" {
			return sniffed{}, mismatch(ext, "a PDF")
		}
		return sniffed{mime: MIMEPDF}, nil
	}
	if bytes.HasPrefix(data, []byte("PK\x03\x04")) || bytes.HasPrefix(data, []byte("PK\x05\x06")) {
		return sniffZip(data, ext)
	}
	if ext == ".docx" && bytes.HasPrefix(data, []byte("PK")) {
		return sniffed{}, permanent(CodeDOCXCorrupt, nil,
			"the file is named .docx but it is damaged: it starts like a Word (zip) file but is not a valid zip archive")
	}
	if bytes.HasPrefix(data, oleMagic) {
		const what = "a legacy Office 97-2003 file (.doc, .xls or .ppt) or a password-protected Office document"
		if ext == ".pdf" || ext == ".docx" {
			return sniffed{}, mismatch(ext, what)
		}
		return sniffed{}, permanent(CodeUnsupportedType, nil,
			"the file is %s, which is not supported; save it as .docx (without a password) or PDF", what)
	}

	text, ok := decodeText(data)
	if !ok {
		// Not UTF-8/UTF-16. HTML in a legacy charset can still be decoded,
		// because it declares (or defaults to) its encoding.
		if bytes.IndexByte(data, 0) < 0 && looksLikeHTML(string(data[:min(len(data), 1024)]), ext) {
			if t, ok := decodeLegacyHTML(data); ok {
				return finishText(sniffed{mime: MIMEHTML, text: t}, ext)
			}
		}
		return sniffed{}, binaryError(data, ext)
	}
	if strings.TrimSpace(text) == "" {
		return sniffed{}, permanent(CodeEmptyFile, nil, "the file contains only whitespace")
	}
	if strings.HasPrefix(text, `{\rtf`) {
		if ext == ".pdf" || ext == ".docx" {
			return sniffed{}, mismatch(ext, "an RTF document")
		}
		return sniffed{}, permanent(CodeUnsupportedType, nil,
			"the file is an RTF document, which is not supported; save it as .docx or PDF")
	}

	s := sniffed{text: text}
	switch {
	case looksLikeHTML(text[:prefixLen(text, 1024)], ext):
		s.mime = MIMEHTML
	case ext == ".md" || ext == ".markdown" || ext == ".mdown" || ext == ".mkd":
		s.mime = MIMEMarkdown
	case ext != ".txt" && hasMarkdownHeading(text):
		s.mime = MIMEMarkdown
	default:
		s.mime = MIMEText
	}
	return finishText(s, ext)
}

// finishText applies the extension cross-check to a text type.
func finishText(s sniffed, ext string) (sniffed, error) {
	if ext == ".pdf" || ext == ".docx" {
		what := "plain text"
		switch s.mime {
		case MIMEHTML:
			what = "an HTML page"
		case MIMEMarkdown:
			what = "Markdown text"
		}
		return sniffed{}, mismatch(ext, what)
	}
	return s, nil
}

func mismatch(ext, what string) error {
	want := "a PDF"
	if ext == ".docx" {
		want = "a Word document"
	}
	return permanent(CodeTypeMismatch, nil, "the file is named %s but its content is %s, not %s", ext, what, want)
}

func extOf(filename string) string {
	return strings.ToLower(path.Ext(strings.ReplaceAll(filename, `\`, "/")))
}

// looksLikePDF accepts "%PDF-" at the start (after whitespace or a BOM), or
// within the first 1 KiB when the file also ends like a PDF, as readers do
// for files with junk before the header.
func looksLikePDF(data []byte) bool {
	t := bytes.TrimLeft(bytes.TrimPrefix(data, utf8BOM), " \t\r\n\f\x00")
	if bytes.HasPrefix(t, []byte("%PDF-")) {
		return true
	}
	head := data[:min(len(data), 1024)]
	tail := data[max(0, len(data)-2048):]
	return bytes.Contains(head, []byte("%PDF-")) && bytes.Contains(tail, []byte("%%EOF"))
}

func sniffZip(data []byte, ext string) (sniffed, error) {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		switch ext {
		case ".docx":
			return sniffed{}, permanent(CodeDOCXCorrupt, err,
				"the file is named .docx but it is damaged: its zip container is truncated or corrupt")
		case ".pdf":
			return sniffed{}, mismatch(ext, "a damaged zip archive")
		}
		return sniffed{}, permanent(CodeUnsupportedType, err,
			"the file is a damaged zip archive, not a supported document type (%s)", supportedTypesPhrase)
	}
	names := make(map[string]bool, len(zr.File))
	for _, f := range zr.File {
		names[f.Name] = true
	}
	if names["word/document.xml"] {
		if ext == ".pdf" {
			return sniffed{}, mismatch(ext, "a Word document")
		}
		return sniffed{mime: MIMEDOCX}, nil
	}
	what := "a zip archive"
	switch {
	case names["xl/workbook.xml"]:
		what = "an Excel workbook (.xlsx)"
	case names["ppt/presentation.xml"]:
		what = "a PowerPoint presentation (.pptx)"
	case names["mimetype"] && names["content.xml"]:
		what = "an OpenDocument file (.odt, .ods or .odp)"
	case names["[Content_Types].xml"]:
		what = "an Office package without a Word document part"
	}
	switch ext {
	case ".docx":
		return sniffed{}, permanent(CodeDOCXCorrupt, nil,
			"the file is named .docx but it is not a valid Word document: it is %s without word/document.xml", what)
	case ".pdf":
		return sniffed{}, mismatch(ext, what)
	}
	return sniffed{}, permanent(CodeUnsupportedType, nil,
		"the file is %s, which is not a supported document type (%s)", what, supportedTypesPhrase)
}

// decodeText returns data as UTF-8 without a BOM. UTF-16 with a BOM is
// converted. ok is false for binary content: NUL bytes, invalid UTF-8, or
// many control characters.
func decodeText(data []byte) (string, bool) {
	var text string
	switch {
	case bytes.HasPrefix(data, utf16LEBOM) || bytes.HasPrefix(data, utf16BEBOM):
		body := data[2:]
		if len(body)%2 != 0 {
			return "", false
		}
		u := make([]uint16, len(body)/2)
		for i := range u {
			if data[0] == 0xFF {
				u[i] = uint16(body[2*i]) | uint16(body[2*i+1])<<8
			} else {
				u[i] = uint16(body[2*i])<<8 | uint16(body[2*i+1])
			}
		}
		text = string(utf16.Decode(u))
	default:
		body := bytes.TrimPrefix(data, utf8BOM)
		if !utf8.Valid(body) {
			return "", false
		}
		text = string(body)
	}
	if strings.IndexByte(text, 0) >= 0 {
		return "", false
	}
	ctrl, n := 0, 0
	for _, r := range text {
		n++
		if r < 0x20 && r != '\t' && r != '\n' && r != '\r' && r != '\f' && r != '\v' && r != 0x1b {
			ctrl++
		}
	}
	if ctrl*100 > n {
		return "", false
	}
	return text, true
}

func decodeLegacyHTML(data []byte) (string, bool) {
	r, err := charset.NewReader(bytes.NewReader(data), "text/html")
	if err != nil {
		return "", false
	}
	b, err := io.ReadAll(r)
	if err != nil || !utf8.Valid(b) {
		return "", false
	}
	return string(b), true
}

func binaryError(data []byte, ext string) error {
	what, hint := "unrecognised binary data", ""
	ct := http.DetectContentType(data)
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	switch {
	case ct != "application/octet-stream" && !strings.HasPrefix(ct, "text/"):
		what = ct + " data"
	case bytes.IndexByte(data, 0) < 0 && mostlyPrintable(data):
		what, hint = "text in a legacy encoding (not UTF-8)", "; save it as UTF-8"
	}
	if ext == ".pdf" || ext == ".docx" {
		return mismatch(ext, what)
	}
	return permanent(CodeUnsupportedType, nil,
		"the file's content is %s, which is not a supported document type (%s)%s", what, supportedTypesPhrase, hint)
}

// mostlyPrintable reports whether nearly all bytes are printable ASCII,
// whitespace or high bytes (as in Latin-1 text).
func mostlyPrintable(data []byte) bool {
	data = data[:min(len(data), 8192)]
	bad := 0
	for _, b := range data {
		if b < 0x20 && b != '\t' && b != '\n' && b != '\r' && b != '\f' {
			bad++
		}
	}
	return bad*100 <= len(data)
}

func prefixLen(s string, n int) int {
	if len(s) <= n {
		return len(s)
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return n
}

var htmlExts = map[string]bool{".html": true, ".htm": true, ".xhtml": true, ".shtml": true}

// looksLikeHTML checks the first KiB of s for HTML document structure.
func looksLikeHTML(head, ext string) bool {
	h := strings.ToLower(head)
	t := strings.TrimLeft(h, " \t\r\n\f\ufeff")
	for {
		if strings.HasPrefix(t, "<!--") {
			i := strings.Index(t, "-->")
			if i < 0 {
				break
			}
			t = strings.TrimLeft(t[i+3:], " \t\r\n\f")
			continue
		}
		if strings.HasPrefix(t, "<?xml") {
			i := strings.Index(t, "?>")
			if i < 0 {
				break
			}
			t = strings.TrimLeft(t[i+2:], " \t\r\n\f")
			continue
		}
		break
	}
	for _, p := range []string{"<!doctype html", "<html", "<head", "<body"} {
		if strings.HasPrefix(t, p) {
			return true
		}
	}
	if htmlExts[ext] && strings.HasPrefix(t, "<") {
		return true
	}
	switch ext {
	case ".md", ".markdown", ".mdown", ".mkd", ".txt":
		return false
	}
	return strings.Contains(h, "<!doctype html") || strings.Contains(h, "<html") || strings.Contains(h, "<body")
}

// hasMarkdownHeading reports whether an ATX heading ("# Title") starts a line
// in the first 64 KiB.
func hasMarkdownHeading(text string) bool {
	text = text[:prefixLen(text, 64<<10)]
	for line := range strings.Lines(text) {
		line = strings.TrimLeft(line, " ")
		n := 0
		for n < len(line) && line[n] == '#' {
			n++
		}
		if n >= 1 && n <= 6 && n < len(line) && (line[n] == ' ' || line[n] == '\t') &&
			strings.TrimSpace(line[n:]) != "" {
			return true
		}
	}
	return false
}
