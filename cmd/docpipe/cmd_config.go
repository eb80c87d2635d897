package main

import (
	"errors"
	"fmt"
	"os"

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
	c.AddCommand(&cobra.Command{
		Use:   "docs",
		Short: "Print the environment variable table (markdown) for README/docs",
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprint(cmd.OutOrStdout(), config.MarkdownTable())
		},
	})
	return c
}
