package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/docpipe/docpipe/internal/config"
)

func configCmd() *cobra.Command {
	c := &cobra.Command{Use: "config", Short: "Inspect configuration"}
	c.AddCommand(&cobra.Command{
		Use:   "check",
		Short: "Print every setting and every problem at once (secrets are never shown)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, problems := config.FromEnv()
			out := cmd.OutOrStdout()
			for _, line := range cfg.Report(os.Getenv) {
				fmt.Fprintln(out, line)
			}
			if len(problems) == 0 {
				fmt.Fprintln(out, "\nconfiguration OK")
				return nil
			}
			fmt.Fprintf(out, "\n%d problem(s):\n", len(problems))
			for _, p := range problems {
				fmt.Fprintln(out, "  "+p.Message)
			}
			return errors.New("configuration has problems")
		},
	})
	var write string
	docs := &cobra.Command{
		Use:   "docs",
		Short: "Print the environment variable table (markdown), or --write it into a file between <!-- config-table --> markers",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if write == "" {
				fmt.Fprint(cmd.OutOrStdout(), config.MarkdownTable())
				return nil
			}
			b, err := os.ReadFile(write)
			if err != nil {
				return err
			}
			const start, end = "<!-- config-table -->\n", "<!-- /config-table -->"
			i, j := strings.Index(string(b), start), strings.Index(string(b), end)
			if i < 0 || j < i {
				return fmt.Errorf("%s has no %q … %q markers", write, strings.TrimSpace(start), end)
			}
			out := string(b[:i+len(start)]) + config.MarkdownTable() + string(b[j:])
			return os.WriteFile(write, []byte(out), 0o644)
		},
	}
	docs.Flags().StringVar(&write, "write", "", "replace the table in this file (e.g. README.md)")
	c.AddCommand(docs)
	return c
}
