package chunk

import (
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/text"
)

// maxHeadingRunes bounds what is accepted as a heading. Longer "headings" are
// almost always PDF text that happens to look like a setext heading (a
// paragraph followed by a line of dashes), so they are kept as body text.
const maxHeadingRunes = 200

// pageMark records that the page numbered page starts at byte off of the
// cleaned source.
type pageMark struct{ off, page int }

// source is the cleaned markdown the chunker works on: valid UTF-8 without
// NUL bytes, "\n" line endings, no trailing whitespace on any line, at most
// one blank line in a row, and the page markers removed (their positions are
// kept in marks).
type source struct {
	text  string
	marks []pageMark
}

func preprocess(md string) *source {
	if !utf8.ValidString(md) {
		md = strings.ToValidUTF8(md, "\uFFFD")
	}
	if strings.IndexByte(md, 0) >= 0 {
		md = strings.ReplaceAll(md, "\x00", "")
	}
	if strings.IndexByte(md, '\r') >= 0 {
		md = strings.ReplaceAll(md, "\r\n", "\n")
		md = strings.ReplaceAll(md, "\r", "\n")
	}
	var b strings.Builder
	b.Grow(len(md) + 1)
	var marks []pageMark
	blank := true // the last line written was blank, or nothing was written
	for len(md) > 0 {
		var line string
		if i := strings.IndexByte(md, '\n'); i >= 0 {
			line, md = md[:i], md[i+1:]
		} else {
			line, md = md, ""
		}
		line = strings.TrimRightFunc(line, unicode.IsSpace)
		if p, ok := pageMarker(line); ok {
			marks = append(marks, pageMark{off: b.Len(), page: p})
			continue
		}
		if line == "" {
			if !blank {
				b.WriteByte('\n')
				blank = true
			}
			continue
		}
		blank = false
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return &source{text: b.String(), marks: marks}
}

// pageMarker reports whether line is a page marker "<!-- page N -->"
// (surrounding whitespace allowed) and returns N.
func pageMarker(line string) (int, bool) {
	const pre, suf = "<!-- page ", " -->"
	line = strings.TrimSpace(line)
	if len(line) < len(pre)+len(suf)+1 || len(line) > len(pre)+len(suf)+9 ||
		!strings.HasPrefix(line, pre) || !strings.HasSuffix(line, suf) {
		return 0, false
	}
	num := line[len(pre) : len(line)-len(suf)]
	for i := 0; i < len(num); i++ {
		if num[i] < '0' || num[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(num)
	if err != nil {
		return 0, false
	}
	return n, true
}

// pageAt returns the page that byte off of the cleaned source is on, or 0
// when no page marker precedes it.
func (s *source) pageAt(off int) int {
	i := sort.Search(len(s.marks), func(i int) bool { return s.marks[i].off > off })
	if i == 0 {
		return 0
	}
	return s.marks[i-1].page
}

// pages returns the page span of the byte range [start, end).
func (s *source) pages(start, end int) (int, int) {
	if len(s.marks) == 0 || end <= start {
		return 0, 0
	}
	return s.pageAt(start), s.pageAt(end - 1)
}

// block is one top-level markdown block: a heading, or a byte range of body
// text in the cleaned source.
type block struct {
	start, end int // body: trimmed byte range; heading: the heading's first line
	heading    bool
	level      int
	title      string
}

// splitBlocks parses the cleaned source with goldmark and cuts it into
// top-level blocks. Every byte of the source belongs to exactly one block:
// a block runs from the line its node starts on to the line the next
// top-level node starts on, so nothing is lost even for constructs whose
// nodes do not record their full extent (fence lines, list markers, link
// reference definitions).
func splitBlocks(src string) []block {
	if strings.TrimSpace(src) == "" {
		return nil
	}
	buf := []byte(src)
	doc := goldmark.DefaultParser().Parse(text.NewReader(buf))

	type boundary struct {
		off  int
		node ast.Node
	}
	var bounds []boundary
	last := -1
	for n := doc.FirstChild(); n != nil; n = n.NextSibling() {
		p := n.Pos()
		if p < 0 || p > len(src) {
			continue
		}
		ls := lineStart(src, p)
		if ls <= last {
			continue
		}
		bounds = append(bounds, boundary{off: ls, node: n})
		last = ls
	}
	if len(bounds) == 0 || bounds[0].off > 0 {
		bounds = append([]boundary{{off: 0}}, bounds...)
	}

	var out []block
	body := func(start, end int) {
		start, end = trimRange(src, start, end)
		if start < end {
			out = append(out, block{start: start, end: end})
		}
	}
	for i, b := range bounds {
		end := len(src)
		if i+1 < len(bounds) {
			end = bounds[i+1].off
		}
		h, ok := b.node.(*ast.Heading)
		if !ok {
			body(b.off, end)
			continue
		}
		title := headingText(h, buf)
		if title == "" || utf8.RuneCountInString(title) > maxHeadingRunes {
			body(b.off, end)
			continue
		}
		hEnd := headingEnd(src, b.off, h)
		if hEnd > end {
			hEnd = end
		}
		out = append(out, block{start: b.off, end: hEnd, heading: true, level: h.Level, title: title})
		body(hEnd, end) // anything goldmark attached after the heading lines
	}
	return out
}

// headingEnd returns the offset just past the heading's source lines: one
// line for an ATX heading, the text lines plus the underline for setext.
func headingEnd(src string, start int, h *ast.Heading) int {
	atx := strings.HasPrefix(strings.TrimLeft(src[start:min(len(src), start+8)], " "), "#")
	end := lineEnd(src, start)
	if atx {
		return end
	}
	if l := h.Lines(); l.Len() > 0 {
		end = lineEnd(src, l.At(l.Len()-1).Start)
	}
	return lineEnd(src, end) // the underline
}

// lineStart returns the offset of the start of the line containing off.
func lineStart(src string, off int) int {
	if off > len(src) {
		off = len(src)
	}
	return strings.LastIndexByte(src[:off], '\n') + 1
}

// lineEnd returns the offset just past the newline ending the line that
// contains off (or len(src)).
func lineEnd(src string, off int) int {
	if off >= len(src) {
		return len(src)
	}
	i := strings.IndexByte(src[off:], '\n')
	if i < 0 {
		return len(src)
	}
	return off + i + 1
}

// trimRange drops blank lines at the start and whitespace at the end of
// src[start:end]. Indentation of the first line is kept (indented code).
func trimRange(src string, start, end int) (int, int) {
	for start < end && src[start] == '\n' {
		start++
	}
	for end > start {
		r, n := utf8.DecodeLastRuneInString(src[start:end])
		if !unicode.IsSpace(r) {
			break
		}
		end -= n
	}
	if strings.TrimSpace(src[start:end]) == "" {
		return start, start
	}
	return start, end
}

// headingText returns the plain text of a heading: inline markup removed,
// whitespace collapsed.
func headingText(h *ast.Heading, src []byte) string {
	var b strings.Builder
	inlineText(h, src, &b)
	return strings.Join(strings.Fields(b.String()), " ")
}

func inlineText(n ast.Node, src []byte, b *strings.Builder) {
	for c := n.FirstChild(); c != nil; c = c.NextSibling() {
		switch c := c.(type) {
		case *ast.Text:
			b.Write(c.Value(src))
			if c.SoftLineBreak() || c.HardLineBreak() {
				b.WriteByte(' ')
			}
		case *ast.String:
			b.Write(c.Value)
		case *ast.AutoLink:
			b.Write(c.Label(src))
		case *ast.RawHTML:
			// tags carry no heading text
		default:
			inlineText(c, src, b)
		}
	}
}
