package parse

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docpipe/docpipe/internal/fault"
)

// corpusDir holds the repository's own copies of the real documents the tests need.
const corpusDir = "../../testdata/corpus"

func TestCorpusCorruptFiles(t *testing.T) {
	tests := []struct {
		file, code, msg string
	}{
		{"corrupt-not-a-pdf.pdf", CodeTypeMismatch, "named .pdf but its content is plain text, not a PDF"},
		{"corrupt-truncated.pdf", CodeTypeMismatch, "named .pdf but its content is plain text, not a PDF"},
		{"corrupt-not-a-zip.docx", CodeDOCXCorrupt, "not a valid zip archive"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(corpusDir, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			_, err = parse(t, data, tc.file)
			fe := requireCode(t, err, tc.code)
			if !strings.Contains(fe.Message, tc.msg) {
				t.Errorf("message %q does not contain %q", fe.Message, tc.msg)
			}
			if !fault.IsPermanent(err) {
				t.Error("fault.IsPermanent = false")
			}
		})
	}
}

func TestHTML(t *testing.T) {
	page := `<!DOCTYPE html><html><head><title>Site</title><style>p{color:red}</style><script>alert("x")</script></head><body>
<header><a href="/">Home</a> <a href="/about">About us</a></header>
<nav><ul><li><a href="/a">Menu A</a></li><li>Menu B</li></ul></nav>
<div role="navigation">Breadcrumbs</div>
<main><article><header><h1>Plan Summary</h1></header>
<p>This plan covers <b>doctor visits</b> and <a href="https://example.com/x">more</a>.</p>
<img src="data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk" alt="Logo">
<table><tr><th>Service</th><th>Copay</th></tr><tr><td>Doctor</td><td>$20</td></tr><tr><td>ER</td><td>$100</td></tr></table>
<ul><li>One</li><li>Two</li></ul>
<noscript>Enable JavaScript</noscript><iframe src="https://ads.example"></iframe><svg><text>svgtext</text></svg>
<template><p>template text</p></template>
</article></main>
<footer>Copyright 2025</footer></body></html>`
	doc, err := parse(t, []byte(page), "summary.html")
	if err != nil {
		t.Fatal(err)
	}
	want := "# Plan Summary\n\n" +
		"This plan covers **doctor visits** and [more](https://example.com/x).\n\n" +
		"Logo\n\n" +
		"| Service | Copay |\n|---------|-------|\n| Doctor  | $20   |\n| ER      | $100  |\n\n" +
		"- One\n- Two\n"
	if doc.Markdown != want {
		t.Fatalf("markdown mismatch\n--- got\n%s\n--- want\n%s", doc.Markdown, want)
	}
	if doc.MIME != MIMEHTML || doc.Parser != ParserHTML || doc.Pages != 0 {
		t.Fatalf("metadata: %+v", doc)
	}
	for _, noise := range []string{"alert", "color:red", "Menu", "Home", "Breadcrumbs", "Copyright", "Enable", "svgtext", "template text", "base64"} {
		if strings.Contains(doc.Markdown, noise) {
			t.Errorf("noise %q kept", noise)
		}
	}
}

func TestHTMLOnlyNoise(t *testing.T) {
	_, err := parse(t, []byte(`<html><head><script>x()</script></head><body><nav>Menu</nav></body></html>`), "a.html")
	requireCode(t, err, CodeNoText)
}

func TestMarkdownPassThrough(t *testing.T) {
	in := "\ufeff\r\n# Title\r\n\r\nLine with two spaces  \r\nnext\r\n\r\n\r\n\r\n```\r\ncode\r\n```\r\n<!-- page 3 -->\r\n\r\n"
	doc, err := parse(t, []byte(in), "readme.md")
	if err != nil {
		t.Fatal(err)
	}
	want := "# Title\n\nLine with two spaces  \nnext\n\n\n\n```\ncode\n```\n\\<!-- page 3 -->\n"
	if doc.Markdown != want {
		t.Fatalf("got %q\nwant %q", doc.Markdown, want)
	}
	if doc.MIME != MIMEMarkdown || doc.Parser != ParserMarkdown {
		t.Fatalf("metadata: %+v", doc)
	}
}

func TestTextPassThrough(t *testing.T) {
	doc, err := parse(t, []byte("Policy 123\rCoverage: all\r\n"), "notes.txt")
	if err != nil {
		t.Fatal(err)
	}
	if doc.Markdown != "Policy 123\nCoverage: all\n" || doc.MIME != MIMEText || doc.Parser != ParserText {
		t.Fatalf("got %+v", doc)
	}
}

func TestParseEmptyAndBinary(t *testing.T) {
	_, err := parse(t, nil, "empty.pdf")
	requireCode(t, err, CodeEmptyFile)
	_, err = parse(t, []byte("\n\n   \t"), "blank.txt")
	requireCode(t, err, CodeEmptyFile)
	garbage := []byte("\x00\x01\x02\x03\xff\xfe\xfd binary \x00\x00\x10\x80")
	_, err = parse(t, garbage, "data.bin")
	requireCode(t, err, CodeUnsupportedType)
}

func TestParseDeterministic(t *testing.T) {
	inputs := []struct {
		name string
		data []byte
	}{
		{"a.docx", buildDOCX(t, wp("Heading1", "T")+wtable([]string{"a", "b"}, []string{"1", "2"}), "")},
		{"a.html", []byte("<html><body><h2>x</h2><table><tr><td>1</td><td>2</td></tr></table></body></html>")},
		{"a.md", []byte("# x\r\ny")},
	}
	for _, in := range inputs {
		a, err1 := parse(t, in.data, in.name)
		b, err2 := parse(t, in.data, in.name)
		if err1 != nil || err2 != nil || a != b {
			t.Fatalf("%s: not deterministic: %v %v\n%q\n%q", in.name, err1, err2, a.Markdown, b.Markdown)
		}
	}
}

func TestParseCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := shared().Parse(ctx, []byte("hello"), "a.txt")
	var fe *fault.Error
	if !errors.As(err, &fe) || fe.Kind != fault.Transient || fe.Code != "CANCELED" {
		t.Fatalf("want transient CANCELED, got %v", err)
	}
}

func TestCrashErrorIsPermanent(t *testing.T) {
	fe := crashError(MIMEPDF, "index out of range [3] with length 2")
	if fe.Kind != fault.Permanent || fe.Code != CodePDFCorrupt {
		t.Fatalf("%+v", fe)
	}
	requireReadable(t, fe.Message)
}
