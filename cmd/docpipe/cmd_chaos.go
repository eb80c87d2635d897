package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/docpipe/docpipe/internal/chaos"
)

func chaosCmd() *cobra.Command {
	o := chaos.Options{}
	c := &cobra.Command{
		Use:   "chaos",
		Short: "Fault-injection run: documents through the API while workers are killed and Postgres restarts; exit 1 on any lost or doubled work",
		Long: `chaos starts a private Postgres cluster (--cluster-dir, --cluster-port; removed at the end
unless --keep) and makes a set of --docs uploads: the 232-page PDF, small PDFs, DOCX, HTML,
markdown and text files, exact duplicates (the same bytes again), content duplicates
(different bytes, same parsed content) and corrupt files. It sends the set through the
API twice, each time to a fresh database, one 'docpipe serve' and --workers 'docpipe
worker' processes, with LlamaParse (webhooks on), OpenAI embeddings and Supabase storage
served by twins in this process:

  1. fault-free, to record what every document must end as;
  2. under faults, uploads arriving at --rate per second: the OpenAI and storage twins
     answer 20% 5xx and 10% 429, LlamaParse webhooks are dropped (30%) and delivered
     three times, a random worker is SIGKILLed every --kill-every and replaced, Postgres
     is restarted in immediate mode --pg-restarts times, optionally stopped for
     --outage, and with --kill-api the API process is SIGKILLed and started again.

Then it checks: every good document complete exactly once (one per content group, the
others duplicates of it), every bad one refused or failed with its reason, per document
the ordered chunk and vector digests equal to the fault-free pass, no duplicate chunk
or vector rows, no buffer rows, no run left active, every River job finalized, billed
tokens equal to the chunks' tokens (and LlamaParse pages and jobs once per document), no
process exited on its own, and, during an outage, 503 problem+json from the API and a
false /readyz. It prints one summary line (with the time from the last fault to the
last document settling), the faults, and each violation; it exits 1 on any violation.

Worker settings come from the environment (DOCPIPE_*), e.g. DOCPIPE_RESCUE_AFTER.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			self, err := os.Executable()
			if err != nil {
				return err
			}
			o.Bin, o.Progress = self, cmd.ErrOrStderr()
			if o.ClusterDir == "" {
				o.ClusterDir = filepath.Join(os.TempDir(), fmt.Sprintf("docpipe-chaos-pg-%d", o.ClusterPort))
			}
			res, err := chaos.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), res.Report())
			if o.Keep {
				fmt.Fprintf(cmd.OutOrStdout(), "kept: the cluster at %s (%s); stop it with: docpipe cluster stop --dir %s --port %d\n",
					o.ClusterDir, res.DBURL, o.ClusterDir, o.ClusterPort)
			}
			if len(res.Violations) > 0 {
				return errors.New("chaos: violations found")
			}
			return nil
		},
	}
	f := c.Flags()
	f.IntVar(&o.Docs, "docs", 100, "uploads in the set")
	f.IntVar(&o.Workers, "workers", 3, "worker processes")
	f.DurationVar(&o.KillEvery, "kill-every", 3*time.Second, "SIGKILL a random worker this often (and start a replacement); negative: never")
	f.IntVar(&o.PGRestarts, "pg-restarts", 1, "Postgres restarts in immediate mode while uploads arrive; negative: none")
	f.DurationVar(&o.Outage, "outage", 0, "also stop Postgres this long, a quarter into the uploads (e.g. 30s)")
	f.BoolVar(&o.KillAPI, "kill-api", false, "also SIGKILL the API process (and start another) while uploads arrive")
	f.Float64Var(&o.Rate, "rate", 5, "uploads per second in the faulty pass")
	f.Int64Var(&o.Seed, "seed", 1, "seed of the set's bytes and of the faults")
	f.DurationVar(&o.SettleTimeout, "settle-timeout", 5*time.Minute, "longest wait for every run to end after the last fault")
	f.BoolVar(&o.Keep, "keep", false, "leave the cluster running and the logs in place for inspection")
	f.BoolVar(&o.NoReference, "no-reference", false, "skip the fault-free pass (then nothing is compared with it: digests, tokens, pages)")
	f.StringVar(&o.ClusterDir, "cluster-dir", "", "the private cluster's folder (default: $TMPDIR/docpipe-chaos-pg-PORT)")
	f.IntVar(&o.ClusterPort, "cluster-port", 54380, "the private cluster's port on 127.0.0.1")
	f.StringVar(&o.CorpusDir, "corpus", "testdata/corpus", "folder with scan_classic_hmo.pdf and the corrupt-* files")
	f.StringVar(&o.SamplesDir, "samples", "samples", "folder with one sample document of each kind")
	return c
}
