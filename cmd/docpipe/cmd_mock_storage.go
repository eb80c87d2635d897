package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/docpipe/docpipe/internal/mock"
)

// mockStorageCmd is `docpipe mock storage`: the Supabase Storage twin.
func mockStorageCmd() *cobra.Command {
	var (
		addr, apiKey   string
		seed           int64
		maxObjectBytes int64
		latency        time.Duration
		errorRate500   float64
		buckets        []string
		uploadExpiry   time.Duration
	)
	c := &cobra.Command{
		Use:   "storage",
		Short: "Supabase Storage API twin (served bare and under /storage/v1; 400-with-statusCode errors, signed URLs)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := mock.StorageOptions{APIKey: apiKey, Seed: seed, MaxObjectBytes: maxObjectBytes, Latency: latency,
				Buckets: buckets, UploadURLExpiry: uploadExpiry}
			if errorRate500 > 0 {
				opts.ErrorRates = map[int]float64{500: errorRate500}
			}
			twin := mock.NewStorageServer(opts)
			defer twin.Close()
			return serveUntilDone(cmd, addr, twin, "storage twin")
		},
	}
	f := c.Flags()
	f.StringVar(&addr, "addr", "127.0.0.1:8003", "listen address")
	f.StringVar(&apiKey, "api-key", "", "require this key as Bearer (and as apikey under /storage/v1); empty: accept any")
	f.Int64Var(&seed, "seed", 1, "seed for ids, injected faults and the signing secret")
	f.Int64Var(&maxObjectBytes, "max-object-bytes", 50<<20, "largest upload accepted (larger: statusCode 413)")
	f.DurationVar(&latency, "latency", 0, "delay added to every request")
	f.Float64Var(&errorRate500, "error-rate-500", 0, "share of requests answered 500 (0..1)")
	f.StringSliceVar(&buckets, "bucket", []string{"docpipe"}, "buckets created at start (private; repeat or comma-separate)")
	f.DurationVar(&uploadExpiry, "upload-url-expiry", 2*time.Hour, "lifetime of signed upload URLs (hosted Supabase: 2h)")
	return c
}
