package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/docpipe/docpipe/internal/config"
	"github.com/docpipe/docpipe/internal/validate"
)

// validateCmd is `docpipe validate config|deploy|env|db`: every check prints one
// PASS/FAIL line with its reason and the fix (or --json), and the command exits 1 on
// any failure, so a deploy pipeline can gate on it.
func validateCmd() *cobra.Command {
	c := &cobra.Command{Use: "validate", Short: "Check configuration, deploy files, a live environment and the schema before deploying"}
	c.PersistentFlags().Bool("json", false, "print the checks as JSON")
	c.AddCommand(validateConfigCmd("config"))
	c.AddCommand(validateDeployCmd())
	c.AddCommand(validateEnvCmd(), validateDBCmd())
	return c
}

// validateConfigCmd checks this process's environment through config.Load; it is
// also `docpipe config check`, which prints every setting first.
func validateConfigCmd(use string) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: "Check every setting of this environment at once (secrets are never shown)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var r validate.Report
			r.Add(validate.Config("config", os.Getenv)...)
			if asJSON, _ := cmd.Flags().GetBool("json"); !asJSON {
				cfg, _ := config.FromEnv()
				out := cmd.OutOrStdout()
				for _, line := range cfg.Report(os.Getenv) {
					fmt.Fprintln(out, line)
				}
				fmt.Fprintln(out)
			}
			return printReport(cmd, &r)
		},
	}
}

// errChecksFailed makes the command exit 1 after the report said why.
var errChecksFailed = errors.New("validation failed")

// printReport writes r as text or JSON (--json) and returns errChecksFailed when a
// check failed.
func printReport(cmd *cobra.Command, r *validate.Report) error {
	out := cmd.OutOrStdout()
	var err error
	if asJSON, _ := cmd.Flags().GetBool("json"); asJSON {
		err = r.WriteJSON(out)
	} else {
		err = r.WriteText(out)
	}
	if err != nil {
		return err
	}
	if !r.OK() {
		return errChecksFailed
	}
	return nil
}
