package parse

import (
	"regexp"
	"strconv"
	"strings"
)

// pageMarkerRE matches a line that would read as one of our page markers.
// Such lines in the content are escaped so page attribution stays correct.
var pageMarkerRE = regexp.MustCompile(`(?i)^\s*<!--\s*page\s+\d+\s*-->\s*$`)

// dotLeaderRE matches table-of-contents leaders: ". . . . ." or ".....".
var dotLeaderRE = regexp.MustCompile(`(?: ?\.){5,}`)

func pageMarker(n int) string {
	return "<!-- page " + strconv.Itoa(n) + " -->"
}

func isBlank(s string) bool { return strings.TrimSpace(s) == "" }

func normalizeNewlines(s string) string {
	if !strings.Contains(s, "\r") {
		return s
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.ReplaceAll(s, "\r", "\n")
}

// normalizePlain is the pass-through for Markdown and plain text: line
// endings, BOM, escaped page-marker look-alikes, no leading/trailing blank
// lines, one final newline. Everything else (trailing double spaces, code
// blocks, blank lines) is kept as written.
func normalizePlain(s string) string {
	s = strings.TrimPrefix(normalizeNewlines(s), "\ufeff")
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if pageMarkerRE.MatchString(l) {
			lines[i] = `\` + strings.TrimLeft(l, " \t")
		}
	}
	return finishLines(lines, -1)
}

// finishMarkdown tidies converter output (HTML, DOCX): line endings, trailing
// spaces, escaped page-marker look-alikes, at most two blank lines in a row.
func finishMarkdown(s string) string {
	s = strings.TrimPrefix(normalizeNewlines(s), "\ufeff")
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		l = strings.TrimRight(l, " \t")
		if pageMarkerRE.MatchString(l) {
			l = `\` + strings.TrimLeft(l, " \t")
		}
		lines[i] = l
	}
	return finishLines(lines, 2)
}

// cleanPDFPage is the light cleanup of one page of pdfium text.
func cleanPDFPage(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range normalizeNewlines(s) {
		switch {
		case r == '\n' || r == '\t':
			b.WriteRune(r)
		case r == 0xFFFE:
			// pdfium joins a word broken across lines at a hyphen and marks
			// the hyphen with U+FFFE; the source character was '-'.
			b.WriteByte('-')
		case r == 0xA0:
			b.WriteByte(' ')
		case r == 0xAD || r == 0xFEFF || r == 0xFFFF:
			// soft hyphen, BOM, non-character: drop
		case r < 0x20 || (r >= 0x7F && r < 0xA0):
			// NUL, form feed and other control characters: drop
		default:
			b.WriteRune(r)
		}
	}
	lines := strings.Split(b.String(), "\n")
	for i, l := range lines {
		l = strings.TrimRight(l, " \t")
		l = dotLeaderRE.ReplaceAllString(l, " ...")
		l = bulletToMarkdown(l)
		if pageMarkerRE.MatchString(l) {
			l = `\` + strings.TrimLeft(l, " \t")
		}
		lines[i] = l
	}
	return strings.TrimSuffix(finishLines(lines, 2), "\n")
}

// bulletToMarkdown turns a leading bullet glyph into a markdown list marker.
func bulletToMarkdown(l string) string {
	t := strings.TrimLeft(l, " \t")
	for _, g := range []string{"•", "●", "▪", "◦", "‣", "\uf0b7", "\uf0a7"} {
		if rest, ok := strings.CutPrefix(t, g); ok {
			rest = strings.TrimLeft(rest, " \t")
			if rest == "" {
				return l
			}
			return "- " + rest
		}
	}
	return l
}

// finishLines drops leading and trailing blank lines, limits runs of blank
// lines to maxBlank (negative = unlimited) and ends with one newline.
func finishLines(lines []string, maxBlank int) string {
	start, end := 0, len(lines)
	for start < end && strings.TrimSpace(lines[start]) == "" {
		start++
	}
	for end > start && strings.TrimSpace(lines[end-1]) == "" {
		end--
	}
	if start == end {
		return ""
	}
	var b strings.Builder
	blank := 0
	for _, l := range lines[start:end] {
		if strings.TrimSpace(l) == "" {
			blank++
			if maxBlank >= 0 && blank > maxBlank {
				continue
			}
			if maxBlank >= 0 {
				l = ""
			}
		} else {
			blank = 0
		}
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}
