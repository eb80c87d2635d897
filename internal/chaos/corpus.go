package chaos

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/docpipe/docpipe/internal/pdfgen"
)

// Outcome is what a document of the set must end as.
type Outcome int

const (
	// Complete: accepted, and its content is searchable exactly once (for a content
	// duplicate: exactly one document of its group is complete, the others are
	// duplicates of it).
	Complete Outcome = iota
	// Rejected: the upload is refused with RejectStatus and problem code Code.
	Rejected
	// Failed: accepted, and the run ends dead-lettered in Status with last_error Code.
	Failed
)

// Doc is one upload of the set.
type Doc struct {
	Name string
	Data []byte
	SHA  string // hex sha256 of Data
	Kind string // pdf, big-pdf, docx, html, md, txt, bad
	// Group names the parsed content: documents with the same group are exact or
	// content duplicates of each other and share one expectation of chunks.
	Group  string
	Expect Outcome
	// RejectStatus and Code for Rejected; Status and Code for Failed.
	RejectStatus int
	Status       string
	Code         string
	// ExactOf is the index of an earlier upload of the same bytes (-1: none).
	ExactOf int
}

// CorpusOptions say where the fixed files are.
type CorpusOptions struct {
	CorpusDir  string // testdata/corpus: the 232-page PDF and the corrupt-* files
	SamplesDir string // samples/: one document of each kind
}

// badFiles are the corpus' corrupt files: the API refuses them (sniffing), with
// these answers.
var badFiles = []struct {
	name, status, code string
	reject             int
}{
	{name: "corrupt-not-a-pdf.pdf", reject: 415, code: "TYPE_MISMATCH"},
	{name: "corrupt-truncated.pdf", reject: 415, code: "TYPE_MISMATCH"},
	{name: "corrupt-not-a-zip.docx", reject: 422, code: "CORRUPT_FILE"},
}

// blank is a markdown file of blank lines: refused as empty at the door.
var blank = []byte("\n\n   \n\t\n\n")

// generatedBad are documents that pass the upload checks and fail in a stage.
var generatedBad = []struct {
	name, status, code string
	data               []byte
}{
	// A PDF header on garbage: the remote parser reports an error.
	{name: "bad-garbage.pdf", status: "failed_parse", code: "LLAMAPARSE_JOB_FAILED",
		data: []byte("%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Pages 9 0 R >>\nendobj\ngarbage that is not a PDF body\n")},
	// HTML whose only text is a zero-width space: nothing left after normalization.
	{name: "bad-no-text.html", status: "failed_parse", code: "EMPTY_CONTENT",
		data: []byte("<!DOCTYPE html>\n<html><body><p>\u200b</p></body></html>\n")},
}

// Corpus builds the document set of n uploads for seed: the 232-page PDF once,
// the corrupt files, the samples, then generated one-page PDFs, DOCX, HTML,
// markdown and text files of varied length, about 5% exact duplicates (the same
// bytes again) and 5% content duplicates (different bytes, same parsed content).
// The same n and seed always give the same bytes in the same order.
func Corpus(o CorpusOptions, n int, seed int64) ([]Doc, error) {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x636861_6f73))
	var docs []Doc
	add := func(d Doc) {
		sum := sha256.Sum256(d.Data)
		d.SHA = hex.EncodeToString(sum[:])
		if d.Group == "" {
			d.Group = d.SHA[:16]
		}
		docs = append(docs, d)
	}
	read := func(dir, name string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("chaos corpus: %w (run from the repository root, or set the corpus and samples folders)", err)
		}
		return b, nil
	}

	big, err := read(o.CorpusDir, "scan_classic_hmo.pdf")
	if err != nil {
		return nil, err
	}
	add(Doc{Name: "scan_classic_hmo.pdf", Data: big, Kind: "big-pdf"})
	for _, b := range badFiles {
		data, err := read(o.CorpusDir, b.name)
		if err != nil {
			return nil, err
		}
		add(Doc{Name: b.name, Data: data, Kind: "bad", Expect: Rejected, RejectStatus: b.reject, Code: b.code})
	}
	add(Doc{Name: "bad-blank.md", Data: blank, Kind: "bad", Expect: Rejected, RejectStatus: 422, Code: "EMPTY_FILE"})
	for _, b := range generatedBad {
		add(Doc{Name: b.name, Data: b.data, Kind: "bad", Expect: Failed, Status: b.status, Code: b.code})
	}
	for _, s := range []struct{ name, kind string }{
		{"sample-policy.pdf", "pdf"}, {"dental-vision-rider.docx", "docx"}, {"faq.html", "html"},
		{"plan-summary.md", "md"}, {"claims-notes.txt", "txt"},
	} {
		data, err := read(o.SamplesDir, s.name)
		if err != nil {
			return nil, err
		}
		add(Doc{Name: s.name, Data: data, Kind: s.kind})
	}
	if n < len(docs) {
		docs = docs[:n]
	}

	kinds := []string{"pdf", "md", "docx", "html", "txt", "pdf", "md"}
	for i := 0; len(docs) < n; i++ {
		switch r := rng.IntN(100); {
		case r < 5 && len(docs) > 1: // the same bytes again
			j := goodIndex(docs, rng, nil)
			d := docs[j]
			d.Name = "again-" + d.Name
			docs = append(docs, d)
		case r < 10: // the same content in other bytes
			j := goodIndex(docs, rng, func(d Doc) bool { return d.Kind == "md" || d.Kind == "txt" })
			if j < 0 {
				continue
			}
			d := docs[j]
			add(Doc{Name: fmt.Sprintf("same-content-%04d-%s", i, d.Name), Data: reformat(d.Data, i), Kind: d.Kind, Group: d.Group})
		default:
			kind := kinds[rng.IntN(len(kinds))]
			name, data := generate(kind, seed, i, rng)
			add(Doc{Name: name, Data: data, Kind: kind})
		}
	}
	// Arrival order: the big PDF first (it is in flight through most faults), the rest
	// shuffled, an exact duplicate never before its original.
	rest := docs[1:]
	rng.Shuffle(len(rest), func(a, b int) { rest[a], rest[b] = rest[b], rest[a] })
	for i := range docs {
		docs[i].ExactOf = indexOfSHA(docs, docs[i].SHA, i)
	}
	return docs, nil
}

// goodIndex picks a document expected to complete (and matching ok, when given); -1 if none.
func goodIndex(docs []Doc, rng *rand.Rand, ok func(Doc) bool) int {
	var idx []int
	for i, d := range docs {
		if d.Expect == Complete && !strings.HasPrefix(d.Name, "again-") && (ok == nil || ok(d)) {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return -1
	}
	return idx[rng.IntN(len(idx))]
}

// indexOfSHA is the first document before i with this sha, or -1 when i is the first.
func indexOfSHA(docs []Doc, sha string, i int) int {
	for j := range i {
		if docs[j].SHA == sha {
			return j
		}
	}
	return -1
}

// reformat changes the bytes but not the normalized parsed content: CRLF line ends,
// trailing spaces, extra blank lines, a zero-width space.
func reformat(data []byte, i int) []byte {
	s := string(data)
	switch i % 3 {
	case 0:
		s = strings.ReplaceAll(s, "\n", "\r\n")
	case 1:
		s = strings.ReplaceAll(s, "\n", "  \n")
	default:
		s = "\n\n" + strings.ReplaceAll(s, "\n\n", "\n\n\n") + "\u200b\n"
	}
	return []byte(s)
}

var topics = []string{"deductible", "copay", "coinsurance", "prior authorization", "network pharmacy",
	"out-of-pocket maximum", "emergency care", "mental health", "vision", "dental", "hearing", "telehealth"}

// paragraphs is varied plain text: mostly short documents, a few long ones.
func paragraphs(seed int64, i int, rng *rand.Rand) (title string, sections [][2]string) {
	n := 1 + rng.IntN(4)
	if rng.IntN(10) == 0 {
		n = 8 + rng.IntN(12) // several chunks
	}
	title = fmt.Sprintf("Member notice %d-%06d", seed, i)
	for s := range n {
		topic := topics[rng.IntN(len(topics))]
		var b strings.Builder
		for k := range 1 + rng.IntN(4) {
			fmt.Fprintf(&b, "For %s, notice %d section %d sentence %d: members pay $%d after the plan year's deductible of $%d, "+
				"and %d%% coinsurance applies to services from providers outside the network. ",
				topic, i, s, k, 5+rng.IntN(95), 250+rng.IntN(3000), 10+rng.IntN(40))
		}
		sections = append(sections, [2]string{strings.ToUpper(topic[:1]) + topic[1:], b.String()})
	}
	return title, sections
}

// generate makes document i of a kind.
func generate(kind string, seed int64, i int, rng *rand.Rand) (string, []byte) {
	base := fmt.Sprintf("gen-%06d", i)
	if kind == "pdf" {
		return base + ".pdf", pdfgen.OnePager(int(seed%1000)*1_000_000 + i)
	}
	title, sections := paragraphs(seed, i, rng)
	var b strings.Builder
	switch kind {
	case "md":
		fmt.Fprintf(&b, "# %s\n\n", title)
		for _, s := range sections {
			fmt.Fprintf(&b, "## %s\n\n%s\n\n", s[0], s[1])
		}
		return base + ".md", []byte(b.String())
	case "txt":
		fmt.Fprintf(&b, "%s\n\n", title)
		for _, s := range sections {
			fmt.Fprintf(&b, "%s\n%s\n\n", s[0], s[1])
		}
		return base + ".txt", []byte(b.String())
	case "html":
		fmt.Fprintf(&b, "<!DOCTYPE html>\n<html><head><title>%s</title></head><body>\n<h1>%s</h1>\n", title, title)
		for _, s := range sections {
			fmt.Fprintf(&b, "<h2>%s</h2>\n<p>%s</p>\n", s[0], s[1])
		}
		b.WriteString("</body></html>\n")
		return base + ".html", []byte(b.String())
	default: // docx
		return base + ".docx", docx(title, sections)
	}
}

// docx is a minimal Word document: a title and headed paragraphs.
func docx(title string, sections [][2]string) []byte {
	const ns = `xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"`
	esc := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")
	para := func(style, text string) string {
		ppr := ""
		if style != "" {
			ppr = `<w:pPr><w:pStyle w:val="` + style + `"/></w:pPr>`
		}
		return `<w:p>` + ppr + `<w:r><w:t xml:space="preserve">` + esc.Replace(text) + `</w:t></w:r></w:p>`
	}
	body := para("Heading1", title)
	for _, s := range sections {
		body += para("Heading2", s[0]) + para("", s[1])
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range [][2]string{
		{"[Content_Types].xml", `<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>`},
		{"_rels/.rels", `<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>`},
		{"word/document.xml", `<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document ` + ns + `><w:body>` + body + `</w:body></w:document>`},
	} {
		w, _ := zw.Create(e[0]) // writes to memory: cannot fail
		_, _ = w.Write([]byte(e[1]))
	}
	_ = zw.Close()
	return buf.Bytes()
}
