package embed

import (
	"context"
	"maps"
)

// Usage describes one successful embeddings request (one batch).
type Usage struct {
	Model        string  // the model that was asked for (OpenAIOptions.Model)
	Inputs       int     // texts in the batch
	PromptTokens int     // as reported by the server (the local cl100k count if it reported none)
	TotalTokens  int     // as reported by the server (= PromptTokens for embeddings)
	Attempts     int     // HTTP requests it took, 1 + retries
	CostUSD      float64 // PromptTokens priced with OpenAIOptions.Prices
}

// DefaultOpenAIPrices returns the list prices of the OpenAI embedding models in
// USD per 1M input tokens (external-apis.md §2.4; the Batch API costs half, not
// used here). The map is a fresh copy.
func DefaultOpenAIPrices() map[string]float64 {
	return map[string]float64{
		"text-embedding-3-small": 0.02,
		"text-embedding-3-large": 0.13,
		"text-embedding-ada-002": 0.10,
	}
}

// mergePrices returns the default prices overlaid with the given ones.
func mergePrices(over map[string]float64) map[string]float64 {
	p := DefaultOpenAIPrices()
	maps.Copy(p, over)
	return p
}

// OpenAICost prices tokens of model in USD with prices (USD per 1M tokens; nil
// = DefaultOpenAIPrices). An unknown model costs 0.
func OpenAICost(model string, tokens int, prices map[string]float64) float64 {
	if prices == nil {
		prices = DefaultOpenAIPrices()
	}
	return float64(tokens) * prices[model] / 1e6
}

type usageKey struct{}

// WithUsage returns a context whose embeddings requests also report their usage
// to f (besides OpenAIOptions.OnUsage): the pipeline uses it to bill each request
// to the job that made it. f may be called concurrently.
func WithUsage(ctx context.Context, f func(Usage)) context.Context {
	return context.WithValue(ctx, usageKey{}, f)
}

func reportUsage(ctx context.Context, u Usage) {
	if f, ok := ctx.Value(usageKey{}).(func(Usage)); ok && f != nil {
		f(u)
	}
}
