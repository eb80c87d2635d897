package main

import (
	"fmt"
	"net/http"
	"time"

	"github.com/spf13/cobra"
)

// probeCmd is the container health check (the final image has no curl or wget).
func probeCmd() *cobra.Command {
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "probe URL",
		Short: "GET URL and exit 0 if it answers 2xx/3xx (container health checks; the image has no curl)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client := &http.Client{Timeout: timeout}
			resp, err := client.Get(args[0])
			if err != nil {
				return fmt.Errorf("probe %s: %w", args[0], err)
			}
			resp.Body.Close()
			if resp.StatusCode >= 400 {
				return fmt.Errorf("probe %s: HTTP %d", args[0], resp.StatusCode)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: HTTP %d\n", args[0], resp.StatusCode)
			return nil
		},
	}
	c.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "give up after this long")
	return c
}
