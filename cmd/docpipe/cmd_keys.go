package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/docpipe/docpipe/internal/auth"
	"github.com/docpipe/docpipe/internal/db"
)

func keysCmd() *cobra.Command {
	c := &cobra.Command{Use: "keys", Short: "Create, list and revoke service API keys for the HTTP API"}
	c.AddCommand(keysCreateCmd(), keysListCmd(), keysRevokeCmd())
	return c
}

func keysCreateCmd() *cobra.Command {
	var admin bool
	var user, name string
	create := &cobra.Command{
		Use:   "create",
		Short: "Create an API key and print it once (only its hash is stored)",
		Long: "Create an API key for server-to-server use of the HTTP API. The key acts as --user " +
			"(default DOCPIPE_USER_ID); with --admin it sees and manages every user's documents " +
			"(uploads then need ?user_id= unless --user is given too). The key is printed once.",
		RunE: func(cmd *cobra.Command, _ []string) error {
			keys, done, err := openKeys(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			var uid *uuid.UUID
			if user != "" || !admin {
				s := user
				if s == "" {
					cfg, _ := loadConfig()
					s = cfg.UserID
				}
				u, err := uuid.Parse(s)
				if err != nil {
					return fmt.Errorf("--user: %q is not a UUID", s)
				}
				uid = &u
			}
			return createKey(cmd.Context(), keys, auth.NewKey{Name: name, UserID: uid, Admin: admin}, cmd.OutOrStdout())
		},
	}
	create.Flags().BoolVar(&admin, "admin", false, "the key sees and manages every user's documents")
	create.Flags().StringVar(&user, "user", "", "user id (UUID) the key acts as (default DOCPIPE_USER_ID; optional with --admin)")
	create.Flags().StringVar(&name, "name", "", "a name to recognise the key by")
	return create
}

func keysListCmd() *cobra.Command {
	var all bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List API keys (never the keys themselves)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			keys, done, err := openKeys(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			return listKeys(cmd.Context(), keys, all, cmd.OutOrStdout())
		},
	}
	list.Flags().BoolVar(&all, "all", false, "include revoked keys")
	return list
}

func keysRevokeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID|PREFIX",
		Short: "Revoke an API key (by id or by the prefix `keys list` shows); it stops working at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			keys, done, err := openKeys(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			k, err := keys.Revoke(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked %s (%s, %s)\n", k.ID, k.Prefix, describeKey(k))
			return nil
		},
	}
}

// openKeys connects to the database only (no parser, embedder or store needed).
func openKeys(ctx context.Context) (*auth.Keys, func(), error) {
	cfg, err := loadConfig()
	if err != nil {
		return nil, nil, err
	}
	pool, err := db.Open(ctx, cfg.DatabaseURL, 2)
	if err != nil {
		return nil, nil, fmt.Errorf("%w (is DATABASE_URL right, and did `docpipe migrate up` run?)", err)
	}
	return auth.NewKeys(pool), pool.Close, nil
}

func createKey(ctx context.Context, keys *auth.Keys, n auth.NewKey, out io.Writer) error {
	key, info, err := keys.Create(ctx, n)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, key)
	fmt.Fprintf(out, "\nid %s, %s, name %q\n", info.ID, describeKey(info), info.Name)
	fmt.Fprintln(out, "This is the only time the key is shown; docpipe stores only its SHA-256.")
	fmt.Fprintln(out, "Use it as: Authorization: Bearer <key>   (or X-API-Key: <key>)")
	return nil
}

func describeKey(k auth.KeyInfo) string {
	who := "no user"
	if k.UserID != nil {
		who = "user " + k.UserID.String()
	}
	if k.Admin {
		return "admin, " + who
	}
	return who
}

func listKeys(ctx context.Context, keys *auth.Keys, all bool, out io.Writer) error {
	list, err := keys.List(ctx, all)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPREFIX\tNAME\tUSER\tADMIN\tCREATED\tLAST USED\tREVOKED")
	ts := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.Local().Format("2006-01-02 15:04")
	}
	for _, k := range list {
		user := "-"
		if k.UserID != nil {
			user = k.UserID.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\t%s\t%s\n", k.ID, k.Prefix, k.Name, user, k.Admin,
			ts(&k.CreatedAt), ts(k.LastUsedAt), ts(k.RevokedAt))
	}
	return tw.Flush()
}
