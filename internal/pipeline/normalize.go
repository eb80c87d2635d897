package pipeline

import (
	"strings"
)

// NormalizeMarkdown is the canonical form whose sha256 is parsed_sha256: LF line
// endings, no zero-width characters or NULs, no trailing spaces, at most one blank line
// in a row (outside fenced code), no leading/trailing blank lines, one final newline.
// An input with no text normalizes to "".
func NormalizeMarkdown(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	s = strings.Map(func(r rune) rune {
		switch r {
		case '\u200b', '\u200c', '\u200d', '\u2060', '\ufeff', 0:
			return -1
		case '\f', '\v':
			return '\n'
		}
		return r
	}, s)
	lines := strings.Split(s, "\n")
	out := make([]string, 0, len(lines))
	inFence := false
	blank := 0
	for _, l := range lines {
		l = strings.TrimRight(l, " \t")
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "```") || strings.HasPrefix(t, "~~~") {
			inFence = !inFence
		}
		if t == "" && !inFence {
			blank++
			if blank > 1 {
				continue
			}
		} else {
			blank = 0
		}
		out = append(out, l)
	}
	res := strings.Trim(strings.Join(out, "\n"), "\n")
	if strings.TrimSpace(res) == "" {
		return ""
	}
	return res + "\n"
}
