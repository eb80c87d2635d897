package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/docpipe/docpipe/internal/chunk"
	"github.com/docpipe/docpipe/internal/mock"
)

// ThroughputOptions configure the embedding-throughput benchmark.
type ThroughputOptions struct {
	TPM, RPM int           // the twin's limits (and the worker's own limiter's)
	Warmup   time.Duration // skipped after the first embedded token: the buckets start full
	Window   time.Duration // measured; documents are sized to outlast it
}

// ThroughputResult is one throughput run.
type ThroughputResult struct {
	Result
	WindowTokens int64   // tokens embedded inside the window
	Share        float64 // WindowTokens / (TPM × window): sustained share of the token limit
	Requests     int64   // embedding requests the twin received (whole run)
	Status429    int64   // of which answered 429
}

// Throughput runs one worker process with DOCPIPE_EMBED_PROVIDER=openai against the
// OpenAI twin limited to TPM/RPM, keeps it busy with generated documents, and
// measures the tokens embedded per minute after the warm-up (both the twin's token
// bucket and the client's sliding window allow a full minute's budget at once, so
// the first minute is not sustained throughput).
func Throughput(ctx context.Context, o Options, to ThroughputOptions) (ThroughputResult, error) {
	twin := mock.NewOpenAIServer(mock.OpenAIOptions{TPM: to.TPM, RPM: to.RPM, APIKey: "sk-bench", Seed: 1})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return ThroughputResult{}, err
	}
	srv := &http.Server{Handler: twin, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()

	o.WorkerEnv = append(append([]string(nil), o.WorkerEnv...),
		"DOCPIPE_EMBED_PROVIDER=openai", "OPENAI_BASE_URL=http://"+l.Addr().String()+"/v1", "OPENAI_API_KEY=sk-bench",
		"OPENAI_TPM="+strconv.Itoa(to.TPM), "OPENAI_RPM="+strconv.Itoa(to.RPM))
	// Enough text for warm-up + window + half a minute more at the full rate.
	need := int(float64(to.TPM) * (to.Warmup + to.Window + 30*time.Second).Minutes())
	docs := TextDocs(need, 100_000, time.Now().UnixNano())

	var res ThroughputResult
	var first time.Time
	var atWarm, atEnd int64
	o.Watch = func(ctx context.Context, _ time.Time) {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-tick.C:
				tokens := twin.Stats().Tokens
				switch {
				case first.IsZero():
					if tokens > 0 {
						first = now
					}
				case atWarm == 0 && now.Sub(first) >= to.Warmup:
					atWarm = tokens
				case atEnd == 0 && now.Sub(first) >= to.Warmup+to.Window:
					atEnd = tokens
				}
			}
		}
	}
	r, err := Run(ctx, o, docs)
	res.Result = r
	st := twin.Stats()
	res.Requests, res.Status429 = st.Requests, st.Status[http.StatusTooManyRequests]
	if err != nil {
		return res, err
	}
	if atEnd == 0 {
		return res, fmt.Errorf("the documents were embedded before the window ended (warm-up %s + window %s); nothing measured", to.Warmup, to.Window)
	}
	res.WindowTokens = atEnd - atWarm
	res.Share = float64(res.WindowTokens) / (float64(to.TPM) * to.Window.Minutes())
	return res, nil
}

// TextDocs generates distinct markdown documents of about perDoc tokens each,
// totalling about total tokens (so nothing is deduplicated between them or runs).
func TextDocs(total, perDoc int, seed int64) []Doc {
	words := strings.Fields(`policy coverage deductible copayment coinsurance premium network provider hospital
		outpatient inpatient prescription formulary referral authorization claim appeal grievance benefit exclusion
		limit emergency urgent preventive specialist therapy equipment supplies dental vision hearing transport
		member plan year month service facility skilled nursing home health hospice mental substance laboratory
		imaging ambulance transplant dialysis rehabilitation wellness screening vaccine annual maximum out-of-pocket`)
	rng := rand.New(rand.NewPCG(uint64(seed), 7))
	var docs []Doc
	for n, i := 0, 0; n < total; i++ {
		var b strings.Builder
		fmt.Fprintf(&b, "# Evidence of coverage %d-%d\n\n", seed, i)
		for sec := 0; b.Len() < perDoc*5; sec++ {
			fmt.Fprintf(&b, "## Section %d\n\n", sec)
			for p := 0; p < 6; p++ {
				for w := 0; w < 80; w++ {
					b.WriteString(words[rng.IntN(len(words))])
					if w%13 == 12 {
						fmt.Fprintf(&b, " %d. ", rng.IntN(10000))
					} else {
						b.WriteByte(' ')
					}
				}
				b.WriteString("\n\n")
			}
		}
		text := b.String()
		n += chunk.CountTokens(text)
		docs = append(docs, Doc{Name: fmt.Sprintf("coverage-%03d.md", i), Data: []byte(text)})
	}
	return docs
}
