package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/msgkit/msgkit/sdk"
)

func configCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "config",
		Short:   "Check configuration files",
		Example: `  msgkit config check deploy/service.yaml`,
	}
	check := &cobra.Command{
		Use:   "check FILE",
		Short: "Validate a config as Open would, without connecting",
		Long: `config check reads FILE with the MESSAGING_* environment variables applied
over it, as a service does, and validates it as Open would before its first
network call: driver name, options, URL, TLS files, require and the
middleware section. An error names the key, where it was set (file:line or
environment variable) and how to fix it; the exit code is then 2.`,
		Example: `  msgkit config check deploy/service.yaml
  MESSAGING_OPT_PREFETCH=0 msgkit config check deploy/service.yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := sdk.LoadConfig(args[0])
			if err != nil {
				return withCode(exitUsage, err)
			}
			checked, err := sdk.CheckConfig(cfg)
			if err != nil {
				return withCode(exitUsage, err)
			}
			out := cmd.OutOrStdout()
			if g.json {
				return writeJSON(out, map[string]any{"file": args[0], "ok": true, "driver": cfg.DriverName(),
					"url": sdk.RedactURL(cfg.URL), "options_checked": checked})
			}
			fmt.Fprintf(out, "%s: ok (driver %s", args[0], cfg.DriverName())
			if cfg.URL != "" {
				fmt.Fprintf(out, ", url %s", sdk.RedactURL(cfg.URL))
			}
			fmt.Fprintln(out, ")")
			if !checked {
				fmt.Fprintf(out, "note: the %s driver cannot check its options without connecting; run msgkit doctor\n", cfg.DriverName())
			}
			return nil
		},
	}
	cmd.AddCommand(check)
	return cmd
}
