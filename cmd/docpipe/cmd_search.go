package main

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/docpipe/docpipe/internal/client"
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
			o := backendOptions{user: userFlag, ownOnly: !all}
			if userFlag != "" || all {
				o.directOnly = "--user and --all-users are for direct mode: through the API the credential decides whose documents are searched"
			}
			return withCLI(cmd, o, asJSON, func(c client.CLI) error {
				return c.Search(cmd.Context(), strings.Join(args, " "), k, mode)
			})
		},
	}
	c.Flags().IntVarP(&k, "k", "k", 5, "number of results")
	c.Flags().StringVar(&userFlag, "user", "", "search this user's documents (default DOCPIPE_USER_ID)")
	c.Flags().BoolVar(&all, "all-users", false, "search every user's documents")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.Flags().StringVar(&mode, "mode", "hybrid", "vector (cosine), keyword (full text) or hybrid (reciprocal-rank fusion of both)")
	return c
}
