package chunk

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"testing"
	"unicode"

	"github.com/tiktoken-go/tokenizer"
)

func mustNew(t testing.TB, opts Options) *Chunker {
	t.Helper()
	c, err := New(opts)
	must.NoError(t, err)
	return c
}

func mustChunk(t testing.TB, c *Chunker, md string) []Chunk {
	t.Helper()
	cs, err := c.Chunk(md)
	must.NoError(t, err)
	checkInvariants(t, c, cs)
	return cs
}

// checkInvariants asserts what holds for every chunk of every input.
func checkInvariants(t testing.TB, c *Chunker, cs []Chunk) {
	t.Helper()
	for i, ch := range cs {
		must.Equal(t, i, ch.Ord, "ord")
		must.NotEmpty(t, strings.TrimSpace(ch.Text), "chunk %d is blank", i)
		must.Equal(t, CountTokens(ch.Text), ch.TokenCount, "chunk %d token count", i)
		must.LessOrEqual(t, ch.TokenCount, c.MaxTokens(), "chunk %d over the limit:\n%s", i, ch.Text)
		sum := sha256.Sum256([]byte(ch.Text))
		must.Equal(t, hex.EncodeToString(sum[:]), ch.SHA256)
		must.NotNil(t, ch.HeadingPath)
		must.NotContains(t, ch.Text, "\n\n\n", "chunk %d has a run of blank lines", i)
		for _, line := range strings.Split(ch.Text, "\n") {
			must.Equal(t, strings.TrimRightFunc(line, unicode.IsSpace), line, "chunk %d has trailing space", i)
		}
		must.LessOrEqual(t, ch.PageStart, ch.PageEnd)
		if ch.PageStart == 0 {
			must.Zero(t, ch.PageEnd)
		}
	}
}

// bodyOf strips the heading-path context line from a chunk's text.
func bodyOf(ch Chunk) string {
	if len(ch.HeadingPath) == 0 {
		return ch.Text
	}
	for _, prefix := range []string{strings.Join(ch.HeadingPath, " > "), ch.HeadingPath[len(ch.HeadingPath)-1]} {
		if rest, ok := strings.CutPrefix(ch.Text, prefix+"\n\n"); ok {
			return rest
		}
	}
	return ch.Text
}

func squash(s string) string {
	return strings.Join(strings.FieldsFunc(s, unicode.IsSpace), "")
}

func TestOptions(t *testing.T) {
	c := mustNew(t, Options{})
	expect.Equal(t, DefaultMaxTokens, c.MaxTokens())
	expect.Equal(t, DefaultOverlapTokens, c.OverlapTokens())

	c = mustNew(t, Options{MaxTokens: 100})
	expect.Equal(t, 12, c.OverlapTokens(), "default overlap shrinks for small chunks")
	c = mustNew(t, Options{MaxTokens: 100, OverlapTokens: -1})
	expect.Zero(t, c.OverlapTokens(), "negative disables overlap")
	c = mustNew(t, Options{MaxTokens: 100, OverlapTokens: 49})
	expect.Equal(t, 49, c.OverlapTokens())

	for _, o := range []Options{
		{MaxTokens: -1},
		{MaxTokens: MinMaxTokens - 1},
		{MaxTokens: MaxMaxTokens + 1},
		{MaxTokens: 100, OverlapTokens: 50},
		{MaxTokens: 100, OverlapTokens: 1000},
		{OverlapTokens: 256},
	} {
		_, err := New(o)
		must.Error(t, err, "%+v", o)
		expect.True(t, errors.Is(err, ErrInvalidOptions), "%+v: %v", o, err)
	}
}

func TestCountTokens(t *testing.T) {
	expect.Equal(t, 2, CountTokens("hello world"))
	expect.Equal(t, 0, CountTokens(""))
}

// The constant lets the splitter skip counting text that cannot fit; it
// must be the real longest token.
func TestMaxTokenBytes(t *testing.T) {
	enc, err := tokenizer.Get(tokenizer.Cl100kBase)
	must.NoError(t, err)
	longest := 0
	for id := uint(0); id < 100300; id++ {
		if s, err := enc.Decode([]uint{id}); err == nil {
			longest = max(longest, len(s))
		}
	}
	expect.Equal(t, maxTokenBytes, longest)
}

func TestEmptyInput(t *testing.T) {
	c := mustNew(t, Options{})
	for _, md := range []string{"", " ", "\n\n\t\n", "<!-- page 1 -->\n\n<!-- page 2 -->\n", "\x00\x00"} {
		cs := mustChunk(t, c, md)
		expect.Empty(t, cs, "%q", md)
	}
}

func TestHeadingPathAndPages(t *testing.T) {
	md := `<!-- page 1 -->
Preface text before any heading.

# Chapter 4

Chapter intro.

## Medical Benefits Chart

The deductible is $250.
This paragraph runs onto
<!-- page 2 -->
the next page.

### Ambulance

You pay 20%.

## Appeals

<!-- page 3 -->
File an appeal within 60 days.

# Chapter 5

Setext Title
------------

Body under setext.
`
	c := mustNew(t, Options{})
	cs := mustChunk(t, c, md)
	type want struct {
		path       []string
		body       string
		start, end int
	}
	wants := []want{
		{[]string{}, "Preface text before any heading.", 1, 1},
		{[]string{"Chapter 4"}, "Chapter intro.", 1, 1},
		{[]string{"Chapter 4", "Medical Benefits Chart"}, "The deductible is $250.\nThis paragraph runs onto\nthe next page.", 1, 2},
		{[]string{"Chapter 4", "Medical Benefits Chart", "Ambulance"}, "You pay 20%.", 2, 2},
		{[]string{"Chapter 4", "Appeals"}, "File an appeal within 60 days.", 3, 3},
		{[]string{"Chapter 5", "Setext Title"}, "Body under setext.", 3, 3},
	}
	must.Len(t, cs, len(wants))
	for i, w := range wants {
		expect.Equal(t, w.path, cs[i].HeadingPath, "chunk %d", i)
		expect.Equal(t, w.body, bodyOf(cs[i]), "chunk %d", i)
		expect.Equal(t, [2]int{w.start, w.end}, [2]int{cs[i].PageStart, cs[i].PageEnd}, "chunk %d pages", i)
	}
	expect.Equal(t, "Chapter 4 > Medical Benefits Chart\n\nThe deductible is $250.\nThis paragraph runs onto\nthe next page.", cs[2].Text)
	expect.Equal(t, "Preface text before any heading.", cs[0].Text, "no context line outside headings")
}

func TestHeadingMarkupAndPseudoHeadings(t *testing.T) {
	long := strings.Repeat("word ", 60)
	md := "# **Bold** `code` [link](http://x) heading\n\ntext\n\n" + long + "\n---\n\nafter\n"
	cs := mustChunk(t, mustNew(t, Options{}), md)
	must.NotEmpty(t, cs)
	expect.Equal(t, []string{"Bold code link heading"}, cs[0].HeadingPath)
	for _, ch := range cs {
		expect.Len(t, ch.HeadingPath, 1, "a 300-character setext 'heading' is body text")
	}
	expect.Contains(t, cs[len(cs)-1].Text, "word word")
}

func TestEmptyHeadingsAreKept(t *testing.T) {
	md := "# A\n# B\ntext b\n## C\n"
	cs := mustChunk(t, mustNew(t, Options{}), md)
	must.Len(t, cs, 3)
	expect.Equal(t, "A", cs[0].Text)
	expect.Equal(t, "B\n\ntext b", cs[1].Text)
	expect.Equal(t, "B > C", cs[2].Text)

	// A heading followed only by subheadings is carried by their paths.
	cs = mustChunk(t, mustNew(t, Options{}), "# Top\n## Sub\nbody\n")
	must.Len(t, cs, 1)
	expect.Equal(t, "Top > Sub\n\nbody", cs[0].Text)
}

func TestHeadingStartsNewChunk(t *testing.T) {
	md := "intro\n\n# One\n\nalpha\n\n# Two\n\nbeta\n"
	cs := mustChunk(t, mustNew(t, Options{}), md)
	must.Len(t, cs, 3)
	expect.Equal(t, []string{"intro", "One\n\nalpha", "Two\n\nbeta"}, []string{cs[0].Text, cs[1].Text, cs[2].Text})
}

func numberedSentences(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "Sentence number %d talks about benefit %d.", i, i*7)
		if i%3 == 2 {
			b.WriteString("\n")
		} else {
			b.WriteString(" ")
		}
	}
	return b.String()
}

func TestOverlap(t *testing.T) {
	const maxTok, overlap = 80, 20
	c := mustNew(t, Options{MaxTokens: maxTok, OverlapTokens: overlap})
	md := "# Section\n\n" + numberedSentences(60) + "\n\n# Next\n\nshort tail\n"
	cs := mustChunk(t, c, md)
	must.Greater(t, len(cs), 4)
	last := len(cs) - 1
	must.Equal(t, []string{"Next"}, cs[last].HeadingPath)
	expect.Equal(t, "Next\n\nshort tail", cs[last].Text, "no overlap across a heading")

	for i := 1; i < last; i++ {
		prev, cur := bodyOf(cs[i-1]), bodyOf(cs[i])
		// The longest prefix of cur that is a suffix of prev is the overlap.
		k := 0
		for n := min(len(prev), len(cur)); n > 0; n-- {
			if strings.HasSuffix(prev, cur[:n]) {
				k = n
				break
			}
		}
		must.Greater(t, k, 0, "chunk %d does not start with the tail of chunk %d:\n%q\n%q", i, i-1, prev, cur)
		ov := cur[:k]
		n := CountTokens(ov)
		expect.LessOrEqual(t, n, overlap+2, "chunk %d overlap %q", i, ov)
		expect.GreaterOrEqual(t, n, overlap/2, "chunk %d overlap %q", i, ov)
		expect.False(t, unicode.IsSpace(rune(ov[0])), "overlap starts at a word")
		j := strings.Index(prev, ov)
		expect.True(t, j == 0 || unicode.IsSpace(rune(prev[j-1])), "overlap %q starts at a word boundary", ov)
	}

	// Without overlap the bodies tile the text exactly.
	c0 := mustNew(t, Options{MaxTokens: maxTok, OverlapTokens: -1})
	cs = mustChunk(t, c0, numberedSentences(60))
	var joined strings.Builder
	for _, ch := range cs {
		joined.WriteString(ch.Text)
	}
	expect.Equal(t, squash(numberedSentences(60)), squash(joined.String()))
}

func TestCodeFenceKeptWhole(t *testing.T) {
	var code strings.Builder
	code.WriteString("```python\n")
	for i := 0; i < 12; i++ {
		fmt.Fprintf(&code, "total_%d = compute(claim_%d)\n", i, i)
	}
	code.WriteString("```")
	fence := code.String()
	c := mustNew(t, Options{MaxTokens: 200, OverlapTokens: 30})
	must.Less(t, CountTokens(fence), 190)
	must.Greater(t, CountTokens(fence), 100)
	md := numberedSentences(12) + "\n\n" + fence + "\n\n" + numberedSentences(6)
	cs := mustChunk(t, c, md)
	found := 0
	for _, ch := range cs {
		if strings.Contains(ch.Text, "```python") {
			found++
			expect.Contains(t, ch.Text, fence, "fence split across chunks")
		}
	}
	expect.Equal(t, 1, found)

	// A fence bigger than the limit is cut at lines, and every piece fits.
	c = mustNew(t, Options{MaxTokens: 200, OverlapTokens: -1})
	var big strings.Builder
	big.WriteString("```\n")
	for i := 0; i < 400; i++ {
		fmt.Fprintf(&big, "line_%d = value_%d\n", i, i)
	}
	big.WriteString("```\n")
	cs = mustChunk(t, c, big.String())
	expect.Greater(t, len(cs), 5)
	for _, ch := range cs[1:] {
		// cuts fall at line ends: each body's first line is a whole line
		first, _, _ := strings.Cut(bodyOf(ch), "\n")
		expect.Regexp(t, "^(line_\\d+ = value_\\d+|```)$", first)
	}
}

func TestGiantTokens(t *testing.T) {
	c := mustNew(t, Options{MaxTokens: 128, OverlapTokens: 16})
	cases := map[string]string{
		"100k a":       strings.Repeat("a", 100_000),
		"cjk":          strings.Repeat("医疗保险福利说明，自付额为二百五十美元", 2000),
		"cjk sentence": strings.Repeat("医疗保险福利说明。", 3000),
		"emoji":        strings.Repeat("🏥💊", 5000),
		"digits":       strings.Repeat("1234567890", 5000),
		"spaces":       "a" + strings.Repeat(" ", 50_000) + "b",
		"punct":        strings.Repeat("-=", 30_000),
		"long line":    strings.Repeat("deductible coinsurance ", 5000),
		"mixed":        "# H\n\n" + strings.Repeat("x", 20_000) + " " + strings.Repeat("保险", 5000) + "\n",
	}
	for name, md := range cases {
		t.Run(name, func(t *testing.T) {
			cs := mustChunk(t, c, md)
			must.NotEmpty(t, cs)
			if name != "spaces" {
				for _, ch := range cs[:len(cs)-1] {
					expect.Greater(t, ch.TokenCount, 128/2, "chunks are filled")
				}
				for _, ch := range cs {
					expect.NotContains(t, ch.Text, "\uFFFD", "a rune was cut")
				}
			}
		})
	}
	// Without overlap nothing is lost or duplicated.
	c0 := mustNew(t, Options{MaxTokens: 128, OverlapTokens: -1})
	for name, md := range cases {
		if strings.HasPrefix(md, "#") {
			continue
		}
		var b strings.Builder
		for _, ch := range mustChunk(t, c0, md) {
			b.WriteString(ch.Text)
		}
		expect.Equal(t, squash(md), squash(b.String()), name)
	}
}

func TestDirtyInput(t *testing.T) {
	md := "line one\r\nline\x00 two   \r\n\r\n\r\n\r\nbad \xff\xfe utf8\rlast"
	cs := mustChunk(t, mustNew(t, Options{}), md)
	must.Len(t, cs, 1)
	expect.Equal(t, "line one\nline two\n\nbad \uFFFD utf8\nlast", cs[0].Text)
}

// Property test: random inputs built from hostile pieces, several limits.
func TestSizeGuaranteeRandom(t *testing.T) {
	pieces := []string{
		"# ", "## ", "### ", "#### ", "\n", "\n\n", "\n\n\n", " ", "  ", "\t", "- ", "1. ", "> ",
		"```\n", "~~~\n", "    indented code\n", "| a | b |\n|---|---|\n", "---\n", "===\n",
		"<!-- page 7 -->\n", "<!-- page 8 -->\n", "<div>", "</div>", "[x]: http://example.com\n",
		"deductible", "coinsurance", "Medicare", ".", "? ", "! ", "。", "保险", "福利", "🏥",
		"\u00a0", "\u200b", "\xff", "é", "$1,250.00", "http://example.com/a/b?c=d", "aaaaaaaaaaaaaaaa",
	}
	r := rand.New(rand.NewSource(42))
	limits := []Options{{MaxTokens: 32, OverlapTokens: 15}, {MaxTokens: 64, OverlapTokens: 8}, {MaxTokens: 200}, {}}
	chunkers := make([]*Chunker, len(limits))
	for i, o := range limits {
		chunkers[i] = mustNew(t, o)
	}
	iters := 80
	if testing.Short() || raceEnabled {
		iters = 20
	}
	for it := 0; it < iters; it++ {
		var b strings.Builder
		n := r.Intn(300)
		for i := 0; i < n; i++ {
			p := pieces[r.Intn(len(pieces))]
			if r.Intn(40) == 0 {
				p = strings.Repeat(p, 20+r.Intn(1000))
			}
			b.WriteString(p)
		}
		md := b.String()
		for _, c := range chunkers {
			cs, err := c.Chunk(md)
			must.NoError(t, err)
			checkInvariants(t, c, cs)
		}
	}
}

// Property test: without headings and overlap, the chunks hold exactly the
// input's non-space text, in order.
func TestNoTextLostRandom(t *testing.T) {
	r := rand.New(rand.NewSource(7))
	c := mustNew(t, Options{MaxTokens: 64, OverlapTokens: -1})
	for it := 0; it < 40; it++ {
		md := synthDoc(r, 2000+r.Intn(20000))
		md = strings.NewReplacer("# ", "", "<!-- page", "").Replace(md)
		var b strings.Builder
		for _, ch := range mustChunk(t, c, md) {
			b.WriteString(ch.Text)
		}
		must.Equal(t, squash(md), squash(b.String()))
	}
}

func TestDeterministic(t *testing.T) {
	md := synthDoc(rand.New(rand.NewSource(3)), 200_000)
	c := mustNew(t, Options{})
	want := mustChunk(t, c, md)
	must.Greater(t, len(want), 50)

	var wg sync.WaitGroup
	results := make([][]Chunk, 4)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c2, err := New(Options{})
			if err == nil {
				results[i], _ = c2.Chunk(md)
			}
		}()
	}
	wg.Wait()
	for _, got := range results {
		must.Equal(t, want, got)
	}
}

func TestSynthDocPages(t *testing.T) {
	md := synthDoc(rand.New(rand.NewSource(5)), 300_000)
	cs := mustChunk(t, mustNew(t, Options{}), md)
	lastPage := strings.Count(md, "<!-- page ")
	prevStart := 0
	for _, ch := range cs {
		must.NotContains(t, ch.Text, "<!-- page")
		must.GreaterOrEqual(t, ch.PageStart, 1)
		must.LessOrEqual(t, ch.PageEnd, lastPage)
		must.GreaterOrEqual(t, ch.PageStart, prevStart, "pages go forward")
		prevStart = ch.PageStart
	}
	expect.Equal(t, lastPage, cs[len(cs)-1].PageEnd)
}

func BenchmarkChunk(b *testing.B) {
	md := synthDoc(rand.New(rand.NewSource(1)), 1<<20)
	c := mustNew(b, Options{})
	b.SetBytes(int64(len(md)))
	b.ReportAllocs()
	var n int
	for b.Loop() {
		cs, err := c.Chunk(md)
		if err != nil {
			b.Fatal(err)
		}
		n = len(cs)
	}
	b.ReportMetric(float64(n), "chunks")
}
