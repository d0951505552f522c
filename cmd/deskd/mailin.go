package main

import (
	"context"
	"fmt"
	"net/mail"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/deskd/deskd/internal/config"
	"github.com/deskd/deskd/internal/db"
	"github.com/deskd/deskd/mailin"
	"github.com/deskd/deskd/mailin/mbox"
	"github.com/deskd/deskd/tickets"
)

func newQuarantineCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "quarantine",
		Short: "List and show messages that could not be ingested",
		Long: `Any message that fails parsing, threading or ingest (or is over the size cap) is quarantined with
its reason, and its mailbox moves on. ` + "`deskd replay`" + ` re-runs quarantined messages.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	var (
		asJSON bool
		limit  int
	)
	list := &cobra.Command{
		Use:   "list",
		Short: "List quarantined messages, oldest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := g.openDB(cmd.Context())
			if err != nil {
				return err
			}
			defer a.close()
			rs, err := mailin.ListRaw(cmd.Context(), a.pool, mailin.StateQuarantined, limit)
			if err != nil {
				return err
			}
			if asJSON {
				out := make([]rawJSON, 0, len(rs))
				for _, r := range rs {
					out = append(out, toRawJSON(r))
				}
				return writeJSON(g, out)
			}
			for _, r := range rs {
				fmt.Fprintf(g.stdout, "%d\t%s\tuid %d\t%d bytes\tattempts %d\t%s\n", r.ID, r.Mailbox, r.UID, r.Size, r.Attempts, firstLine(r.Reason))
			}
			if len(rs) == 0 {
				fmt.Fprintln(g.stdout, "quarantine is empty")
			}
			return nil
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	list.Flags().IntVar(&limit, "limit", 1000, "maximum number of messages")
	var showJSON, showRaw bool
	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show one quarantined message: reason, metadata and (with --raw) its bytes",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil {
				return fmt.Errorf("ID: %q is not a number", args[0])
			}
			a, err := g.openDB(cmd.Context())
			if err != nil {
				return err
			}
			defer a.close()
			r, err := mailin.LoadRaw(cmd.Context(), a.pool, id)
			if err != nil {
				return err
			}
			switch {
			case showRaw:
				_, err := g.stdout.Write(r.Raw)
				return err
			case showJSON:
				return writeJSON(g, toRawJSON(r))
			}
			fmt.Fprintf(g.stdout, "raw mail %d: %s, mailbox %s, UIDVALIDITY %d, UID %d, %d bytes, %d attempts\nMessage-ID: %s\nreceived %s\nreason: %s\n",
				r.ID, r.State, r.Mailbox, r.UIDValidity, r.UID, r.Size, r.Attempts, r.MessageID, r.ReceivedAt.Local().Format(time.RFC3339), r.Reason)
			return nil
		},
	}
	show.Flags().BoolVar(&showJSON, "json", false, "print JSON")
	show.Flags().BoolVar(&showRaw, "raw", false, "print the raw message bytes")
	cmd.AddCommand(list, show)
	return cmd
}

type rawJSON struct {
	ID          int64     `json:"id"`
	Mailbox     string    `json:"mailbox"`
	UIDValidity uint32    `json:"uidvalidity"`
	UID         uint32    `json:"uid"`
	MessageID   string    `json:"message_id"`
	Size        int64     `json:"size"`
	State       string    `json:"state"`
	Reason      string    `json:"reason"`
	Attempts    int       `json:"attempts"`
	ReceivedAt  time.Time `json:"received_at"`
}

func toRawJSON(r *mailin.RawMail) rawJSON {
	return rawJSON{ID: r.ID, Mailbox: r.Mailbox, UIDValidity: r.UIDValidity, UID: r.UID, MessageID: r.MessageID, Size: r.Size,
		State: r.State, Reason: r.Reason, Attempts: r.Attempts, ReceivedAt: r.ReceivedAt}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func newReplayCmd(g *globals) *cobra.Command {
	var (
		all    bool
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "replay [ID...] | --all",
		Short: "Re-run quarantined messages through parse, classify, thread and ingest",
		Long: `replay puts quarantined messages back in line and ingests them now, with the same exactly-once
guarantees as live mail: a message that succeeds becomes a ticket change (and its mail), one that
fails again stays quarantined with its new reason. Oversize messages cannot be replayed (their bytes
were never stored).`,
		Example: "  deskd replay 42 43\n  deskd replay --all --json",
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) > 0) {
				return fmt.Errorf("give message IDs or --all")
			}
			var ids []int64
			for _, a := range args {
				id, err := strconv.ParseInt(a, 10, 64)
				if err != nil {
					return fmt.Errorf("ID: %q is not a number", a)
				}
				ids = append(ids, id)
			}
			ctx := cmd.Context()
			a, err := g.openApp(ctx)
			if err != nil {
				return err
			}
			defer a.close()
			requeued, err := mailin.Requeue(ctx, a.pool, ids)
			if err != nil {
				return err
			}
			p := newProgress(g.stderr, "replay", len(requeued))
			outs, err := a.ingestPending(ctx, "", p)
			p.finish()
			if err != nil {
				return err
			}
			return printOutcomes(g, outs, asJSON)
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "replay every quarantined message")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printOutcomes(g *globals, outs []mailin.Outcome, asJSON bool) error {
	type outJSON struct {
		RawID  int64  `json:"raw_id"`
		State  string `json:"state"`
		Ticket string `json:"ticket"`
		Reason string `json:"reason"`
	}
	counts := map[string]int{}
	list := make([]outJSON, 0, len(outs))
	for _, o := range outs {
		counts[o.State]++
		list = append(list, outJSON{RawID: o.RawID, State: o.State, Ticket: o.TicketKey, Reason: o.Reason})
	}
	if asJSON {
		return writeJSON(g, map[string]any{"messages": len(outs), "by_state": counts, "outcomes": list})
	}
	for _, o := range list {
		fmt.Fprintf(g.stdout, "%d\t%s\t%s\t%s\n", o.RawID, o.State, dash(o.Ticket), firstLine(o.Reason))
	}
	fmt.Fprintf(g.stdout, "%d messages: %d ingested, %d ignored, %d duplicate, %d quarantined\n", len(outs),
		counts[mailin.StateIngested], counts[mailin.StateIgnored], counts[mailin.StateDuplicate], counts[mailin.StateQuarantined])
	return nil
}

func newImportCmd(g *globals) *cobra.Command {
	var (
		queue  string
		notify bool
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "import PATH",
		Short: "Ingest an mbox file, a Maildir or a directory of .eml files (migration from another desk)",
		Long: `import stores every message of the archive raw (mailbox "import:<absolute path>", one UID per
message in archive order) and ingests it through the full pipeline with a progress bar. Running the
same import again adds nothing. Imported mail does not send acknowledgements or notifications unless
--notify is given.`,
		Example: "  deskd import old-desk.mbox --queue support\n  deskd import ~/Maildir/.Support --json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			abs, err := filepath.Abs(args[0])
			if err != nil {
				return err
			}
			srcs, err := mbox.Open(abs)
			if err != nil {
				return err
			}
			if len(srcs) == 0 {
				return fmt.Errorf("import %s: %w", abs, mbox.ErrEmpty)
			}
			a, err := g.openApp(ctx)
			if err != nil {
				return err
			}
			defer a.close()
			mailbox := "import:" + abs
			if queue != "" {
				if _, ok := a.cfg.QueueByName(queue); !ok {
					return fmt.Errorf("--queue: no queue named %q", queue)
				}
				a.ingestOpts.MailboxQueue[mailbox] = queue
			}
			if !notify {
				a.tickets = tickets.NewService(a.pool, tickets.Options{Committed: a.committed})
			}
			p := newProgress(g.stderr, "store ", len(srcs))
			stored := 0
			for _, s := range srcs {
				raw, err := s.Read()
				if err != nil {
					return fmt.Errorf("read %s: %w", s.Name, err)
				}
				r := mailin.NewRaw(mailbox, 1, uint32(s.Index), raw, 0, int64(a.cfg.MailIn.MaxMessageBytes))
				if _, inserted, err := mailin.StoreRaw(ctx, a.pool, r); err != nil {
					return err
				} else if inserted {
					stored++
				}
				p.add(1)
			}
			p.finish()
			ip := newProgress(g.stderr, "ingest", stored)
			outs, err := a.ingestPending(ctx, mailbox, ip)
			ip.finish()
			if err != nil {
				return err
			}
			if !asJSON {
				fmt.Fprintf(g.stdout, "%d messages in archive, %d new\n", len(srcs), stored)
			}
			return printOutcomes(g, outs, asJSON)
		},
	}
	cmd.Flags().StringVar(&queue, "queue", "", "queue for new tickets (default: by recipient address, else the first queue)")
	cmd.Flags().BoolVar(&notify, "notify", false, "send acknowledgements and notifications for imported mail")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newInspectCmd(g *globals) *cobra.Command {
	var useDB bool
	cmd := &cobra.Command{
		Use:   "inspect FILE.eml",
		Short: "Show what parse, classify and thread decide for a raw message, without changing anything",
		Long: `inspect runs the pure stages on one message file and prints the result. With --db the threading
look-ups run against the configured database (read-only); without it they find nothing, so the
decision shows what the message alone proves (e.g. a signed token).`,
		Example: "  deskd inspect reply.eml --json\n  deskd inspect bounce.eml --db",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			raw, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			opts := mailin.Options{Queues: []mailin.Queue{{Name: "support", Prefix: "SD"}}}
			cfg, cfgErr := config.Load(g.configPath)
			if cfgErr == nil {
				if opts, err = mailin.OptionsFromConfig(cfg); err != nil {
					return err
				}
			}
			ing, err := mailin.NewIngester(nil, opts)
			if err != nil {
				return err
			}
			var res *mailin.InspectResult
			if useDB {
				if cfgErr != nil {
					return fmt.Errorf("--db needs a valid configuration: %w", cfgErr)
				}
				pool, err := db.Open(ctx, cfg.Database.URL, 2)
				if err != nil {
					return err
				}
				defer pool.Close()
				res, err = ing.Inspect(ctx, raw, mailin.NewStoreLookup(tickets.NewPoolStore(pool)))
				if err != nil {
					return err
				}
			} else if res, err = ing.Inspect(ctx, raw, nil); err != nil {
				return err
			}
			return writeJSON(g, inspectJSON(res))
		},
	}
	cmd.Flags().Bool("json", true, "print JSON (the only format; accepted for scripts)")
	cmd.Flags().BoolVar(&useDB, "db", false, "thread against the configured database (read-only)")
	return cmd
}

func inspectJSON(res *mailin.InspectResult) map[string]any {
	m := res.Message
	out := map[string]any{
		"subject":      m.Subject,
		"from":         "",
		"to":           addresses(m.To),
		"cc":           addresses(m.Cc),
		"date":         nil,
		"message_id":   m.MessageID,
		"in_reply_to":  nonNil(m.InReplyTo),
		"references":   nonNil(m.References),
		"text":         m.Text,
		"visible_text": m.VisibleText,
		"has_html":     m.HTML != "",
		"charset":      m.Charset,
		"content_type": m.ContentType,
		"warnings":     nonNil(m.Warnings),
		"class":        string(res.Class.Class),
		"class_reason": res.Class.Reason,
		"bounce":       nil,
	}
	if m.From != nil {
		out["from"] = m.From.String()
	}
	if !m.Date.IsZero() {
		out["date"] = m.Date.Format(time.RFC3339)
	}
	atts := []map[string]any{}
	for _, a := range m.Attachments {
		atts = append(atts, map[string]any{"filename": a.Filename, "content_type": a.ContentType, "size": a.Size,
			"content_id": a.ContentID, "inline": a.Inline})
	}
	out["attachments"] = atts
	if b := res.Class.Bounce; b != nil {
		rcpts := []map[string]any{}
		for _, r := range b.Recipients {
			rcpts = append(rcpts, map[string]any{"recipient": r.Address, "status": r.Status, "action": r.Action, "hard": r.Hard,
				"diagnostic": r.Diagnostic})
		}
		bounce := map[string]any{"recipient": "", "status": "", "hard": false, "recipients": rcpts,
			"original_message_id": b.OriginalMessageID}
		if len(b.Recipients) > 0 {
			bounce["recipient"], bounce["status"], bounce["hard"] = b.Recipients[0].Address, b.Recipients[0].Status, b.Recipients[0].Hard
		}
		out["bounce"] = bounce
	}
	if d := res.Decision; d != nil {
		out["thread"] = map[string]any{"decision": string(d.Action), "via": string(d.Via), "ticket": d.TicketKey,
			"link_to": d.LinkKey, "reason": d.Reason}
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// openDB opens the database for read-only commands.
func (g *globals) openDB(ctx context.Context) (*app, error) {
	cfg, err := g.loadDatabaseConfig()
	if err != nil {
		return nil, err
	}
	pool, err := db.Open(ctx, cfg.Database.URL, 2)
	if err != nil {
		return nil, err
	}
	if err := db.CheckSchema(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	return &app{cfg: cfg, pool: pool}, nil
}

func addresses(list []*mail.Address) []string {
	out := []string{}
	for _, a := range list {
		if a != nil {
			out = append(out, a.String())
		}
	}
	return out
}
