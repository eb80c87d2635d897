package llamaparse

import "strings"

// Credit prices (developers.llamaindex.ai/python/cloud/general/pricing).
const (
	USDPerCreditNA = 1.00 / 1000
	USDPerCreditEU = 1.50 / 1000
)

// CreditsPerPage returns the published credits per page for a parse_mode, and
// false when the price is not a single published number (LVM modes cost 6–150
// by model; layout/agentic-plus modes are not mapped to a mode name in the
// price list). An empty mode is priced as the cost-effective default (3).
func CreditsPerPage(parseMode string) (float64, bool) {
	switch strings.TrimSpace(parseMode) {
	case "parse_page_without_llm":
		return 1, true
	case "", "parse_page_with_llm":
		return 3, true
	case "parse_page_with_agent":
		return 10, true
	case "parse_document_with_llm":
		return 30, true
	}
	return 0, false
}

// EstimateCredits prices pages under the upload options (parse_mode, or the
// legacy fast_mode=true which parses without AI). ok is false when the mode
// has no single published price.
func EstimateCredits(parseOptions map[string]string, pages int) (credits float64, ok bool) {
	mode := parseOptions["parse_mode"]
	if mode == "" && strings.EqualFold(parseOptions["fast_mode"], "true") {
		mode = "parse_page_without_llm"
	}
	if mode == "" && strings.EqualFold(parseOptions["premium_mode"], "true") {
		return 0, false
	}
	per, ok := CreditsPerPage(mode)
	if !ok {
		return 0, false
	}
	return per * float64(max(pages, 0)), true
}

// CostUSD converts credits to US dollars at the NA or EU price.
func CostUSD(credits float64, eu bool) float64 {
	if eu {
		return credits * USDPerCreditEU
	}
	return credits * USDPerCreditNA
}
