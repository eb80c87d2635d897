package parse

import (
	"context"
	"strings"

	"github.com/JohannesKaufmann/html-to-markdown/v2/converter"
	"github.com/JohannesKaufmann/html-to-markdown/v2/plugin/base"
	"github.com/JohannesKaufmann/html-to-markdown/v2/plugin/commonmark"
	"github.com/JohannesKaufmann/html-to-markdown/v2/plugin/table"
	"github.com/PuerkitoBio/goquery"
	"golang.org/x/net/html"

	"github.com/docpipe/docpipe/internal/fault"
)

// htmlNoise is removed before conversion: code, styling, navigation, and
// embedded objects. The converter keeps <nav> text otherwise.
const htmlNoise = "script, style, noscript, template, nav, [role=navigation], iframe, svg, canvas, object, embed"

func parseHTML(ctx context.Context, text string) (string, error) {
	doc, err := goquery.NewDocumentFromReader(strings.NewReader(text))
	if err != nil {
		return "", permanent(CodeHTMLCorrupt, err, "the HTML page could not be read")
	}
	doc.Find(htmlNoise).Remove()
	// Page-level header and footer (site banner, links, legal); a <header>
	// inside an <article> or <main> is the content's own title block.
	doc.Find("header, footer").Each(func(_ int, s *goquery.Selection) {
		if s.ParentsFiltered("article, main").Length() == 0 {
			s.Remove()
		}
	})
	// Inline images as data: URIs would put base64 into the text.
	doc.Find("img").Each(func(_ int, s *goquery.Selection) {
		src, _ := s.Attr("src")
		if !strings.HasPrefix(strings.ToLower(strings.TrimSpace(src)), "data:") {
			return
		}
		if alt := strings.TrimSpace(s.AttrOr("alt", "")); alt != "" {
			s.ReplaceWithNodes(&html.Node{Type: html.TextNode, Data: alt})
		} else {
			s.Remove()
		}
	})

	conv := converter.NewConverter(converter.WithPlugins(
		base.NewBasePlugin(),
		commonmark.NewCommonmarkPlugin(),
		table.NewTablePlugin(),
	))
	if len(doc.Nodes) == 0 {
		return "", nil
	}
	md, err := conv.ConvertNode(doc.Nodes[0], converter.WithContext(ctx))
	if err != nil {
		if ctx.Err() != nil {
			return "", fault.Classify(ctx.Err())
		}
		return "", permanent(CodeHTMLCorrupt, err, "the HTML page could not be converted to text")
	}
	return finishMarkdown(string(md)), nil
}
