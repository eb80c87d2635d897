package parse

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"strconv"
	"strings"

	"github.com/docpipe/docpipe/internal/fault"
)

const (
	nsW       = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
	nsWStrict = "http://purl.oclc.org/ooxml/wordprocessingml/main"
	nsMC      = "http://schemas.openxmlformats.org/markup-compatibility/2006"

	// An entry that inflates more than this many times is not a document.
	// Real document.xml parts compress about 5-30x; DEFLATE's ceiling is ~1030x.
	maxCompressionRatio = 200
	// Entries smaller than this are not ratio-checked (tiny parts compress oddly).
	ratioCheckMinBytes = 1 << 20
	maxXMLDepth        = 2000
)

// skipW are subtrees whose content is not document text: deleted and
// moved-away revisions, old formatting kept by tracked changes, field codes,
// tab-stop definitions (whose w:tab is not a tab character).
var skipW = map[string]bool{
	"del": true, "moveFrom": true, "instrText": true, "delInstrText": true, "fldData": true,
	"pPrChange": true, "rPrChange": true, "tblPrChange": true, "trPrChange": true,
	"tcPrChange": true, "sectPrChange": true, "numberingChange": true, "tabs": true,
}

var errArchiveTooLarge = errors.New("decompressed size limit exceeded")

// budget counts decompressed bytes across all parts read from one archive.
type budget struct {
	limit, used int64
}

type budgetReader struct {
	r io.Reader
	b *budget
}

func (br *budgetReader) Read(p []byte) (int, error) {
	// Never ask for more than one byte past the limit, so an over-long entry
	// is detected without inflating it further.
	if rem := br.b.limit - br.b.used + 1; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := br.r.Read(p)
	br.b.used += int64(n)
	if br.b.used > br.b.limit {
		return n, errArchiveTooLarge
	}
	return n, err
}

func tooLarge(limit int64) error {
	return permanent(CodeArchiveTooLarge, nil,
		"the Word document expands to more than %s when unpacked, which is over the limit (it may be a zip bomb)",
		humanBytes(limit))
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + " GiB"
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// openPart checks an entry's declared sizes and opens it under the budget.
// Declared sizes can lie; the budget reader enforces the real count.
func openPart(f *zip.File, b *budget) (io.ReadCloser, error) {
	if f.UncompressedSize64 > uint64(b.limit-b.used) {
		return nil, tooLarge(b.limit)
	}
	if f.UncompressedSize64 >= ratioCheckMinBytes &&
		f.UncompressedSize64 > maxCompressionRatio*max(f.CompressedSize64, 1) {
		return nil, permanent(CodeArchiveTooLarge, nil,
			"the Word document is compressed %d to 1, which no real document is (it looks like a zip bomb)",
			f.UncompressedSize64/max(f.CompressedSize64, 1))
	}
	rc, err := f.Open()
	if err != nil {
		return nil, permanent(CodeDOCXCorrupt, err, "the Word document is damaged: part %s cannot be unpacked", f.Name)
	}
	return struct {
		io.Reader
		io.Closer
	}{&budgetReader{r: rc, b: b}, rc}, nil
}

func parseDOCX(ctx context.Context, data []byte, maxBytes int64) (string, error) {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return "", permanent(CodeDOCXCorrupt, err, "the Word document is damaged: its zip container cannot be read")
	}
	if len(zr.File) > maxZipEntries {
		return "", permanent(CodeArchiveTooLarge, nil,
			"the Word document contains %d files, more than the limit of %d (it may be a zip bomb)",
			len(zr.File), maxZipEntries)
	}
	var docPart, stylesPart *zip.File
	for _, f := range zr.File {
		switch f.Name {
		case "word/document.xml":
			docPart = f
		case "word/styles.xml":
			stylesPart = f
		}
	}
	if docPart == nil {
		return "", permanent(CodeDOCXCorrupt, nil, "the file is not a valid Word document: word/document.xml is missing")
	}
	b := &budget{limit: maxBytes}
	// Fail fast on the main part's declared size before reading anything.
	if docPart.UncompressedSize64 > uint64(maxBytes) {
		return "", tooLarge(maxBytes)
	}

	styles := map[string]styleInfo{}
	if stylesPart != nil {
		styles, err = readStyles(stylesPart, b)
		if err != nil {
			var fe *fault.Error
			if errors.As(err, &fe) && fe.Code == CodeArchiveTooLarge {
				return "", err
			}
			styles = map[string]styleInfo{} // headings then fall back to style ids
		}
	}

	rc, err := openPart(docPart, b)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	md, err := convertDocumentXML(ctx, rc, styles)
	if err != nil {
		var fe *fault.Error
		switch {
		case errors.Is(err, errArchiveTooLarge):
			return "", tooLarge(maxBytes)
		case errors.As(err, &fe):
			return "", fe
		case ctx.Err() != nil:
			return "", fault.Classify(ctx.Err())
		}
		return "", permanent(CodeDOCXCorrupt, err, "the Word document is damaged: its text (word/document.xml) is not valid XML")
	}
	return md, nil
}

// styleInfo is what matters about a paragraph style.
type styleInfo struct {
	name       string // lower case, e.g. "heading 1"
	basedOn    string
	outlineLvl int // 0-based, -1 if none
	list       bool
}

func readStyles(f *zip.File, b *budget) (map[string]styleInfo, error) {
	rc, err := openPart(f, b)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	styles := map[string]styleInfo{}
	d := xml.NewDecoder(rc)
	var id string
	var cur styleInfo
	depth := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return styles, nil
		}
		if err != nil {
			if errors.Is(err, errArchiveTooLarge) {
				return nil, tooLarge(b.limit)
			}
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth > maxXMLDepth {
				return nil, errors.New("XML nested too deeply")
			}
			if !isW(t.Name) {
				continue
			}
			switch t.Name.Local {
			case "style":
				id, cur = wAttr(t, "styleId"), styleInfo{outlineLvl: -1}
			case "name":
				cur.name = strings.ToLower(wAttr(t, "val"))
			case "basedOn":
				cur.basedOn = wAttr(t, "val")
			case "outlineLvl":
				if v, err := strconv.Atoi(wAttr(t, "val")); err == nil {
					cur.outlineLvl = v
				}
			case "numPr":
				cur.list = true
			}
		case xml.EndElement:
			depth--
			if isW(t.Name) && t.Name.Local == "style" && id != "" {
				styles[id] = cur
				id = ""
			}
		}
	}
}

// headingLevel returns 1-6 for heading/title styles, 0 otherwise.
func headingLevel(styleID string, styles map[string]styleInfo) int {
	for range 10 { // follow basedOn a few steps
		if styleID == "" {
			return 0
		}
		st, ok := styles[styleID]
		name := st.name
		if !ok {
			name = strings.ToLower(styleID)
		}
		if lvl := headingFromName(name); lvl > 0 {
			return lvl
		}
		if lvl := headingFromName(strings.ToLower(styleID)); lvl > 0 {
			return lvl
		}
		if ok && st.outlineLvl >= 0 && st.outlineLvl < 9 {
			return min(st.outlineLvl+1, 6)
		}
		if !ok {
			return 0
		}
		styleID = st.basedOn
	}
	return 0
}

func headingFromName(name string) int {
	if name == "title" {
		return 1
	}
	rest, ok := strings.CutPrefix(name, "heading")
	if !ok {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(rest))
	if err != nil || n < 1 || n > 9 {
		return 0
	}
	return min(n, 6)
}

func styleIsList(styleID string, styles map[string]styleInfo) bool {
	for range 10 {
		st, ok := styles[styleID]
		if !ok {
			return false
		}
		if st.list {
			return true
		}
		styleID = st.basedOn
	}
	return false
}

func isW(n xml.Name) bool {
	return n.Space == nsW || n.Space == nsWStrict || n.Space == "w"
}

func wAttr(t xml.StartElement, local string) string {
	for _, a := range t.Attr {
		if a.Name.Local == local && (isW(a.Name) || a.Name.Space == "") {
			return a.Value
		}
	}
	return ""
}

// paragraph collects one w:p.
type paragraph struct {
	text      strings.Builder
	style     string
	outline   int // -1 if none
	list      bool
	noList    bool // w:numId w:val="0" switches numbering off
	listLevel int
}

// cell collects the paragraphs of one table cell.
type cell struct {
	paras []string
	span  int
}

type docxTable struct {
	rows [][]*cell
}

type block struct {
	list bool
	text string
}

type docxConverter struct {
	styles map[string]styleInfo
	blocks []block
	paras  []*paragraph // stack: text boxes nest paragraphs in paragraphs
	tables []*docxTable // stack: tables nest in cells
	cells  []*cell      // stack, parallel to open w:tc elements
	inText bool         // inside w:t
}

func convertDocumentXML(ctx context.Context, r io.Reader, styles map[string]styleInfo) (string, error) {
	c := &docxConverter{styles: styles}
	d := xml.NewDecoder(r)
	depth, skipDepth := 0, 0 // skipDepth > 0: inside an ignored subtree
	for count := 0; ; count++ {
		if count%4096 == 0 && ctx.Err() != nil {
			return "", ctx.Err()
		}
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth > maxXMLDepth {
				return "", permanent(CodeDOCXCorrupt, nil, "the Word document is damaged: its XML is nested too deeply")
			}
			if skipDepth > 0 {
				continue
			}
			// Text boxes are written twice (mc:Choice and a legacy
			// mc:Fallback copy); read only the first.
			if t.Name.Space == nsMC && t.Name.Local == "Fallback" {
				skipDepth = depth
				continue
			}
			if isW(t.Name) {
				if skipW[t.Name.Local] {
					skipDepth = depth
					continue
				}
				c.start(t)
			}
		case xml.EndElement:
			if skipDepth > 0 {
				if depth == skipDepth {
					skipDepth = 0
				}
				depth--
				continue
			}
			depth--
			if isW(t.Name) {
				c.end(t.Name.Local)
			}
		case xml.CharData:
			if skipDepth == 0 && c.inText && len(c.paras) > 0 {
				c.paras[len(c.paras)-1].text.Write(t)
			}
		}
	}
	return c.render(), nil
}

func (c *docxConverter) para() *paragraph {
	if len(c.paras) == 0 {
		return nil
	}
	return c.paras[len(c.paras)-1]
}

func (c *docxConverter) start(t xml.StartElement) {
	p := c.para()
	switch t.Name.Local {
	case "p":
		c.paras = append(c.paras, &paragraph{outline: -1})
	case "pStyle":
		if p != nil {
			p.style = wAttr(t, "val")
		}
	case "numPr":
		if p != nil {
			p.list = true
		}
	case "ilvl":
		if p != nil {
			if v, err := strconv.Atoi(wAttr(t, "val")); err == nil && v >= 0 && v < 9 {
				p.listLevel = v
			}
		}
	case "numId":
		if p != nil && wAttr(t, "val") == "0" {
			p.noList = true
		}
	case "outlineLvl":
		if p != nil {
			if v, err := strconv.Atoi(wAttr(t, "val")); err == nil {
				p.outline = v
			}
		}
	case "t":
		c.inText = true
	case "tab", "ptab":
		if p != nil {
			p.text.WriteByte('\t')
		}
	case "br", "cr":
		if p != nil {
			p.text.WriteByte('\n')
		}
	case "noBreakHyphen":
		if p != nil {
			p.text.WriteByte('-')
		}
	case "tbl":
		c.tables = append(c.tables, &docxTable{})
	case "tr":
		if n := len(c.tables); n > 0 {
			tb := c.tables[n-1]
			tb.rows = append(tb.rows, nil)
		}
	case "tc":
		c.cells = append(c.cells, &cell{span: 1})
	case "gridSpan":
		if n := len(c.cells); n > 0 {
			if v, err := strconv.Atoi(wAttr(t, "val")); err == nil && v > 1 && v <= 64 {
				c.cells[n-1].span = v
			}
		}
	}
}

func (c *docxConverter) end(local string) {
	switch local {
	case "t":
		c.inText = false
	case "p":
		n := len(c.paras)
		if n == 0 {
			return
		}
		p := c.paras[n-1]
		c.paras = c.paras[:n-1]
		c.emitParagraph(p)
	case "tc":
		n := len(c.cells)
		if n == 0 {
			return
		}
		cl := c.cells[n-1]
		c.cells = c.cells[:n-1]
		if tn := len(c.tables); tn > 0 {
			tb := c.tables[tn-1]
			if len(tb.rows) == 0 {
				tb.rows = append(tb.rows, nil)
			}
			row := &tb.rows[len(tb.rows)-1]
			*row = append(*row, cl)
			for range cl.span - 1 {
				*row = append(*row, &cell{})
			}
		}
	case "tbl":
		n := len(c.tables)
		if n == 0 {
			return
		}
		tb := c.tables[n-1]
		c.tables = c.tables[:n-1]
		if len(c.cells) > 0 {
			// A table inside a cell is flattened into that cell's text.
			var parts []string
			for _, row := range tb.rows {
				for _, cl := range row {
					if s := strings.Join(cl.paras, " "); s != "" {
						parts = append(parts, s)
					}
				}
			}
			if len(parts) > 0 {
				cl := c.cells[len(c.cells)-1]
				cl.paras = append(cl.paras, strings.Join(parts, " "))
			}
			return
		}
		if md := renderTable(tb); md != "" {
			c.blocks = append(c.blocks, block{text: md})
		}
	}
}

func (c *docxConverter) emitParagraph(p *paragraph) {
	text := strings.TrimRight(p.text.String(), " \t\n")
	if strings.TrimSpace(text) == "" {
		return
	}
	if len(c.cells) > 0 {
		// Table cells hold single-line text.
		cl := c.cells[len(c.cells)-1]
		cl.paras = append(cl.paras, oneLine(text))
		return
	}
	level := 0
	if p.outline >= 0 && p.outline < 9 {
		level = min(p.outline+1, 6)
	} else {
		level = headingLevel(p.style, c.styles)
	}
	switch {
	case level > 0:
		c.blocks = append(c.blocks, block{text: strings.Repeat("#", level) + " " + oneLine(text)})
	case !p.noList && (p.list || styleIsList(p.style, c.styles)):
		indent := strings.Repeat("  ", p.listLevel)
		body := strings.ReplaceAll(strings.TrimLeft(text, " \t"), "\n", "\n"+indent+"  ")
		c.blocks = append(c.blocks, block{list: true, text: indent + "- " + body})
	default:
		c.blocks = append(c.blocks, block{text: text})
	}
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func renderTable(tb *docxTable) string {
	cols := 0
	for _, row := range tb.rows {
		cols = max(cols, len(row))
	}
	if cols == 0 {
		return ""
	}
	cellText := func(cl *cell) string {
		s := strings.Join(cl.paras, " ")
		s = strings.ReplaceAll(s, `\`, `\\`)
		return strings.ReplaceAll(s, "|", `\|`)
	}
	var rows [][]string
	for _, row := range tb.rows {
		r := make([]string, cols)
		empty := true
		for i, cl := range row {
			r[i] = cellText(cl)
			if r[i] != "" {
				empty = false
			}
		}
		if !empty {
			rows = append(rows, r)
		}
	}
	if len(rows) == 0 {
		return ""
	}
	if cols == 1 && len(rows) == 1 {
		// A one-cell layout table is just a box around text.
		return rows[0][0]
	}
	var b strings.Builder
	writeRow := func(r []string) {
		b.WriteString("|")
		for _, s := range r {
			b.WriteString(" ")
			b.WriteString(s)
			b.WriteString(" |")
		}
		b.WriteString("\n")
	}
	writeRow(rows[0])
	b.WriteString("|")
	for range cols {
		b.WriteString(" --- |")
	}
	b.WriteString("\n")
	for _, r := range rows[1:] {
		writeRow(r)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func (c *docxConverter) render() string {
	var b strings.Builder
	for i, bl := range c.blocks {
		if i > 0 {
			if bl.list && c.blocks[i-1].list {
				b.WriteString("\n")
			} else {
				b.WriteString("\n\n")
			}
		}
		b.WriteString(bl.text)
	}
	return finishMarkdown(b.String())
}
