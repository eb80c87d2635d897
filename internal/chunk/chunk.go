// Package chunk splits parsed markdown into deterministic, heading-aware,
// token-sized chunks for embedding and search.
//
// # Input
//
// The input is markdown as produced by the parsers, possibly with page
// markers: lines consisting of exactly "<!-- page N -->" (surrounding
// whitespace allowed). Markers are removed from the text and only set the
// current page, which gives chunks their PageStart/PageEnd (0 = unknown; a
// paragraph that runs across a page break is joined and spans both pages).
// Before splitting, the text is cleaned: invalid UTF-8 is replaced with
// U+FFFD, NUL bytes are dropped (Postgres text cannot hold them), line
// endings become "\n", trailing whitespace is trimmed from every line and
// runs of blank lines collapse to one.
//
// # Blocks and headings
//
// The cleaned text is parsed with goldmark (CommonMark) and cut into its
// top-level blocks: paragraphs, lists, tables, block quotes, fenced and
// indented code, HTML. Each block is the exact source text from the line its
// node starts on to the line the next one starts on, so no text is ever
// dropped or re-rendered. ATX and setext headings update the heading path: a
// level-n heading removes every entry of level ≥ n and is appended. Text
// longer than 200 characters that parses as a heading (typically PDF text
// followed by a line of dashes) is treated as body text instead.
//
// Blocks are packed greedily into chunks of at most MaxTokens cl100k tokens.
// A heading closes the current chunk if it holds any body text, so a chunk
// never spans two sections. A block that does not fit into an empty chunk
// is cut at blank lines, then at line ends, then after sentence-ending
// punctuation (including 。！？；), then at the last word start inside a
// token window, and only as a last resort at a token boundary (moved back to
// a rune boundary so no character is split). A block that fits is never cut,
// so a fenced code block stays whole unless it alone exceeds the limit.
//
// # Chunk text
//
// Decision: Chunk.Text starts with the heading path as a context line, e.g.
//
//	Chapter 4 > Medical Benefits Chart
//
//	<body text>
//
// so that every chunk, including continuation chunks deep inside a long
// section, carries its section title into the embedding and keyword index.
// The heading lines themselves are not repeated in the body. The context
// line is counted against MaxTokens; it is used only while it costs at most
// MaxTokens/4 tokens, falling back to the deepest heading alone and then to
// no context line. A heading that gets neither body text nor subheadings (for
// example "# A" directly followed by "# B") is emitted as a chunk holding
// just its heading path, so its text stays searchable.
//
// When a chunk is closed because it is full (not because of a heading), the
// next chunk starts with the last ≈OverlapTokens tokens of the previous
// chunk's body, cut at a word start where possible. Overlap never crosses a
// heading and is dropped when the following block would otherwise not fit.
//
// # Guarantees
//
//   - TokenCount is the exact cl100k count of Text and never exceeds
//     MaxTokens: every chunk is counted once as assembled and re-cut if the
//     concatenation tokenizes differently from its parts.
//   - Same input and options give byte-identical chunks. Any change to the
//     output for the same input must bump Version, because chunk ids are
//     derived from (Name, Version, Ord).
//   - No chunk is empty or whitespace only; chunk text has no trailing
//     spaces and no runs of blank lines.
package chunk

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

const (
	// Name identifies this chunker in stored chunk metadata and chunk ids.
	Name = "docpipe-markdown"
	// Version must be bumped whenever the chunks for the same input can change.
	Version = "1"

	// DefaultMaxTokens is used when Options.MaxTokens is 0.
	DefaultMaxTokens = 512
	// DefaultOverlapTokens is used when Options.OverlapTokens is 0 and
	// MaxTokens is above 128; below that the default overlap is MaxTokens/8.
	DefaultOverlapTokens = 64
	// MinMaxTokens is the smallest MaxTokens accepted.
	MinMaxTokens = 32
	// MaxMaxTokens is the largest MaxTokens accepted.
	MaxMaxTokens = 1 << 20
)

// ErrInvalidOptions is wrapped by the error New returns for bad options.
var ErrInvalidOptions = errors.New("invalid chunk options")

// Options configures a Chunker. The zero value gives the defaults.
type Options struct {
	// MaxTokens is the hard upper bound of cl100k tokens per chunk, heading
	// context line and overlap included. 0 means DefaultMaxTokens; otherwise
	// it must be in [MinMaxTokens, MaxMaxTokens].
	MaxTokens int
	// OverlapTokens is how many tokens of a full chunk's tail are repeated
	// at the start of the next one. 0 means the default (see
	// DefaultOverlapTokens), a negative value disables overlap, and a
	// positive value must be < MaxTokens/2.
	OverlapTokens int
}

// Chunk is one piece of a document.
type Chunk struct {
	Ord                int      // 0-based, in document order
	Text               string   // heading-path context line, blank line, body; what gets embedded and searched
	TokenCount         int      // cl100k tokens of Text, ≤ MaxTokens
	HeadingPath        []string // e.g. ["Chapter 4", "Medical Benefits Chart"]; empty, never nil, outside any heading
	PageStart, PageEnd int      // page span of the text, 0 when unknown
	SHA256             string   // hex sha256 of Text
}

// Chunker splits markdown into chunks. It holds no mutable state and is safe
// for concurrent use.
type Chunker struct {
	maxTokens int
	overlap   int
}

// New validates opts, applies defaults and loads the process-wide cl100k
// tokenizer.
func New(opts Options) (*Chunker, error) {
	maxTok := opts.MaxTokens
	switch {
	case maxTok == 0:
		maxTok = DefaultMaxTokens
	case maxTok < MinMaxTokens || maxTok > MaxMaxTokens:
		return nil, fmt.Errorf("%w: MaxTokens %d out of range [%d, %d]", ErrInvalidOptions, opts.MaxTokens, MinMaxTokens, MaxMaxTokens)
	}
	overlap := opts.OverlapTokens
	switch {
	case overlap < 0:
		overlap = 0
	case overlap == 0:
		overlap = DefaultOverlapTokens
		if 2*overlap >= maxTok {
			overlap = maxTok / 8
		}
	case 2*overlap >= maxTok:
		return nil, fmt.Errorf("%w: OverlapTokens %d must be < MaxTokens/2 (MaxTokens %d)", ErrInvalidOptions, overlap, maxTok)
	}
	if _, err := codec(); err != nil {
		return nil, err
	}
	return &Chunker{maxTokens: maxTok, overlap: overlap}, nil
}

// MaxTokens returns the effective maximum chunk size in tokens.
func (c *Chunker) MaxTokens() int { return c.maxTokens }

// OverlapTokens returns the effective overlap in tokens (0 when disabled).
func (c *Chunker) OverlapTokens() int { return c.overlap }

// Chunk splits markdown into chunks. Empty or whitespace-only input gives no
// chunks and no error.
func (c *Chunker) Chunk(markdown string) ([]Chunk, error) {
	src := preprocess(markdown)
	blocks := splitBlocks(src.text)
	if len(blocks) == 0 {
		return nil, nil
	}
	p := &packer{max: c.maxTokens, overlap: c.overlap, src: src, leafCovered: true}
	p.resetChunk()
	for _, b := range blocks {
		if b.heading {
			p.heading(b)
			continue
		}
		whole := p.max - p.prefixTok - 2
		part := whole - p.overlap
		p.queue = splitBlock(src.text, b.start, b.end, whole, part, p.queue)
		p.drain()
	}
	p.closeSection()
	p.emitLeafHeading()
	for i := range p.out {
		p.out[i].Ord = i
		sum := sha256.Sum256([]byte(p.out[i].Text))
		p.out[i].SHA256 = hex.EncodeToString(sum[:])
	}
	return p.out, nil
}
