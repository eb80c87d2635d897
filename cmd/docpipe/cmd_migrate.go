package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/docpipe/docpipe/internal/db"
)

func migrateCmd() *cobra.Command {
	c := &cobra.Command{Use: "migrate", Short: "Apply or inspect database migrations (docpipe schema and River)"}
	c.AddCommand(&cobra.Command{
		Use:   "up",
		Short: "Apply every pending migration (safe to run concurrently and repeatedly)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			if err := db.Migrate(cmd.Context(), cfg.DatabaseURL, newLogger(cfg)); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "migrations: at head")
			return nil
		},
	})
	var all bool
	down := &cobra.Command{
		Use:   "down",
		Short: "Roll the docpipe schema back one version (--all: everything, River's tables too)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			return db.MigrateDown(cmd.Context(), cfg.DatabaseURL, all, newLogger(cfg))
		},
	}
	down.Flags().BoolVar(&all, "all", false, "roll back every migration, including River's (drops all data)")
	c.AddCommand(down)
	c.AddCommand(&cobra.Command{
		Use:   "status",
		Short: "List migrations and whether each is applied",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			st, err := db.Status(cmd.Context(), cfg.DatabaseURL)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "COMPONENT\tVERSION\tAPPLIED\tNAME")
			pending := 0
			for _, s := range st {
				fmt.Fprintf(tw, "%s\t%d\t%v\t%s\n", s.Component, s.Version, s.Applied, s.Name)
				if !s.Applied {
					pending++
				}
			}
			tw.Flush()
			fmt.Fprintf(cmd.OutOrStdout(), "%d pending\n", pending)
			return nil
		},
	})
	return c
}
