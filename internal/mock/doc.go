// Package mock holds docpipe's twins of the external services it calls: LlamaParse
// (parsing jobs, webhooks, pages and credits), the OpenAI embeddings API (rate-limit
// headers and 429s, the real endpoint's limits) and Supabase Storage (buckets,
// objects, signed URLs). Each is an http.Handler with the real service's routes,
// request checks and answer shapes, plus knobs to inject what the real one does on a
// bad day: latency, error rates, 429s, dropped or repeated webhooks, jobs that never
// finish.
//
// docpipe's tests reach the network edge only through these twins (never a fake inside
// the process), `docpipe mock NAME` serves one on a port for manual runs, and
// `docpipe dev` runs all three so a laptop has the production shape without keys. The
// twins answer deterministically for a given Seed; the LlamaParse twin parses with
// docpipe's own local parser and the OpenAI twin returns the local embedder's vectors,
// so a run through the twins yields the same chunks and vectors as the local path.
package mock
