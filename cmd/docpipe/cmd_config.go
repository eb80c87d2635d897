package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/docpipe/docpipe/internal/config"
)

func configCmd() *cobra.Command {
	c := &cobra.Command{Use: "config", Short: "Inspect configuration"}
	// `config check` is the older name of `validate config`.
	check := validateConfigCmd("check")
	check.Flags().Bool("json", false, "print the checks as JSON")
	c.AddCommand(check)
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
