package api_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/docpipe/docpipe/internal/api/apitypes"
	"github.com/docpipe/docpipe/internal/runstate"
)

// Search over the 232-page PDF plus a few other documents: hybrid ranks a chunk that
// says "prior authorization" first for that query, and keyword mode finds an exact
// policy number that vector mode alone misses.
func TestSearchModes(t *testing.T) {
	t.Parallel()
	pdf := readCorpus(t, "scan_classic_hmo.pdf")
	h := newHarness(t, harnessOpts{workers: true})
	tok := token(t, userA)
	docs := []struct {
		name string
		data []byte
	}{
		{"scan_classic_hmo.pdf", pdf},
		{"dental.md", smallDoc("Dental rider", "Cleanings twice a year. Orthodontics for children under 19. Authorization of claims by mail.")},
		{"faq.md", smallDoc("FAQ", "How do I find a doctor? Use the provider directory. Is prior care covered? Ask member services.")},
		{"card.txt", []byte("Member ID card\n\nGroup 4471. Keep this card with you. Emergency room visits do not need approval.\n")},
	}
	var pdfID uuid.UUID
	for _, d := range docs {
		res := h.uploadOK(tok, d.name, d.data)
		if d.name == "scan_classic_hmo.pdf" {
			pdfID = res.DocumentID
		}
		if doc := h.waitDocument(tok, res.DocumentID, 3*time.Minute); doc.Status != runstate.Complete {
			t.Fatalf("%s: %+v", d.name, doc)
		}
	}

	search := func(q, mode string, k int, docIDs ...uuid.UUID) []apitypes.SearchHit {
		t.Helper()
		body := map[string]any{"query": q, "mode": mode, "k": k}
		if len(docIDs) > 0 {
			body["document_ids"] = docIDs
		}
		var out struct {
			Mode    string
			Results []apitypes.SearchHit
		}
		r := h.postJSON("/v1/search", tok, body)
		if r.status != 200 {
			t.Fatalf("search %q %s: %d %s", q, mode, r.status, r.body)
		}
		r.json(t, &out)
		if out.Mode != mode {
			t.Fatalf("mode %q, want %q", out.Mode, mode)
		}
		return out.Results
	}
	has := func(h apitypes.SearchHit, s string) bool {
		return strings.Contains(strings.ToLower(h.Text), strings.ToLower(s))
	}

	hyb := search("prior authorization", "hybrid", 5)
	if len(hyb) != 5 || !has(hyb[0], "prior authorization") {
		t.Fatalf("hybrid: first hit (of %d) does not say prior authorization: %+v", len(hyb), hyb)
	}
	if hyb[0].VectorRank == 0 || hyb[0].KeywordRank == 0 {
		t.Errorf("hybrid first hit is not in both lists: vector rank %d, keyword rank %d", hyb[0].VectorRank, hyb[0].KeywordRank)
	}
	for i := 1; i < len(hyb); i++ {
		if hyb[i].Score > hyb[i-1].Score {
			t.Fatalf("hybrid results out of order: %v then %v", hyb[i-1].Score, hyb[i].Score)
		}
	}
	if hyb[0].DocumentID != pdfID || hyb[0].PageStart == 0 || len(hyb[0].HeadingPath) == 0 && hyb[0].Ord < 0 {
		t.Errorf("hybrid first hit location: %+v", hyb[0])
	}

	// An exact policy number, once, inside a long handbook section; short notes share
	// its pieces. Embeddings rank the short notes nearer; full-text search matches the
	// number as a phrase.
	const policy = "QX-44721-ZB"
	var handbook strings.Builder
	handbook.WriteString("# Member handbook\n\n## Coverage terms\n\n")
	for i := range 40 {
		fmt.Fprintf(&handbook, "Clause %d: benefits are paid according to the schedule, subject to the deductible, the copayment and network rules. ", i)
		if i == 20 {
			handbook.WriteString("This handbook belongs to policy number " + policy + ". ")
		}
	}
	for _, d := range []struct{ name, text string }{
		{"handbook.md", handbook.String()},
		{"note-1.txt", "Form QX filed. Claim 44721."},
		{"note-2.txt", "Zone ZB, form QX."},
		{"note-3.txt", "Reference 44721 for zone ZB."},
		{"note-4.txt", "QX ZB 44721 pending."},
		{"note-5.txt", "Claim 44721 QX."},
		{"note-6.txt", "ZB QX review."},
	} {
		res := h.uploadOK(tok, d.name, []byte(d.text))
		if doc := h.waitDocument(tok, res.DocumentID, time.Minute); doc.Status != runstate.Complete {
			t.Fatalf("%s: %+v", d.name, doc)
		}
	}
	kw := search(policy, "keyword", 5)
	if len(kw) != 1 || !has(kw[0], policy) {
		t.Fatalf("keyword search for %s: %+v", policy, kw)
	}
	if hasAny(search(policy, "vector", 5), policy) {
		t.Fatalf("vector search alone found %s; the test no longer shows what keyword search adds", policy)
	}
	if !hasAny(search(policy, "hybrid", 5), policy) {
		t.Fatalf("hybrid search lost the keyword hit for %s", policy)
	}

	// document_ids restricts every mode.
	for _, mode := range []string{"vector", "keyword", "hybrid"} {
		for _, hit := range search("prior authorization", mode, 5, pdfID) {
			if hit.DocumentID != pdfID {
				t.Fatalf("%s search outside document_ids: %+v", mode, hit)
			}
		}
	}
	if res := search("orthodontics", "keyword", 5, pdfID); len(res) != 0 && !hasAny(res, "orthodont") {
		t.Fatalf("keyword search in the PDF only: %+v", res)
	}
}

func hasAny(hits []apitypes.SearchHit, s string) bool {
	for _, h := range hits {
		if strings.Contains(strings.ToLower(h.Text), strings.ToLower(s)) {
			return true
		}
	}
	return false
}
