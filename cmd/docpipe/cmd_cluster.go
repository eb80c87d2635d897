package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/docpipe/docpipe/internal/devenv"
)

func clusterCmd() *cobra.Command {
	cl := &devenv.Cluster{}
	c := &cobra.Command{
		Use:   "cluster",
		Short: "Start or stop a private PostgreSQL cluster in a folder (for development and tests)",
	}
	c.PersistentFlags().StringVar(&cl.Dir, "dir", ".docpipe/pg", "cluster folder")
	c.PersistentFlags().IntVar(&cl.Port, "port", 54320, "TCP port on 127.0.0.1")
	var noFsync bool
	start := &cobra.Command{
		Use:   "start",
		Short: "Create (first time) and start the cluster; prints its admin URL",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl.Fsync = !noFsync
			if err := cl.Start(cmd.Context()); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), cl.URL("postgres"))
			return nil
		},
	}
	start.Flags().BoolVar(&noFsync, "no-fsync", false, "fsync=off: faster, NOT crash-safe (tests only)")
	stop := &cobra.Command{
		Use:   "stop",
		Short: "Stop the cluster",
		RunE:  func(cmd *cobra.Command, _ []string) error { return cl.Stop(cmd.Context()) },
	}
	c.AddCommand(start, stop)
	return c
}
