package chunk

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// headingEntry is one level of the heading path.
type headingEntry struct {
	level int
	title string
	page  int
}

// packer packs units greedily into chunks while tracking the heading path,
// the context line and the overlap carried into the next chunk.
type packer struct {
	max, overlap int
	src          *source

	path        []headingEntry
	prefix      string // heading-path context line, "" for none
	prefixTok   int    // tokens of prefix + "\n\n" (0 without prefix)
	leafCovered bool   // the deepest heading is part of an emitted chunk

	units  []unit // body of the chunk being built
	est    int    // estimated tokens of the chunk being built
	ov     string // overlap text that starts the chunk being built
	ovTok  int
	ovPage int

	queue []unit // units waiting to be packed, in document order
	out   []Chunk
}

func (p *packer) resetChunk() {
	p.units = p.units[:0]
	p.est = p.prefixTok
	if p.ov != "" {
		p.est += p.ovTok + 1
	}
}

func (p *packer) clearOverlap() {
	p.ov, p.ovTok, p.ovPage = "", 0, 0
}

// drain packs the queued units. A unit that does not fit closes the chunk
// (a size close, so the next chunk gets the overlap).
func (p *packer) drain() {
	for len(p.queue) > 0 {
		u := p.queue[0]
		cost := u.tok
		if !u.cont {
			cost++ // "\n\n"
		}
		if len(p.units) > 0 && p.est+cost > p.max {
			p.emit(true)
			continue
		}
		if len(p.units) == 0 && p.ov != "" && p.est+cost > p.max {
			p.clearOverlap()
			p.resetChunk()
		}
		p.queue = p.queue[1:]
		p.units = append(p.units, u)
		p.est += cost
	}
}

// heading closes the current section and moves the heading path.
func (p *packer) heading(b block) {
	p.closeSection()
	if n := len(p.path); n > 0 && b.level <= p.path[n-1].level {
		p.emitLeafHeading()
	}
	for len(p.path) > 0 && p.path[len(p.path)-1].level >= b.level {
		p.path = p.path[:len(p.path)-1]
	}
	p.path = append(p.path, headingEntry{level: b.level, title: b.title, page: p.src.pageAt(b.start)})
	p.leafCovered = false
	p.setPrefix()
	p.resetChunk()
}

// closeSection emits everything packed or queued so far; no overlap is
// carried past it.
func (p *packer) closeSection() {
	for len(p.units) > 0 {
		p.emit(false)
		p.drain()
	}
	p.clearOverlap()
	p.resetChunk()
}

func (p *packer) titles() []string {
	t := make([]string, len(p.path))
	for i, h := range p.path {
		t[i] = h.title
	}
	return t
}

// setPrefix picks the context line for the current heading path: the full
// path, else the deepest heading, else nothing, whichever first costs at
// most max/4 tokens.
func (p *packer) setPrefix() {
	p.prefix, p.prefixTok = "", 0
	if len(p.path) == 0 {
		return
	}
	limit := p.max / 4
	for _, cand := range []string{strings.Join(p.titles(), " > "), p.path[len(p.path)-1].title} {
		if n := CountTokens(cand) + 1; n <= limit {
			p.prefix, p.prefixTok = cand, n
			return
		}
	}
}

// emitLeafHeading emits a chunk holding just the heading path when the
// deepest heading never became part of a chunk.
func (p *packer) emitLeafHeading() {
	if p.leafCovered || len(p.path) == 0 {
		return
	}
	p.leafCovered = true
	page := p.path[len(p.path)-1].page
	text := normalize(strings.Join(p.titles(), " > "))
	p.pushSplit(text, page, page)
}

// body joins the overlap and the units and returns where each unit starts.
func (p *packer) body() (string, []int) {
	n := len(p.ov) + 2*len(p.units)
	for _, u := range p.units {
		n += len(u.text)
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteString(p.ov)
	starts := make([]int, len(p.units))
	for i, u := range p.units {
		if b.Len() > 0 && !u.cont {
			b.WriteString("\n\n")
		}
		starts[i] = b.Len()
		b.WriteString(u.text)
	}
	return b.String(), starts
}

// emit turns the packed units into one chunk. It counts the assembled text
// exactly; if it is over the limit it hands units back to the queue, drops
// the overlap, or cuts the single remaining unit smaller, until it fits.
func (p *packer) emit(sizeClose bool) {
	var back []unit // units handed back to the queue, in reverse order
	for len(p.units) > 0 {
		body, starts := p.body()
		text := normalize(body)
		if text == "" {
			break
		}
		if p.prefix != "" {
			text = p.prefix + "\n\n" + text
		}
		n := CountTokens(text)
		if n <= p.max {
			ps, pe := p.pageSpan()
			p.push(text, n, ps, pe)
			p.leafCovered = true
			if (sizeClose || len(back) > 0) && p.overlap > 0 {
				p.setOverlap(body, starts)
			} else {
				p.clearOverlap()
			}
			break
		}
		if k := len(p.units); k > 1 {
			back = append(back, p.units[k-1])
			p.units = p.units[:k-1]
			continue
		}
		if p.ov != "" {
			p.clearOverlap()
			continue
		}
		u := p.units[0]
		budget := max(min(u.tok, p.max-p.prefixTok)-(n-p.max)-1, minBudget)
		parts := splitTokens(p.src.text, u.start, u.end, budget, nil)
		if len(parts) < 2 {
			// Nothing left to cut: emit without the context line.
			ps, pe := p.pageSpan()
			p.pushSplit(normalize(body), ps, pe)
			p.leafCovered = true
			p.clearOverlap()
			break
		}
		parts[0].cont = u.cont
		for i := len(parts) - 1; i >= 1; i-- {
			parts[i].cont = true
			back = append(back, parts[i])
		}
		p.units = append(p.units[:0], parts[0])
	}
	if len(back) > 0 {
		slices.Reverse(back)
		p.queue = append(back, p.queue...)
	}
	p.resetChunk()
}

// pageSpan is the span of known pages of the chunk being built.
func (p *packer) pageSpan() (int, int) {
	lo, hi := 0, 0
	add := func(pg int) {
		if pg <= 0 {
			return
		}
		if lo == 0 || pg < lo {
			lo = pg
		}
		if pg > hi {
			hi = pg
		}
	}
	if p.ov != "" {
		add(p.ovPage)
	}
	for _, u := range p.units {
		s, e := p.src.pages(u.start, u.end)
		add(s)
		add(e)
	}
	return lo, hi
}

func (p *packer) push(text string, n, pageStart, pageEnd int) {
	p.out = append(p.out, Chunk{
		Text:        text,
		TokenCount:  n,
		HeadingPath: p.titles(),
		PageStart:   pageStart,
		PageEnd:     pageEnd,
	})
}

// pushSplit emits text without a context line, cut into pieces that fit if
// needed.
func (p *packer) pushSplit(text string, pageStart, pageEnd int) {
	if text == "" {
		return
	}
	if n := CountTokens(text); n <= p.max {
		p.push(text, n, pageStart, pageEnd)
		return
	}
	for _, u := range splitTokens(text, 0, len(text), p.max, nil) {
		if t := normalize(u.text); t != "" {
			p.push(t, CountTokens(t), pageStart, pageEnd)
		}
	}
}

// setOverlap sets the overlap for the next chunk from the raw body of the
// chunk just emitted.
func (p *packer) setOverlap(body string, starts []int) {
	t := tailStart(body, p.overlap)
	for t < len(body) {
		r, n := utf8.DecodeRuneInString(body[t:])
		if !unicode.IsSpace(r) {
			break
		}
		t += n
	}
	if t >= len(body) {
		p.clearOverlap()
		return
	}
	// The page where the overlap starts; inside the previous overlap the
	// page stays what it was.
	for i := len(starts) - 1; i >= 0; i-- {
		if starts[i] <= t {
			u := p.units[i]
			off := min(u.start+(t-starts[i]), u.end-1)
			p.ovPage = p.src.pageAt(off)
			break
		}
	}
	p.ov = strings.Clone(body[t:])
	p.ovTok = CountTokens(p.ov)
}

// tailStart returns where the last ≈want tokens of body begin, moved
// forward to a word start when that keeps at least half of the tail.
func tailStart(body string, want int) int {
	w := want*6 + 32
	for {
		lo := runeStartAfter(body, max(0, len(body)-w))
		offs, ok := tokenOffsets(body[lo:])
		if !ok {
			// bytes bound tokens from above
			return runeStartAfter(body, max(0, len(body)-want))
		}
		ntok := len(offs) - 1
		if ntok <= want {
			if lo == 0 {
				return 0
			}
			w *= 2
			continue
		}
		cut := runeStartAfter(body, lo+offs[ntok-want])
		if ws := nextWordStart(body, cut); ws >= 0 && ws-cut <= (len(body)-cut)/2 {
			return ws
		}
		return cut
	}
}

// nextWordStart returns the first offset ≥ i that starts a word (a
// non-space rune at the start of body or after a space), or -1.
func nextWordStart(s string, i int) int {
	prevSpace := i == 0
	if i > 0 {
		r, _ := utf8.DecodeLastRuneInString(s[:i])
		prevSpace = unicode.IsSpace(r)
	}
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		sp := unicode.IsSpace(r)
		if prevSpace && !sp {
			return i
		}
		prevSpace = sp
		i += n
	}
	return -1
}

// normalize trims trailing whitespace from every line, collapses runs of
// blank lines into one, and drops leading blank lines and trailing
// whitespace. Indentation is kept.
func normalize(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	blank := false
	for len(s) > 0 {
		var line string
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			line, s = s[:i], s[i+1:]
		} else {
			line, s = s, ""
		}
		line = strings.TrimRightFunc(line, unicode.IsSpace)
		if line == "" {
			blank = b.Len() > 0
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
			if blank {
				b.WriteByte('\n')
			}
		}
		blank = false
		b.WriteString(line)
	}
	return b.String()
}
