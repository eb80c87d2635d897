package chunk

import (
	"fmt"
	"math/rand"
	"strings"
)

var synthWords = strings.Fields(`the plan covers medical benefits including deductible copayment
coinsurance for hospital stays outpatient services prescription drugs and preventive care members
must use network providers except in emergencies prior authorization is required for some services
you pay nothing for covered preventive services your primary care provider coordinates specialist
referrals ambulance skilled nursing facility durable medical equipment mental health therapy annual
wellness visit out-of-pocket maximum Medicare Part B premium grievance appeal coverage determination`)

// synthDoc builds realistic parser output of about size bytes: chapters and
// sections, PDF-style paragraphs wrapped at ~80 columns with single
// newlines, page markers, lists, tables and the odd code fence.
func synthDoc(r *rand.Rand, size int) string {
	var b strings.Builder
	page, chapter := 1, 0
	fmt.Fprintf(&b, "<!-- page %d -->\n", page)
	nextPage := 4000
	sentence := func() string {
		n := 6 + r.Intn(18)
		w := make([]string, n)
		for i := range w {
			w[i] = synthWords[r.Intn(len(synthWords))]
		}
		w[0] = strings.ToUpper(w[0][:1]) + w[0][1:]
		if r.Intn(5) == 0 {
			w[r.Intn(n)] = fmt.Sprintf("$%d.%02d", r.Intn(5000), r.Intn(100))
		}
		return strings.Join(w, " ") + "."
	}
	for b.Len() < size {
		if b.Len() > nextPage {
			page++
			fmt.Fprintf(&b, "<!-- page %d -->\n", page)
			nextPage += 3000 + r.Intn(2000)
		}
		switch k := r.Intn(20); {
		case k == 0:
			chapter++
			fmt.Fprintf(&b, "# Chapter %d. %s\n\n", chapter, sentence())
		case k < 3:
			fmt.Fprintf(&b, "## Section %d.%d %s\n\n", chapter, r.Intn(30), synthWords[r.Intn(len(synthWords))])
		case k == 3:
			fmt.Fprintf(&b, "### %s\n\n", synthWords[r.Intn(len(synthWords))])
		case k == 4:
			for i := 0; i < 2+r.Intn(5); i++ {
				fmt.Fprintf(&b, "- %s\n", sentence())
			}
			b.WriteString("\n")
		case k == 5:
			b.WriteString("| Service | You pay |\n|---|---|\n")
			for i := 0; i < 2+r.Intn(8); i++ {
				fmt.Fprintf(&b, "| %s | $%d copay |\n", synthWords[r.Intn(len(synthWords))], r.Intn(300))
			}
			b.WriteString("\n")
		case k == 6 && r.Intn(4) == 0:
			b.WriteString("```\n")
			for i := 0; i < 3+r.Intn(10); i++ {
				fmt.Fprintf(&b, "claim[%d] = lookup(%q)\n", i, synthWords[r.Intn(len(synthWords))])
			}
			b.WriteString("```\n\n")
		default:
			// PDF-style paragraph: wrapped lines, single newlines.
			var para strings.Builder
			for i := 0; i < 2+r.Intn(8); i++ {
				para.WriteString(sentence())
				para.WriteByte(' ')
			}
			col := 0
			for _, w := range strings.Fields(para.String()) {
				if col > 0 && col+len(w) > 80 {
					b.WriteByte('\n')
					col = 0
				} else if col > 0 {
					b.WriteByte(' ')
					col++
				}
				b.WriteString(w)
				col += len(w)
			}
			b.WriteString("\n\n")
		}
	}
	return b.String()
}
