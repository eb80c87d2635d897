package embed

import (
	"context"
	"math"
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
