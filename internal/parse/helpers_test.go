package parse

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/docpipe/docpipe/internal/fault"
)

// testCacheDir keeps the wazero compilation cache between test runs so only
// the first run pays the ~4 s compile of pdfium.wasm.
var testCacheDir = filepath.Join(os.TempDir(), "docpipe-parse-test-wazero-cache")

var (
	sharedOnce  sync.Once
	sharedLocal *Local
)

// shared returns one Local for the whole test binary (closed in TestMain).
func shared() *Local {
	sharedOnce.Do(func() { sharedLocal = NewLocal(Options{CacheDir: testCacheDir}) })
	return sharedLocal
}

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedLocal != nil {
		_ = sharedLocal.Close()
	}
	os.Exit(code)
}

func parse(t testing.TB, data []byte, name string) (Document, error) {
	t.Helper()
	return shared().Parse(context.Background(), data, name)
}

// requireCode asserts err is a permanent *fault.Error with code and a message
// meant for people.
func requireCode(t testing.TB, err error, code string) *fault.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("want error %s, got nil", code)
	}
	var fe *fault.Error
	if !errors.As(err, &fe) {
		t.Fatalf("want *fault.Error, got %T: %v", err, err)
	}
	if fe.Code != code {
		t.Fatalf("want code %s, got %s (%v)", code, fe.Code, err)
	}
	if fe.Kind != fault.Permanent {
		t.Fatalf("want permanent, got %v (%v)", fe.Kind, err)
	}
	requireReadable(t, fe.Message)
	return fe
}

// requireReadable rejects messages that look like Go internals.
func requireReadable(t testing.TB, msg string) {
	t.Helper()
	if len(msg) < 15 {
		t.Fatalf("message too short to help anyone: %q", msg)
	}
	for _, bad := range []string{"panic", "goroutine", ".go:", "runtime.", "0x", "nil pointer",
		"zip: ", "xml: ", "unexpected EOF", "%!", "errors.", "*fault"} {
		if strings.Contains(msg, bad) {
			t.Fatalf("message looks like an internal error (%q): %q", bad, msg)
		}
	}
}

// ---------------------------------------------------------------- DOCX --

const docxNS = `xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" ` +
	`xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006"`

// buildZip writes a zip with the given entries (in order).
func buildZip(t testing.TB, entries ...[2]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		w, err := zw.Create(e[0])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(e[1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// buildDOCX makes a minimal valid .docx around a w:body.
func buildDOCX(t testing.TB, body, styles string) []byte {
	t.Helper()
	entries := [][2]string{
		{"[Content_Types].xml", `<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>`},
		{"_rels/.rels", `<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>`},
		{"word/document.xml", `<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document ` + docxNS + `><w:body>` + body + `</w:body></w:document>`},
	}
	if styles != "" {
		entries = append(entries, [2]string{"word/styles.xml", `<?xml version="1.0" encoding="UTF-8"?><w:styles ` + docxNS + `>` + styles + `</w:styles>`})
	}
	return buildZip(t, entries...)
}

func wp(style, text string) string {
	ppr := ""
	if style != "" {
		ppr = `<w:pPr><w:pStyle w:val="` + style + `"/></w:pPr>`
	}
	return `<w:p>` + ppr + `<w:r><w:t xml:space="preserve">` + text + `</w:t></w:r></w:p>`
}

func wli(level int, text string) string {
	return fmt.Sprintf(`<w:p><w:pPr><w:pStyle w:val="ListParagraph"/><w:numPr><w:ilvl w:val="%d"/><w:numId w:val="1"/></w:numPr></w:pPr><w:r><w:t>%s</w:t></w:r></w:p>`, level, text)
}

func wtable(rows ...[]string) string {
	var b strings.Builder
	b.WriteString(`<w:tbl><w:tblPr/><w:tblGrid/>`)
	for _, r := range rows {
		b.WriteString(`<w:tr>`)
		for _, c := range r {
			b.WriteString(`<w:tc><w:tcPr/>` + wp("", c) + `</w:tc>`)
		}
		b.WriteString(`</w:tr>`)
	}
	b.WriteString(`</w:tbl>`)
	return b.String()
}

// ----------------------------------------------------------------- PDF --

// pdfPage is the text lines of one generated page (nil = no content).
type pdfPage []string

// buildPDF writes a small PDF with Helvetica text, one line per entry. If
// encrypted, it adds a standard security handler whose user password is not
// empty, so readers must ask for a password.
func buildPDF(pages []pdfPage, encrypted bool) []byte {
	var objs []string // objs[i] is object i+1
	add := func(s string) int { objs = append(objs, s); return len(objs) }
	catalog := add("") // filled later
	pagesObj := add("")
	font := add("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
	var kids []string
	for _, p := range pages {
		var cs strings.Builder
		if len(p) > 0 {
			cs.WriteString("BT /F1 12 Tf 14 TL 72 720 Td\n")
			for _, line := range p {
				esc := strings.NewReplacer(`\`, `\\`, `(`, `\(`, `)`, `\)`).Replace(line)
				cs.WriteString("(" + esc + ") Tj T*\n")
			}
			cs.WriteString("ET\n")
		}
		content := add(fmt.Sprintf("<< /Length %d >>\nstream\n%sendstream", cs.Len(), cs.String()))
		page := add(fmt.Sprintf("<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 %d 0 R >> >> /Contents %d 0 R >>", pagesObj, font, content))
		kids = append(kids, fmt.Sprintf("%d 0 R", page))
	}
	objs[catalog-1] = fmt.Sprintf("<< /Type /Catalog /Pages %d 0 R >>", pagesObj)
	objs[pagesObj-1] = fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d >>", strings.Join(kids, " "), len(pages))
	encrypt := 0
	if encrypted {
		encrypt = add("<< /Filter /Standard /V 1 /R 2 /Length 40 /P -44 " +
			"/O <" + strings.Repeat("5a", 32) + "> /U <" + strings.Repeat("c3", 32) + "> >>")
	}

	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
	offsets := make([]int, len(objs))
	for i, o := range objs {
		offsets[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objs)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	trailer := fmt.Sprintf("/Size %d /Root %d 0 R", len(objs)+1, catalog)
	if encrypt > 0 {
		id := strings.Repeat("0123456789abcdef", 2)
		trailer += fmt.Sprintf(" /Encrypt %d 0 R /ID [<%s> <%s>]", encrypt, id, id)
	}
	fmt.Fprintf(&b, "trailer\n<< %s >>\nstartxref\n%d\n%%%%EOF\n", trailer, xref)
	return b.Bytes()
}
