package embed

import (
	"context"
	"math"
	"os"
	"strings"
	"testing"
)

func cos(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

func TestLocalDeterministicNormalized(t *testing.T) {
	e, err := NewLocal(0)
	if err != nil {
		t.Fatal(err)
	}
	texts := []string{"The annual deductible is $500.", "", "!!!", "Pharmacy copay for generic drugs"}
	a, _ := e.Embed(context.Background(), texts)
	b, _ := e.Embed(context.Background(), texts)
	for i := range texts {
		if len(a[i]) != 1536 {
			t.Fatalf("dims = %d", len(a[i]))
		}
		if n := cos(a[i], a[i]); math.Abs(n-1) > 1e-5 {
			t.Errorf("%q: norm² = %v", texts[i], n)
		}
		if VectorSHA(a[i]) != VectorSHA(b[i]) {
			t.Errorf("%q: not deterministic", texts[i])
		}
	}
}

// A text gets the same bits every time. testdata/eoc-chunk.txt is a chunk of the
// 232-page Medicare PDF whose features were summed in map order, so one bucket
// came out as 1.2e-17 or 5.8e-18 from call to call (two vector_sha values, about
// 65/35): a chunk embedded again after a crash no longer matched.
func TestLocalSameBitsEveryTime(t *testing.T) {
	e, err := NewLocal(0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("testdata/eoc-chunk.txt")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.TrimSuffix(string(b), "\n")
	first, _ := e.Embed(context.Background(), []string{text})
	for range 100 {
		again, _ := e.Embed(context.Background(), []string{text})
		if VectorSHA(again[0]) != VectorSHA(first[0]) {
			t.Fatal("the same text embedded to different bits")
		}
	}
}

func TestLocalSimilarity(t *testing.T) {
	e, _ := NewLocal(1536)
	v, _ := e.Embed(context.Background(), []string{
		"deductible",
		"You pay the yearly deductible before the plan pays for covered services.",
		"Hospice care is available to members with a terminal illness.",
	})
	if cos(v[0], v[1]) <= cos(v[0], v[2]) {
		t.Fatalf("query closer to the unrelated text: %v vs %v", cos(v[0], v[1]), cos(v[0], v[2]))
	}
}

func TestLocalCancel(t *testing.T) {
	e, _ := NewLocal(64)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.Embed(ctx, []string{"a", "b"}); err == nil {
		t.Fatal("cancelled context ignored")
	}
	if _, err := NewLocal(4); err == nil {
		t.Fatal("dims 4 accepted")
	}
}

func BenchmarkLocal(b *testing.B) {
	e, _ := NewLocal(1536)
	text := "Members pay a $35 copay for each specialist visit after the annual deductible is met; " +
		"prior authorization applies to some services and network rules apply except in emergencies. "
	texts := make([]string, 64)
	for i := range texts {
		texts[i] = text + text
	}
	b.SetBytes(int64(64 * len(texts[0])))
	for b.Loop() {
		_, _ = e.Embed(context.Background(), texts)
	}
}
