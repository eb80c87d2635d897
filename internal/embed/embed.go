// Package embed turns texts into vectors: the Embedder interface and the local
// feature-hashing embedder.
package embed

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"strings"
	"unicode"
)

// Embedder turns texts into vectors. Implementations must return exactly len(texts)
// vectors, in order.
type Embedder interface {
	Model() string   // model name recorded with each vector
	Version() string // bump when vectors for the same text change
	Dims() int
	Embed(ctx context.Context, texts []string) ([][]float32, error)
}

// VectorSHA is the hex sha256 of the vector's little-endian float32 bytes.
func VectorSHA(v []float32) string {
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Local is a deterministic, offline embedder: feature hashing of word unigrams
// (weight 1) and bigrams (weight 0.5), each into 3 signed buckets, log-scaled term frequency, L2-normalized.
// Texts that share words are close under cosine similarity, so keyword-like search
// works without a network. A text with no words maps to a fixed unit vector (index 0),
// never the zero vector (cosine distance to it is undefined).
type Local struct{ dims int }

// NewLocal returns a local embedder with dims dimensions (0 → 1536).
func NewLocal(dims int) (*Local, error) {
	if dims == 0 {
		dims = 1536
	}
	if dims < 8 || dims > 16000 {
		return nil, fmt.Errorf("embed: dims %d out of range 8..16000", dims)
	}
	return &Local{dims: dims}, nil
}

func (l *Local) Model() string   { return "local-hash" }
func (l *Local) Version() string { return "1" }
func (l *Local) Dims() int       { return l.dims }

// Embed embeds each text; it checks ctx between texts.
func (l *Local) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	for i, t := range texts {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		out[i] = l.one(t)
	}
	return out, nil
}

var stopwords = map[string]bool{
	"a": true, "an": true, "and": true, "are": true, "as": true, "at": true, "be": true, "by": true,
	"for": true, "from": true, "in": true, "is": true, "it": true, "of": true, "on": true, "or": true,
	"that": true, "the": true, "this": true, "to": true, "was": true, "were": true, "with": true,
}

func (l *Local) one(text string) []float32 {
	tf := map[uint64]float64{}
	var prev string
	for _, w := range strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	}) {
		if stopwords[w] {
			prev = ""
			continue
		}
		tf[hash64("u:"+w)] += 1
		if prev != "" {
			tf[hash64("b:"+prev+" "+w)] += 0.5
		}
		prev = w
	}
	v := make([]float32, l.dims)
	if len(tf) == 0 {
		v[0] = 1
		return v
	}
	// Sum in a fixed order: float addition is not associative, and map order would
	// change the last bits of a bucket from call to call.
	keys := make([]uint64, 0, len(tf))
	for h := range tf {
		keys = append(keys, h)
	}
	slices.Sort(keys)
	acc := make([]float64, l.dims)
	for _, h := range keys {
		n := tf[h]
		w := 1 + math.Log(n)
		if n < 1 {
			w = n // a bigram seen once weighs 0.5
		}
		// Each feature lands in `probes` buckets with its own sign (double hashing), so a
		// collision with another word in one bucket costs only part of the similarity.
		h2 := h>>32 | 1
		for i := range uint64(probes) {
			x := h + i*h2
			v := w
			if (x>>40)&1 == 1 {
				v = -v
			}
			acc[x%uint64(l.dims)] += v
		}
	}
	var norm float64
	for _, x := range acc {
		norm += x * x
	}
	if norm == 0 {
		v[0] = 1
		return v
	}
	inv := 1 / math.Sqrt(norm)
	for i, x := range acc {
		v[i] = float32(x * inv)
	}
	return v
}

// probes is the number of buckets each feature is hashed into.
const probes = 3

func hash64(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}
