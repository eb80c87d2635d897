package chunk

import (
	"fmt"
	"sync"
	"unicode/utf8"

	"github.com/tiktoken-go/tokenizer"
)

// maxTokenBytes is the length in bytes of the longest token in the cl100k
// vocabulary (TestMaxTokenBytes checks it). A string longer than
// n*maxTokenBytes bytes therefore always has more than n tokens, which lets
// the splitter skip counting text that cannot possibly fit.
const maxTokenBytes = 128

var (
	codecOnce sync.Once
	codecVal  tokenizer.Codec
	codecErr  error
)

// codec returns the process-wide cl100k_base codec. The tokenizer's codec is
// safe for concurrent use (its split regexp and lazily built reverse
// vocabulary are both guarded), so one instance is shared by all Chunkers.
func codec() (tokenizer.Codec, error) {
	codecOnce.Do(func() {
		codecVal, codecErr = tokenizer.Get(tokenizer.Cl100kBase)
		if codecErr != nil {
			codecErr = fmt.Errorf("chunk: load cl100k_base tokenizer: %w", codecErr)
		}
	})
	return codecVal, codecErr
}

// CountTokens returns the number of cl100k_base tokens in s, using one
// process-wide codec.
//
// The tokenizer cannot fail on valid input with its default error mode; if it
// ever does (or cannot be loaded), CountTokens returns len(s), which is an
// upper bound because every cl100k token covers at least one byte. Callers
// that enforce a token limit therefore stay on the safe side.
func CountTokens(s string) int {
	if s == "" {
		return 0
	}
	c, err := codec()
	if err != nil {
		return len(s)
	}
	n, err := c.Count(s)
	if err != nil {
		return len(s)
	}
	return n
}

// tokenOffsets encodes s and returns the byte offset at which each token
// starts, plus len(s) as a final sentinel, so token i spans
// s[offs[i]:offs[i+1]]. ok is false when the tokenizer failed or its tokens
// do not tile s exactly; callers then fall back to cutting by bytes.
func tokenOffsets(s string) (offs []int, ok bool) {
	c, err := codec()
	if err != nil {
		return nil, false
	}
	_, toks, err := c.Encode(s)
	if err != nil {
		return nil, false
	}
	offs = make([]int, 0, len(toks)+1)
	pos := 0
	for _, t := range toks {
		offs = append(offs, pos)
		pos += len(t)
	}
	if pos != len(s) {
		return nil, false
	}
	return append(offs, pos), true
}

// runeStartAtOrBefore moves i back to the start of the rune containing s[i].
func runeStartAtOrBefore(s string, i int) int {
	for i > 0 && i < len(s) && !utf8.RuneStart(s[i]) {
		i--
	}
	return i
}

// runeStartAfter moves i forward to the next rune start (or len(s)).
func runeStartAfter(s string, i int) int {
	for i < len(s) && !utf8.RuneStart(s[i]) {
		i++
	}
	return i
}
