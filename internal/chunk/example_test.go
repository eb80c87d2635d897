package chunk_test

import (
	"fmt"
	"strings"

	"github.com/docpipe/docpipe/internal/chunk"
)

// Chunk a small markdown document: every chunk carries its heading path as a
// context line, a heading closes the chunk before it, and page markers only set
// the page span.
func Example() {
	md := `# Plan summary

<!-- page 1 -->
Your deductible is $500 a year. After that you pay 20% of covered services.

## Prior authorization

<!-- page 2 -->
Some services need approval from the plan before you get them.
`
	c, err := chunk.New(chunk.Options{MaxTokens: 64})
	if err != nil {
		panic(err)
	}
	chunks, err := c.Chunk(md)
	if err != nil {
		panic(err)
	}
	for _, ch := range chunks {
		fmt.Printf("#%d %v pages %d-%d, %d tokens\n", ch.Ord, ch.HeadingPath, ch.PageStart, ch.PageEnd, ch.TokenCount)
		fmt.Println(strings.ReplaceAll(ch.Text, "\n", "⏎"))
	}
	// Output:
	// #0 [Plan summary] pages 1-1, 22 tokens
	// Plan summary⏎⏎Your deductible is $500 a year. After that you pay 20% of covered services.
	// #1 [Plan summary Prior authorization] pages 2-2, 18 tokens
	// Plan summary > Prior authorization⏎⏎Some services need approval from the plan before you get them.
}

// The same input and options always give byte-identical chunks, which is what
// makes chunk ids (uuid5 of document, chunker name, version and ordinal) stable.
func ExampleChunker_Chunk_deterministic() {
	c, _ := chunk.New(chunk.Options{})
	a, _ := c.Chunk("# A\n\nsome text\n")
	b, _ := c.Chunk("# A\n\nsome text\n")
	fmt.Println(chunk.Name, len(a), a[0].SHA256 == b[0].SHA256)
	// Output: docpipe-markdown 1 true
}
