package parse

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

func TestDOCX(t *testing.T) {
	// Localised style ids (as German Word writes them) resolved through
	// styles.xml, plus ids that speak for themselves without styles.xml.
	styles := `<w:style w:type="paragraph" w:styleId="Titel"><w:name w:val="Title"/></w:style>` +
		`<w:style w:type="paragraph" w:styleId="berschrift1"><w:name w:val="heading 1"/></w:style>` +
		`<w:style w:type="paragraph" w:styleId="Custom3"><w:name w:val="My Section"/><w:pPr><w:outlineLvl w:val="2"/></w:pPr></w:style>`
	body := wp("Titel", "Policy Handbook") +
		wp("berschrift1", "Coverage") +
		`<w:p><w:pPr><w:tabs><w:tab w:val="left" w:pos="720"/></w:tabs></w:pPr>` +
		`<w:r><w:t xml:space="preserve">Plain </w:t></w:r><w:r><w:rPr><w:b/></w:rPr><w:t>bold</w:t></w:r>` +
		`<w:r><w:tab/><w:t>after tab</w:t><w:br/><w:t>second line</w:t></w:r></w:p>` +
		// tracked changes: deleted text and its tab must not appear; field code neither
		`<w:p><w:r><w:t xml:space="preserve">Kept </w:t></w:r><w:del w:id="1" w:author="x"><w:r><w:delText>deleted</w:delText><w:tab/></w:r></w:del>` +
		`<w:ins w:id="2" w:author="x"><w:r><w:t>inserted</w:t></w:r></w:ins>` +
		`<w:r><w:fldChar w:fldCharType="begin"/></w:r><w:r><w:instrText> PAGE </w:instrText></w:r><w:r><w:fldChar w:fldCharType="separate"/></w:r><w:r><w:t xml:space="preserve"> p7</w:t></w:r><w:r><w:fldChar w:fldCharType="end"/></w:r></w:p>` +
		wli(0, "first item") + wli(1, "nested item") + wli(0, "second item") +
		`<w:p><w:pPr><w:numPr><w:ilvl w:val="0"/><w:numId w:val="0"/></w:numPr></w:pPr><w:r><w:t>numbering switched off</w:t></w:r></w:p>` +
		wp("Heading2", "Costs") +
		wtable([]string{"Service", "Copay"}, []string{"Doctor visit", "$20"}, []string{"", ""}, []string{"Emergency | ER", "$100"}) +
		wp("Custom3", "Outline level heading") +
		// a text box is stored twice: mc:Choice and mc:Fallback
		`<w:p><w:r><mc:AlternateContent><mc:Choice Requires="wps"><w:drawing><w:txbxContent><w:p><w:r><w:t>Box text</w:t></w:r></w:p></w:txbxContent></w:drawing></mc:Choice>` +
		`<mc:Fallback><w:pict><w:txbxContent><w:p><w:r><w:t>Box text</w:t></w:r></w:p></w:txbxContent></w:pict></mc:Fallback></mc:AlternateContent></w:r></w:p>` +
		wp("", "") + wp("", "&lt;!-- page 9 --&gt;") +
		wp("Heading7", "Deep heading") +
		wp("", "The end &amp; more.")
	doc, err := parse(t, buildDOCX(t, body, styles), "handbook.docx")
	if err != nil {
		t.Fatal(err)
	}
	want := "# Policy Handbook\n\n" +
		"# Coverage\n\n" +
		"Plain bold\tafter tab\nsecond line\n\n" +
		"Kept inserted p7\n\n" +
		"- first item\n  - nested item\n- second item\n\n" +
		"numbering switched off\n\n" +
		"## Costs\n\n" +
		"| Service | Copay |\n| --- | --- |\n| Doctor visit | $20 |\n| Emergency \\| ER | $100 |\n\n" +
		"### Outline level heading\n\n" +
		"Box text\n\n" +
		"\\<!-- page 9 -->\n\n" +
		"###### Deep heading\n\n" +
		"The end & more.\n"
	if doc.Markdown != want {
		t.Fatalf("markdown mismatch\n--- got\n%s\n--- want\n%s", doc.Markdown, want)
	}
	if doc.MIME != MIMEDOCX || doc.Parser != ParserDOCX || doc.ParserVersion != "1" || doc.Pages != 0 {
		t.Fatalf("metadata: %+v", doc)
	}
}

func TestDOCXNoText(t *testing.T) {
	_, err := parse(t, buildDOCX(t, wp("", "  ")+wtable([]string{"", ""}), ""), "blank.docx")
	requireCode(t, err, CodeNoText)
}

func TestDOCXBadXML(t *testing.T) {
	data := buildZip(t, [2]string{"word/document.xml", `<w:document xmlns:w="x"><w:body><w:p>`})
	_, err := parse(t, data, "bad.docx")
	requireCode(t, err, CodeDOCXCorrupt)
}

// writeBomb streams a docx whose document.xml inflates to size bytes, without
// holding the inflated XML in memory.
func writeBomb(t testing.TB, size int64) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.Create("word/document.xml")
	if err != nil {
		t.Fatal(err)
	}
	head := `<w:document ` + docxNS + `><w:body><w:p><w:r><w:t>`
	tail := `</w:t></w:r></w:p></w:body></w:document>`
	io.WriteString(w, head)
	chunk := bytes.Repeat([]byte("0"), 1<<20)
	for left := size - int64(len(head)+len(tail)); left > 0; {
		n := min(left, int64(len(chunk)))
		w.Write(chunk[:n])
		left -= n
	}
	io.WriteString(w, tail)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// allocDuring returns the bytes allocated while f runs.
func allocDuring(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestDOCXZipBomb(t *testing.T) {
	size := int64(300 << 20)
	if testing.Short() || raceEnabled {
		size = 64 << 20 // deflating 300 MiB is slow under -race
	}
	bomb := writeBomb(t, size)
	t.Logf("bomb: %d bytes zipped, %d MiB inflated", len(bomb), size>>20)
	l := NewLocal(Options{MaxExtractBytes: 1 << 20})
	defer l.Close()

	var err error
	alloc := allocDuring(func() { _, err = l.Parse(context.Background(), bomb, "bomb.docx") })
	fe := requireCode(t, err, CodeArchiveTooLarge)
	if !strings.Contains(fe.Message, "1 MiB") {
		t.Errorf("message should state the limit: %q", fe.Message)
	}
	if alloc > 16<<20 {
		t.Fatalf("allocated %d MiB rejecting the bomb", alloc>>20)
	}

	// With the default 200 MiB limit the declared size is over it.
	_, err = shared().Parse(context.Background(), bomb, "bomb.docx")
	requireCode(t, err, CodeArchiveTooLarge)
}

// A bomb under the size limit is still refused for its absurd ratio.
func TestDOCXZipBombRatio(t *testing.T) {
	bomb := writeBomb(t, 16<<20)
	var err error
	alloc := allocDuring(func() { _, err = parse(t, bomb, "bomb.docx") })
	fe := requireCode(t, err, CodeArchiveTooLarge)
	if !strings.Contains(fe.Message, "compressed") {
		t.Errorf("message: %q", fe.Message)
	}
	if alloc > 1<<20 {
		t.Fatalf("allocated %d KiB", alloc>>10)
	}
}

// A lying header (small declared size, big real content) must be stopped by
// the reading side without inflating everything.
func TestDOCXZipBombLyingSize(t *testing.T) {
	bomb := writeBomb(t, 32<<20)
	// Patch the declared uncompressed size in the central directory to 1000.
	cd := bytes.LastIndex(bomb, []byte("PK\x01\x02"))
	if cd < 0 {
		t.Fatal("no central directory")
	}
	binary.LittleEndian.PutUint32(bomb[cd+24:], 1000)
	zr, err := zip.NewReader(bytes.NewReader(bomb), int64(len(bomb)))
	if err != nil || zr.File[0].UncompressedSize64 != 1000 {
		t.Fatalf("patch failed: %v", err)
	}
	l := NewLocal(Options{MaxExtractBytes: 1 << 20})
	defer l.Close()
	alloc := allocDuring(func() { _, err = l.Parse(context.Background(), bomb, "bomb.docx") })
	if err == nil {
		t.Fatal("want error")
	}
	requireCode(t, err, CodeDOCXCorrupt) // size does not match the header
	if alloc > 16<<20 {
		t.Fatalf("allocated %d MiB", alloc>>20)
	}
}

// The budget covers all parts read (styles.xml + document.xml).
func TestDOCXBudgetAcrossParts(t *testing.T) {
	pad := strings.Repeat(`<w:style w:type="paragraph" w:styleId="S"><w:name w:val="s"/></w:style>`, 8000) // ~560 KB
	data := buildDOCX(t, strings.Repeat(wp("", strings.Repeat("text ", 20)), 5000), pad)                   // ~600 KB
	l := NewLocal(Options{MaxExtractBytes: 1 << 20})
	defer l.Close()
	_, err := l.Parse(context.Background(), data, "big.docx")
	requireCode(t, err, CodeArchiveTooLarge)
	l2 := NewLocal(Options{MaxExtractBytes: 4 << 20})
	defer l2.Close()
	if _, err := l2.Parse(context.Background(), data, "big.docx"); err != nil {
		t.Fatalf("under the limit: %v", err)
	}
}

func TestBudgetReader(t *testing.T) {
	b := &budget{limit: 1000}
	r := &budgetReader{r: io.LimitReader(zeroReader{}, 1<<30), b: b}
	n, err := io.Copy(io.Discard, r)
	if !errors.Is(err, errArchiveTooLarge) {
		t.Fatalf("err = %v", err)
	}
	if n > 1001 {
		t.Fatalf("read %d bytes past a 1000 byte limit", n)
	}
	b = &budget{limit: 1000}
	n, err = io.Copy(io.Discard, &budgetReader{r: strings.NewReader(strings.Repeat("x", 1000)), b: b})
	if err != nil || n != 1000 {
		t.Fatalf("exactly at the limit: %d, %v", n, err)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestDOCXTooManyEntries(t *testing.T) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("word/document.xml")
	io.WriteString(w, `<w:document `+docxNS+`><w:body>`+wp("", "hi")+`</w:body></w:document>`)
	for i := range maxZipEntries + 1 {
		zw.CreateHeader(&zip.FileHeader{Name: "x/" + strconv.Itoa(i), Method: zip.Store})
	}
	zw.Close()
	_, err := parse(t, buf.Bytes(), "many.docx")
	requireCode(t, err, CodeArchiveTooLarge)
}
