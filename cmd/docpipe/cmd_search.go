package main

import (
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/docpipe/docpipe/internal/catalog"
)

func searchCmd() *cobra.Command {
	var k int
	var userFlag, mode string
	var all, asJSON bool
	c := &cobra.Command{
		Use:   "search QUERY",
		Short: "Top-k search over the searchable chunks: vector (cosine), keyword (full text) or hybrid (RRF); through the API with --server",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			query := strings.Join(args, " ")
			switch mode {
			case "vector", "keyword", "hybrid":
			default:
				return fmt.Errorf("--mode %q: use vector, keyword or hybrid", mode)
			}
			c, err := apiClient(cmd)
			if err != nil {
				return err
			}
			if c != nil {
				if userFlag != "" || all {
					return fmt.Errorf("--user and --all-users are for direct mode: through the API the credential decides whose documents are searched")
				}
				hits, err := c.Search(cmd.Context(), query, k, mode)
				if err != nil {
					return apiError(err)
				}
				if asJSON {
					return printJSON(cmd, hits)
				}
				out := make([]catalog.Hit, len(hits))
				for i, h := range hits {
					out[i] = catalog.Hit{DocumentID: h.DocumentID, Filename: h.Filename, ChunkID: h.ChunkID, Ord: h.Ord,
						HeadingPath: h.HeadingPath, PageStart: h.PageStart, PageEnd: h.PageEnd, Score: h.Score, Text: h.Text,
						VectorRank: h.VectorRank, KeywordRank: h.KeywordRank}
				}
				printHits(cmd, out)
				return nil
			}
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
			scope := catalog.AllUsers()
			if user != nil {
				scope = catalog.UserScope(*user)
			}
			hits, err := catalog.Search(cmd.Context(), a.pool, a.embedder, scope, catalog.SearchRequest{Query: query, K: k, Mode: mode})
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd, hits)
			}
			printHits(cmd, hits)
			return nil
		},
	}
	c.Flags().IntVarP(&k, "k", "k", 5, "number of results")
	c.Flags().StringVar(&userFlag, "user", "", "search this user's documents (default DOCPIPE_USER_ID)")
	c.Flags().BoolVar(&all, "all-users", false, "search every user's documents")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.Flags().StringVar(&mode, "mode", "hybrid", "vector (cosine), keyword (full text) or hybrid (reciprocal-rank fusion of both)")
	return c
}

func printHits(cmd *cobra.Command, hits []catalog.Hit) {
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
}

func snippet(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
