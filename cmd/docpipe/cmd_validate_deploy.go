package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/docpipe/docpipe/internal/validate"
)

// validateDeployCmd is `docpipe validate deploy [PATH…]`: the deploy files checked by
// meaning, against this binary's own command tree and routes.
func validateDeployCmd() *cobra.Command {
	o := validate.DeployOptions{}
	c := &cobra.Command{
		Use:   "deploy [PATH...]",
		Short: "Check deploy files by meaning: every process's settings, what API and workers share, workers, migrations first, probes, images, secrets",
		Long: `deploy reads Kubernetes manifests (typed, strictly), compose files (with compose-go, the
loader docker compose uses) and Render Blueprints, works out each docpipe process they start
and the environment it would see (the file's env, ConfigMaps, Secrets, env groups, the image's
ENV from the Dockerfile), and checks what would break once deployed: settings config.Load
rejects, an API and workers that do not share one database, blob store, webhook secret,
embedding and chunking, no worker, migrations nothing orders before the app, probes on routes
or ports nobody serves, unpinned images, secrets written into the files, missing resource
requests, a shutdown grace period shorter than DOCPIPE_SHUTDOWN_TIMEOUT. It also checks the
Dockerfile, including that pdfium is compiled into the image at build time.

Without PATH it checks every deploy file under deploy/ and docker-compose.yml. A folder of
Kubernetes manifests is one deployment; Secret templates (*.example.yaml) name the keys a
Secret supplies, whose values count as supplied at deploy time.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Paths = args
			var r validate.Report
			r.Add(validate.Deploy(cmd.Context(), deploySpec(), o)...)
			return printReport(cmd, &r)
		},
	}
	c.Flags().StringVar(&o.Root, "root", ".", "repository root: PATHs, --dockerfile and Render's dockerfilePath are relative to it")
	c.Flags().StringVar(&o.Dockerfile, "dockerfile", validate.DefaultDockerfile, "the Dockerfile that builds the image the Kubernetes manifests run")
	return c
}

// probeRoutes are the GET routes a health check may use without credentials, per
// listener; TestProbeRoutesAreReal checks each against the real muxes.
var probeRoutes = map[validate.Role][]string{
	validate.RoleAPI:    {"/healthz", "/readyz"},
	validate.RoleWorker: {"/healthz", "/readyz", "/metrics"},
	validate.RoleTwin:   {"/healthz"},
}

// deploySpec is what this binary offers deploy files.
func deploySpec() validate.DeploySpec {
	return validate.DeploySpec{Command: parseCommandLine, Routes: probeRoutes}
}

// parseCommandLine parses a command line (without the binary) against the real command
// tree: the subcommand exists and is runnable, its flags parse and its arguments are
// valid. It returns every flag's value, defaults included.
func parseCommandLine(args []string) (validate.Invocation, error) {
	root := rootCmd()
	c, rest, err := root.Find(args)
	if err != nil {
		return validate.Invocation{}, err
	}
	if c == root || !c.Runnable() {
		return validate.Invocation{}, fmt.Errorf("%q is not a runnable docpipe command", strings.Join(args, " "))
	}
	if err := c.ParseFlags(rest); err != nil {
		return validate.Invocation{}, fmt.Errorf("docpipe %s: %w", c.Name(), err)
	}
	if err := c.ValidateArgs(c.Flags().Args()); err != nil {
		return validate.Invocation{}, fmt.Errorf("docpipe %s: %w", c.Name(), err)
	}
	inv := validate.Invocation{Path: strings.TrimPrefix(c.CommandPath(), root.Name()+" "), Flags: map[string]string{}}
	c.Flags().VisitAll(func(f *pflag.Flag) { inv.Flags[f.Name] = f.Value.String() })
	return inv, nil
}
