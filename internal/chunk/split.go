package chunk

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// unit is a piece of body text that fits the token budget it was cut for.
// Units of one block are contiguous byte ranges of the cleaned source.
type unit struct {
	text       string
	tok        int  // tokens of text on its own
	start, end int  // byte range in the cleaned source
	cont       bool // continues the previous unit's block: joined with "" rather than "\n\n"
}

// Split levels, coarsest first. A piece that is still too big at one level
// is cut at the next.
const (
	levelParagraphs = iota // after blank lines
	levelLines             // after newlines
	levelSentences         // after sentence-ending punctuation
	levelTokens            // at the last word start, else token, inside the budget
)

// minBudget keeps every cut able to make progress: a single rune is at most
// four bytes and so at most four tokens.
const minBudget = 4

// splitBlock cuts the body block src[start:end] into units. The whole block
// is kept as one unit when it has at most whole tokens; otherwise it is cut
// into units of at most part tokens each (part ≤ whole leaves room for the
// overlap in front of a continuation chunk).
func splitBlock(src string, start, end, whole, part int, out []unit) []unit {
	first := len(out)
	known := -1
	if s := src[start:end]; len(s) <= whole*maxTokenBytes {
		known = CountTokens(s)
		if known <= whole {
			return append(out, unit{text: s, tok: known, start: start, end: end})
		}
	}
	if known >= 0 && known <= part {
		known = -1 // cannot happen with part ≤ whole; keep split honest anyway
	}
	out = split(src, start, end, max(part, minBudget), levelParagraphs, known, out)
	for i := first + 1; i < len(out); i++ {
		out[i].cont = true
	}
	return out
}

// split appends units of at most budget tokens covering src[start:end].
// known is the token count of the range when the caller has it, else -1.
func split(src string, start, end, budget, level, known int, out []unit) []unit {
	s := src[start:end]
	if known < 0 && len(s) <= budget*maxTokenBytes {
		known = CountTokens(s)
	}
	if known >= 0 && known <= budget {
		return append(out, unit{text: s, tok: known, start: start, end: end})
	}
	for ; level < levelTokens; level++ {
		cuts := cutPoints(s, level)
		if len(cuts) < 2 {
			continue
		}
		prev := 0
		for _, c := range cuts {
			out = split(src, start+prev, start+c, budget, level+1, -1, out)
			prev = c
		}
		return out
	}
	return splitTokens(src, start, end, budget, out)
}

// cutPoints returns the end offsets of the pieces of s at the given level;
// separators stay at the end of the piece before them. The last offset is
// always len(s).
func cutPoints(s string, level int) []int {
	var cuts []int
	switch level {
	case levelParagraphs:
		for i := 0; ; {
			j := strings.Index(s[i:], "\n\n")
			if j < 0 {
				break
			}
			i += j + 2
			for i < len(s) && s[i] == '\n' {
				i++
			}
			if i < len(s) {
				cuts = append(cuts, i)
			}
		}
	case levelLines:
		for i := 0; ; {
			j := strings.IndexByte(s[i:], '\n')
			if j < 0 {
				break
			}
			i += j + 1
			if i < len(s) {
				cuts = append(cuts, i)
			}
		}
	case levelSentences:
		for i := 0; i < len(s); {
			r, n := utf8.DecodeRuneInString(s[i:])
			i += n
			var end bool
			switch r {
			case '.', '!', '?':
				// closing quotes/brackets, then whitespace
				j := i
				for j < len(s) && strings.IndexByte(`"')]`, s[j]) >= 0 {
					j++
				}
				if j < len(s) && (s[j] == ' ' || s[j] == '\t' || s[j] == '\n') {
					i, end = j, true
				}
			case '。', '！', '？', '；':
				end = true
			}
			if !end {
				continue
			}
			for i < len(s) {
				r, n := utf8.DecodeRuneInString(s[i:])
				if !unicode.IsSpace(r) {
					break
				}
				i += n
			}
			if i < len(s) {
				cuts = append(cuts, i)
			}
		}
	}
	if len(cuts) == 0 {
		return nil
	}
	return append(cuts, len(s))
}

// splitTokens is the last resort: it tokenizes src[start:end] once and cuts
// windows of at most budget tokens, at the last word start in the second half
// of the window if there is one, else at a token boundary moved back to a
// rune boundary. Every piece is re-counted on its own and shrunk until it
// fits, so the budget holds even where re-tokenizing a piece differs from
// the slice of tokens it came from.
func splitTokens(src string, start, end, budget int, out []unit) []unit {
	s := src[start:end]
	offs, ok := tokenOffsets(s)
	if !ok {
		return splitBytes(src, start, end, budget, out)
	}
	ntok := len(offs) - 1
	pos, ti := 0, 0
	for pos < len(s) {
		for ti+1 < ntok && offs[ti+1] <= pos {
			ti++
		}
		want := budget
		for {
			cut := len(s)
			if ti+want < ntok {
				cut = offs[ti+want]
				if w := lastWordStart(s, pos, cut); w > pos+(cut-pos)/2 {
					cut = w
				} else {
					cut = runeStartAtOrBefore(s, cut)
				}
				if cut <= pos {
					cut = runeStartAfter(s, pos+1)
				}
			}
			piece := s[pos:cut]
			n := CountTokens(piece)
			if n <= budget || utf8.RuneCountInString(piece) <= 1 || want <= 1 {
				out = append(out, unit{text: piece, tok: n, start: start + pos, end: start + cut})
				pos = cut
				break
			}
			want -= max(n-budget, 1)
			want = max(want, 1)
		}
	}
	return out
}

// splitBytes cuts at rune boundaries into pieces of at most budget bytes.
// A cl100k token covers at least one byte, so each piece has at most budget
// tokens without needing the tokenizer.
func splitBytes(src string, start, end, budget int, out []unit) []unit {
	for pos := start; pos < end; {
		cut := min(end, pos+budget)
		if cut < end {
			cut = pos + runeStartAtOrBefore(src[pos:end], cut-pos)
			if cut <= pos {
				cut = pos + runeStartAfter(src[pos:end], 1)
			}
		}
		out = append(out, unit{text: src[pos:cut], tok: CountTokens(src[pos:cut]), start: pos, end: cut})
		pos = cut
	}
	return out
}

// lastWordStart returns the largest offset i in (lo, hi] where s[i-1] is
// whitespace and s[i] starts a word, or -1.
func lastWordStart(s string, lo, hi int) int {
	for i := hi; i > lo; {
		r, n := utf8.DecodeLastRuneInString(s[lo:i])
		if unicode.IsSpace(r) {
			if i < len(s) {
				if r2, _ := utf8.DecodeRuneInString(s[i:]); !unicode.IsSpace(r2) {
					return i
				}
			}
		}
		i -= n
	}
	return -1
}
