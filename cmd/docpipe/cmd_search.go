package main

import (
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/docpipe/docpipe/internal/pipeline"
)

func searchCmd() *cobra.Command {
	var k int
	var userFlag string
	var all, asJSON bool
	c := &cobra.Command{
		Use:   "search QUERY",
		Short: "Cosine top-k search over the searchable chunks, embedded with the configured embedder",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := setup(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			var user *uuid.UUID
			if !all {
				s := a.cfg.UserID
				if userFlag != "" {
					s = userFlag
				}
				u, err := uuid.Parse(s)
				if err != nil {
					return fmt.Errorf("--user: %q is not a UUID", s)
				}
				user = &u
			}
			hits, err := pipeline.Search(cmd.Context(), a.pool, a.embedder, user, strings.Join(args, " "), k)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd, hits)
			}
			out := cmd.OutOrStdout()
			if len(hits) == 0 {
				fmt.Fprintln(out, "no results")
			}
			for i, h := range hits {
				pages := ""
				if h.PageStart > 0 {
					pages = fmt.Sprintf(" p.%d", h.PageStart)
					if h.PageEnd > h.PageStart {
						pages += fmt.Sprintf("-%d", h.PageEnd)
					}
				}
				fmt.Fprintf(out, "%d. %.3f  %s  chunk %d%s  %s\n", i+1, h.Score, h.Filename, h.Ord, pages, strings.Join(h.HeadingPath, " > "))
				fmt.Fprintf(out, "   %s\n", snippet(h.Text, 240))
			}
			return nil
		},
	}
	c.Flags().IntVarP(&k, "k", "k", 5, "number of results")
	c.Flags().StringVar(&userFlag, "user", "", "search this user's documents (default DOCPIPE_USER_ID)")
	c.Flags().BoolVar(&all, "all-users", false, "search every user's documents")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func snippet(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
