package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/docpipe/docpipe/internal/config"
	"github.com/docpipe/docpipe/internal/parse"
	"github.com/docpipe/docpipe/internal/pdfgen"
)

func parseCmd() *cobra.Command {
	var warmup bool
	c := &cobra.Command{
		Use:   "parse FILE...",
		Short: "Run the local parser on files and print the markdown (no database needed)",
		Long: `parse prints what the pipeline's parse stage would produce for each file, or the
reason it would fail. --warmup parses a generated PDF once, which compiles pdfium's
WebAssembly into DOCPIPE_CACHE_DIR: do it at image build time so the first PDF a new
worker sees does not pay ~4 s and ~500 MB for the compile.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, _ := config.FromEnv() // only the cache and page settings matter here
			p := parse.NewLocal(parse.Options{CacheDir: filepath.Join(cfg.CacheDir, "wazero"), MaxPages: cfg.MaxPages, Workers: cfg.ParseWorkers})
			defer p.Close()
			if warmup {
				if _, err := p.Parse(cmd.Context(), pdfgen.OnePager(1), "warmup.pdf"); err != nil {
					return fmt.Errorf("warm-up parse: %w", err)
				}
				fmt.Fprintln(cmd.OutOrStdout(), "pdfium compiled into", filepath.Join(cfg.CacheDir, "wazero"))
			}
			failed := 0
			for _, f := range args {
				data, err := os.ReadFile(f)
				if err != nil {
					return err
				}
				doc, err := p.Parse(cmd.Context(), data, filepath.Base(f))
				if err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s: %v\n", f, err)
					failed++
					continue
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s, %d pages, %d bytes of markdown\n", f, doc.MIME, doc.Pages, len(doc.Markdown))
				fmt.Fprint(cmd.OutOrStdout(), doc.Markdown)
			}
			if failed > 0 {
				return fmt.Errorf("%d file(s) could not be parsed", failed)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&warmup, "warmup", false, "compile pdfium into the cache first")
	return c
}
