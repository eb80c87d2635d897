package embed

import (
	"math/rand/v2"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// randFloat is the jitter source (a package variable so tests could pin it).
var randFloat = rand.Float64

// keyLike matches OpenAI-style secret keys, whole or masked ("sk-proj-…",
// "sk-abc****wxyz"), which error messages sometimes echo.
var keyLike = regexp.MustCompile(`sk-[A-Za-z0-9_\-*]+`)

// tryAgainIn matches the hint in 429 messages: "Please try again in 1.5s.",
// "… in 20ms.", "… in 6m0s." (Go-style durations; longer units first so
// "20ms" is not read as 20 minutes). tryAgainSeconds matches the spelled-out
// forms some compatible servers use ("retry after 7 seconds").
var (
	tryAgainIn      = regexp.MustCompile(`(?i)try again in ((?:\d+(?:\.\d+)?(?:ms|us|µs|ns|h|m|s))+)`)
	tryAgainSeconds = regexp.MustCompile(`(?i)(?:try again|retry) (?:in|after) (\d+(?:\.\d+)?) ?seconds?`)
)

// retryDelay is the wait the server asks for, 0 if it gives none. In order:
// retry-after-ms, retry-after (seconds or an HTTP date), the "try again in"
// hint in the message, and for 429s the x-ratelimit-reset-* header of the
// exhausted limit (errType "requests" or "tokens"; otherwise the one whose
// remaining is 0, otherwise the longer one).
func retryDelay(h http.Header, message, errType string, is429 bool, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("retry-after-ms")); v != "" {
		if f, err := strconv.ParseFloat(v, 64); err == nil && f > 0 && f < 1e12 {
			return time.Duration(f * float64(time.Millisecond))
		}
	}
	if v := strings.TrimSpace(h.Get("retry-after")); v != "" {
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			if f > 0 && f < 1e9 {
				return time.Duration(f * float64(time.Second))
			}
		} else if t, err := http.ParseTime(v); err == nil {
			if d := t.Sub(now); d > 0 {
				return d
			}
		}
	}
	if m := tryAgainIn.FindStringSubmatch(message); m != nil {
		if d, err := time.ParseDuration(m[1]); err == nil && d > 0 {
			return d
		}
	}
	if m := tryAgainSeconds.FindStringSubmatch(message); m != nil {
		if f, err := strconv.ParseFloat(m[1], 64); err == nil && f > 0 && f < 1e9 {
			return time.Duration(f * float64(time.Second))
		}
	}
	if !is429 {
		return 0
	}
	reset := func(kind string) (time.Duration, bool) {
		return parseResetDuration(h.Get("x-ratelimit-reset-" + kind))
	}
	exhausted := func(kind string) bool {
		return strings.TrimSpace(h.Get("x-ratelimit-remaining-"+kind)) == "0"
	}
	switch errType {
	case "requests", "tokens":
		if d, ok := reset(errType); ok && d > 0 {
			return d
		}
	}
	var best, longest time.Duration
	for _, kind := range []string{"requests", "tokens"} {
		d, ok := reset(kind)
		if !ok {
			continue
		}
		longest = max(longest, d)
		if exhausted(kind) {
			best = max(best, d)
		}
	}
	if best > 0 {
		return best
	}
	return longest
}
