package parse

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestSniff(t *testing.T) {
	docx := buildDOCX(t, wp("", "hello"), "")
	xlsx := buildZip(t, [2]string{"[Content_Types].xml", "<Types/>"}, [2]string{"xl/workbook.xml", "<workbook/>"})
	plainZip := buildZip(t, [2]string{"notes.txt", "hello"})
	pdf := buildPDF([]pdfPage{{"hi"}}, false)
	rng := rand.New(rand.NewPCG(1, 2))
	garbage := make([]byte, 4096)
	for i := range garbage {
		garbage[i] = byte(rng.UintN(256))
	}
	png := append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), garbage[:100]...)
	ole := append([]byte{0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1}, garbage[:200]...)
	utf16le := []byte{0xFF, 0xFE}
	for _, r := range "Hello UTF-16 text" {
		utf16le = append(utf16le, byte(r), 0)
	}

	tests := []struct {
		name     string
		data     []byte
		filename string
		mime     string // expected type, or "" when an error is expected
		code     string
		msg      string // substring of the error message
	}{
		{"empty", nil, "a.txt", "", CodeEmptyFile, "empty"},
		{"whitespace only", []byte(" \n\t\r\n  "), "a.md", "", CodeEmptyFile, "whitespace"},
		{"BOM and whitespace", []byte("\xEF\xBB\xBF  \n"), "a.txt", "", CodeEmptyFile, "whitespace"},
		{"pdf", pdf, "policy.pdf", MIMEPDF, "", ""},
		{"pdf named txt: content wins", pdf, "policy.txt", MIMEPDF, "", ""},
		{"pdf without name", pdf, "", MIMEPDF, "", ""},
		{"pdf with junk before header", append([]byte("junk\r\n"), pdf...), "x", MIMEPDF, "", ""},
		{"pdf named docx", pdf, "letter.DOCX", "", CodeTypeMismatch, "named .docx but its content is a PDF"},
		{"docx", docx, "letter.docx", MIMEDOCX, "", ""},
		{"docx named bin", docx, "upload.bin", MIMEDOCX, "", ""},
		{"docx named pdf", docx, "scan.pdf", "", CodeTypeMismatch, "named .pdf but its content is a Word document"},
		{"zip without document.xml named docx", plainZip, "a.docx", "", CodeDOCXCorrupt, "word/document.xml"},
		{"plain zip", plainZip, "a.zip", "", CodeUnsupportedType, "zip archive"},
		{"xlsx", xlsx, "book.xlsx", "", CodeUnsupportedType, "Excel"},
		{"truncated docx", docx[:len(docx)/2], "a.docx", "", CodeDOCXCorrupt, "damaged"},
		{"PK but not a zip, named docx", []byte("PK\n  word/document.xml <w:document/>"), "a.docx", "", CodeDOCXCorrupt, "not a valid zip"},
		{"legacy .doc", ole, "old.doc", "", CodeUnsupportedType, "Office 97-2003"},
		{"legacy .doc named docx", ole, "old.docx", "", CodeTypeMismatch, "named .docx"},
		{"rtf", []byte(`{\rtf1\ansi hello}`), "a.rtf", "", CodeUnsupportedType, "RTF"},
		{"html doctype", []byte("<!DOCTYPE html><html><body><p>x</p></body></html>"), "page", MIMEHTML, "", ""},
		{"html after comment", []byte("\n<!-- saved -->\n<html><p>x</p></html>"), "page.md", MIMEHTML, "", ""},
		{"html fragment named html", []byte("<p>Hello</p>"), "frag.html", MIMEHTML, "", ""},
		{"html fragment named txt", []byte("<p>Hello</p>"), "frag.txt", MIMEText, "", ""},
		{"html named pdf", []byte("<html><body>x</body></html>"), "a.pdf", "", CodeTypeMismatch, "named .pdf but its content is an HTML page"},
		{"markdown by extension", []byte("just words"), "notes.md", MIMEMarkdown, "", ""},
		{"markdown by extension .markdown", []byte("just words"), "notes.markdown", MIMEMarkdown, "", ""},
		{"markdown by heading", []byte("intro\n\n## Section\n\ntext"), "notes", MIMEMarkdown, "", ""},
		{"heading but .txt", []byte("# Section\ntext"), "notes.txt", MIMEText, "", ""},
		{"hashtag is not a heading", []byte("#hashtag and #1 fan"), "notes", MIMEText, "", ""},
		{"plain text", []byte("Policy number 123\nCoverage: all"), "notes.txt", MIMEText, "", ""},
		{"utf-8 BOM text", []byte("\xEF\xBB\xBFhello"), "a.txt", MIMEText, "", ""},
		{"utf-16 text", utf16le, "a.txt", MIMEText, "", ""},
		{"plain text named pdf", []byte("This is a test PDF content"), "a.pdf", "", CodeTypeMismatch, "named .pdf but its content is plain text, not a PDF"},
		{"markdown named docx", []byte("# Title\n\ntext"), "a.docx", "", CodeTypeMismatch, "named .docx but its content is Markdown text"},
		{"binary garbage", garbage, "blob", "", CodeUnsupportedType, "not a supported document type"},
		{"binary garbage named pdf", garbage, "blob.pdf", "", CodeTypeMismatch, "named .pdf"},
		{"png", png, "photo.png", "", CodeUnsupportedType, "image/png"},
		{"NUL bytes in text", []byte("hello\x00world"), "a.txt", "", CodeUnsupportedType, "binary data"},
		{"latin-1 text", []byte("caf\xe9 cr\xe8me br\xfbl\xe9e"), "menu.txt", "", CodeUnsupportedType, "legacy encoding"},
		{"latin-1 html", []byte(`<html><head><meta charset="iso-8859-1"></head><body>caf` + "\xe9" + `</body></html>`), "a.html", MIMEHTML, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mime, err := Sniff(tc.data, tc.filename)
			if tc.code == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if mime != tc.mime {
					t.Fatalf("mime = %q, want %q", mime, tc.mime)
				}
				return
			}
			fe := requireCode(t, err, tc.code)
			if mime != "" {
				t.Errorf("mime = %q on error", mime)
			}
			if !strings.Contains(fe.Message, tc.msg) {
				t.Errorf("message %q does not contain %q", fe.Message, tc.msg)
			}
		})
	}
}

func TestSniffDecodesText(t *testing.T) {
	s, err := sniff([]byte{0xFE, 0xFF, 0, 'h', 0, 'i', 0x00, 0xE9}, "a.txt")
	if err != nil || s.text != "hié" {
		t.Fatalf("UTF-16BE: %q, %v", s.text, err)
	}
	s, err = sniff([]byte("<html><body>caf\xe9</body></html>"), "a.html")
	if err != nil || !strings.Contains(s.text, "café") {
		t.Fatalf("windows-1252 html: %q, %v", s.text, err)
	}
}

func TestLooksLikePDFNeedsHeaderOrTrailer(t *testing.T) {
	// "%PDF-" quoted inside a text file is not a PDF.
	text := []byte("Notes\n\nA PDF file starts with %PDF-1.7 and more.\n")
	if looksLikePDF(text) {
		t.Fatal("text mentioning %PDF- detected as PDF")
	}
	if !looksLikePDF(append([]byte("\xEF\xBB\xBF\n"), buildPDF([]pdfPage{{"x"}}, false)...)) {
		t.Fatal("PDF after BOM not detected")
	}
	if !bytes.HasPrefix(buildPDF(nil, false), []byte("%PDF-")) {
		t.Fatal("generator broken")
	}
}
