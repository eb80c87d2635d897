// Package pdfgen writes small, valid text PDFs (Helvetica, one text line per entry) for
// benchmarks and sample documents.
package pdfgen

import (
	"bytes"
	"fmt"
	"strings"
)

// Build returns a PDF with one page per entry of pages, each page showing its lines.
func Build(pages [][]string) []byte {
	var objs []string // objs[i] is object i+1
	add := func(s string) int { objs = append(objs, s); return len(objs) }
	catalog := add("")
	pagesObj := add("")
	font := add("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
	var kids []string
	esc := strings.NewReplacer(`\`, `\\`, `(`, `\(`, `)`, `\)`)
	for _, p := range pages {
		var cs strings.Builder
		cs.WriteString("BT /F1 11 Tf 14 TL 72 740 Td\n")
		for _, line := range p {
			cs.WriteString("(" + esc.Replace(line) + ") Tj T*\n")
		}
		cs.WriteString("ET\n")
		content := add(fmt.Sprintf("<< /Length %d >>\nstream\n%sendstream", cs.Len(), cs.String()))
		page := add(fmt.Sprintf("<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 %d 0 R >> >> /Contents %d 0 R >>", pagesObj, font, content))
		kids = append(kids, fmt.Sprintf("%d 0 R", page))
	}
	objs[catalog-1] = fmt.Sprintf("<< /Type /Catalog /Pages %d 0 R >>", pagesObj)
	objs[pagesObj-1] = fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d >>", strings.Join(kids, " "), len(pages))
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
	offsets := make([]int, len(objs))
	for i, o := range objs {
		offsets[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objs)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(objs)+1, catalog, xref)
	return b.Bytes()
}

// OnePager is a one-page policy-like PDF whose text varies with n.
func OnePager(n int) []byte {
	lines := []string{
		fmt.Sprintf("Plan summary %d", n),
		"",
		fmt.Sprintf("Member number: M-%06d. Plan year 2026.", n),
		fmt.Sprintf("Annual deductible: $%d per member; out-of-pocket maximum: $%d.", 250+n%9*50, 4000+n%13*100),
		fmt.Sprintf("Primary care visit copay: $%d. Specialist visit copay: $%d.", 10+n%5*5, 35+n%7*5),
		"Emergency care is covered worldwide. Urgent care copay applies after the deductible.",
		"Prescription drugs: generic tier 1 at preferred pharmacies costs less than standard pharmacies.",
		"Prior authorization is required for some services; network rules apply except in emergencies.",
	}
	for i := range 20 {
		lines = append(lines, fmt.Sprintf("Benefit line %d.%d: coinsurance %d%% for service category %d.", n, i, 10+(n+i)%4*10, (n*7+i)%31))
	}
	return Build([][]string{lines})
}
