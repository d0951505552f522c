package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/deskd/deskd/templates"
)

func newTemplatesCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "templates",
		Short: "Work with the mail templates (embedded defaults plus templates.dir overrides)",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List the template names and the languages available",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			set, err := templates.New(templates.Options{Dir: cfg.Templates.Dir})
			if err != nil {
				return err
			}
			for _, n := range templates.Names() {
				who := "agents"
				if templates.ForRequester(n) {
					who = "requester"
				}
				fmt.Fprintf(g.stdout, "%-16s to %s\n", n, who)
			}
			fmt.Fprintf(g.stdout, "languages: %s\n", strings.Join(set.Languages(), ", "))
			return nil
		},
	})
	var lang, out, ticket string
	preview := &cobra.Command{
		Use:   "preview NAME --ticket KEY",
		Short: "Render one template for a ticket as the exact mail deskd would send",
		Long: `preview renders template NAME (see ` + "`deskd templates list`" + `) for a ticket from the configured database,
with the same headers, Message-ID and encoding as the outbox, and prints it (or writes --out FILE.eml,
which any mail client opens). Nothing is sent or written to the database.`,
		Example: "  deskd templates preview ack --ticket SD-1042\n  deskd templates preview status_resolved --ticket SD-1042 --lang de --out resolved.eml",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if ticket == "" {
				return fmt.Errorf("--ticket is required")
			}
			ctx := cmd.Context()
			a, err := g.openApp(ctx)
			if err != nil {
				return err
			}
			defer a.close()
			var raw []byte
			err = pgx.BeginTxFunc(ctx, a.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
				tk, err := a.tickets.Store().TicketByKey(ctx, ticket)
				if err != nil {
					return err
				}
				raw, err = a.notifier.Preview(ctx, tx, tk.ID, args[0], lang)
				return err
			})
			if err != nil {
				return err
			}
			if out != "" {
				if err := os.WriteFile(out, raw, 0o644); err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "wrote %s (%d bytes)\n", out, len(raw))
				return nil
			}
			_, err = g.stdout.Write(raw)
			return err
		},
	}
	preview.Flags().StringVar(&ticket, "ticket", "", "ticket key, e.g. SD-1042")
	preview.Flags().StringVar(&lang, "lang", "", "language (default: the requester's, else the queue's)")
	preview.Flags().StringVar(&out, "out", "", "write the message to this .eml file instead of standard output")
	cmd.AddCommand(preview)
	return cmd
}
