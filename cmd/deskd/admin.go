package main

import (
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/deskd/deskd/internal/config"
	"github.com/deskd/deskd/internal/db"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the deskd version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := version
			if v == "" {
				if bi, ok := debug.ReadBuildInfo(); ok {
					v = bi.Main.Version
				}
			}
			if v == "" {
				v = "(devel)"
			}
			fmt.Fprintf(g.stdout, "deskd %s (schema %s)\n", v, db.Fingerprint())
			return nil
		},
	}
}

func newCheckConfigCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "check-config",
		Short: "Validate the configuration and print every problem with its key",
		Long: `check-config loads the configuration file and environment exactly as serve does and prints
every problem with its key path, e.g. "mailboxes[1].port: must be 1-65535". It exits 1 when
there is any problem and 0 when the configuration is valid.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(g.configPath)
			var ve config.ValidationError
			switch {
			case errors.As(err, &ve):
				for _, p := range ve {
					fmt.Fprintln(g.stdout, p.String())
				}
				return &exitError{code: 1, err: fmt.Errorf("%d configuration problem(s)", len(ve))}
			case err != nil:
				return &exitError{code: 1, err: err}
			}
			src := cfg.Source
			if src == "" {
				src = "(no file: defaults and environment)"
			}
			fmt.Fprintf(g.stdout, "configuration ok: %s (%d mailboxes, %d queues, %d agents)\n",
				src, len(cfg.Mailboxes), len(cfg.Queues), len(cfg.Agents))
			return nil
		},
	}
}

func newMigrateCmd(g *globals) *cobra.Command {
	var status bool
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply pending database migrations",
		Long: `migrate applies the schema migrations embedded in this binary that the database lacks, in one
transaction under an advisory lock: two concurrent runs are safe and a second run is a no-op.
--status only lists pending migrations.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cfg, err := g.loadDatabaseConfig()
			if err != nil {
				return err
			}
			pool, err := db.Open(ctx, cfg.Database.URL, 2)
			if err != nil {
				return err
			}
			defer pool.Close()
			if status {
				pending, err := db.Pending(ctx, pool)
				if err != nil {
					return err
				}
				if len(pending) == 0 {
					fmt.Fprintln(g.stdout, "schema is current")
					return nil
				}
				for _, v := range pending {
					fmt.Fprintln(g.stdout, "pending", v)
				}
				return nil
			}
			applied, err := db.Migrate(ctx, pool)
			if err != nil {
				return err
			}
			if len(applied) == 0 {
				fmt.Fprintln(g.stdout, "schema is current: nothing to apply")
				return nil
			}
			for _, v := range applied {
				fmt.Fprintln(g.stdout, "applied", v)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&status, "status", false, "list pending migrations without applying them")
	return cmd
}
