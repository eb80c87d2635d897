package embed_test

import (
	"context"
	"fmt"

	"github.com/docpipe/docpipe/internal/embed"
)

// The local embedder needs no network: texts that share words land near each
// other, so search works offline and in tests, and the same text always gives the
// same vector.
func ExampleLocal() {
	e, err := embed.NewLocal(256)
	if err != nil {
		panic(err)
	}
	vecs, err := e.Embed(context.Background(), []string{
		"annual deductible for covered services",
		"the deductible for covered dental services",
		"how to file an appeal",
	})
	if err != nil {
		panic(err)
	}
	cos := func(a, b []float32) float64 { // vectors are unit length
		var s float64
		for i := range a {
			s += float64(a[i]) * float64(b[i])
		}
		return s
	}
	fmt.Println(e.Model(), e.Dims(), len(vecs))
	fmt.Println("related texts closer:", cos(vecs[0], vecs[1]) > cos(vecs[0], vecs[2]))
	again, _ := e.Embed(context.Background(), []string{"how to file an appeal"})
	fmt.Println("deterministic:", embed.VectorSHA(again[0]) == embed.VectorSHA(vecs[2]))
	// Output:
	// local-hash 256 3
	// related texts closer: true
	// deterministic: true
}
