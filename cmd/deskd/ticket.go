package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/deskd/deskd/internal/db"
	"github.com/deskd/deskd/tickets"
)

func newTicketCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ticket",
		Short: "List and show tickets",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	cmd.AddCommand(newTicketListCmd(g), newTicketShowCmd(g))
	return cmd
}

// openStore opens the database named by the configuration and checks its schema.
func (g *globals) openStore(cmd *cobra.Command) (*tickets.Store, func(), error) {
	cfg, err := g.loadDatabaseConfig()
	if err != nil {
		return nil, nil, err
	}
	pool, err := db.Open(cmd.Context(), cfg.Database.URL, 2)
	if err != nil {
		return nil, nil, err
	}
	if err := db.CheckSchema(cmd.Context(), pool); err != nil {
		pool.Close()
		return nil, nil, err
	}
	return tickets.NewPoolStore(pool), pool.Close, nil
}

func newTicketListCmd(g *globals) *cobra.Command {
	var (
		status, queue, assignee, kind string
		limit                         int
		asJSON                        bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List tickets, newest first",
		Example: `  deskd ticket list --status new,open --queue support
  deskd ticket list --assignee - --json   # unassigned tickets as JSON`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := tickets.Filter{Queue: queue, Assignee: assignee, Limit: limit}
			if status != "" {
				for _, s := range strings.Split(status, ",") {
					st, err := tickets.ParseStatus(strings.TrimSpace(s))
					if err != nil {
						return fmt.Errorf("--status: %w", err)
					}
					f.Status = append(f.Status, st)
				}
			}
			if kind != "" {
				k, err := tickets.ParseKind(kind)
				if err != nil {
					return fmt.Errorf("--kind: %w", err)
				}
				f.Kind = k
			}
			store, done, err := g.openStore(cmd)
			if err != nil {
				return err
			}
			defer done()
			list, err := store.List(cmd.Context(), f)
			if err != nil {
				return err
			}
			if asJSON {
				out := make([]ticketJSON, 0, len(list))
				for _, t := range list {
					out = append(out, toTicketJSON(t))
				}
				return writeJSON(g, out)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "KEY\tSTATUS\tPRIO\tKIND\tQUEUE\tASSIGNEE\tREQUESTER\tUPDATED\tSUBJECT")
			for _, t := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.Key, t.Status, t.Priority, t.Kind, t.Queue,
					dash(t.Assignee), t.Requester, t.UpdatedAt.Local().Format("2006-01-02 15:04"), trunc(t.Subject, 60))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&status, "status", "", "comma-separated statuses (new, open, pending, resolved, closed)")
	cmd.Flags().StringVar(&queue, "queue", "", "queue name")
	cmd.Flags().StringVar(&assignee, "assignee", "", `agent name, or "-" for unassigned tickets`)
	cmd.Flags().StringVar(&kind, "kind", "", "incident, request, problem or change")
	cmd.Flags().IntVar(&limit, "limit", 100, "maximum number of tickets")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newTicketShowCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "show KEY",
		Short:   "Show a ticket with its messages and events",
		Example: "  deskd ticket show SD-1042 --json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, done, err := g.openStore(cmd)
			if err != nil {
				return err
			}
			defer done()
			ctx := cmd.Context()
			t, err := store.TicketByKey(ctx, args[0])
			if err != nil {
				return err
			}
			msgs, err := store.Messages(ctx, t.ID)
			if err != nil {
				return err
			}
			evs, err := store.Events(ctx, t.ID)
			if err != nil {
				return err
			}
			parts, err := store.Participants(ctx, t.ID)
			if err != nil {
				return err
			}
			links, err := store.Links(ctx, t.ID)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(g, showJSON(t, msgs, evs, parts, links))
			}
			w := g.stdout
			fmt.Fprintf(w, "%s  %s\n", t.Key, t.Subject)
			fmt.Fprintf(w, "  status %s, priority %s, kind %s, queue %s, assignee %s\n", t.Status, t.Priority, t.Kind, t.Queue, dash(t.Assignee))
			fmt.Fprintf(w, "  requester %s, created %s, updated %s\n", t.Requester, t.CreatedAt.Local().Format(time.RFC3339), t.UpdatedAt.Local().Format(time.RFC3339))
			for _, p := range parts {
				fmt.Fprintf(w, "  %s %s\n", p.Role, p.Email)
			}
			for _, l := range links {
				fmt.Fprintf(w, "  link %s: ticket %d -> %d\n", l.Kind, l.From, l.To)
			}
			fmt.Fprintf(w, "\nMessages (%d)\n", len(msgs))
			for _, m := range msgs {
				fmt.Fprintf(w, "--- #%d %s %s %s from %s at %s (%s)\n", m.ID, m.Direction, m.Visibility, m.Class, messageAuthor(m),
					m.CreatedAt.Local().Format(time.RFC3339), m.ThreadReason)
				text := m.VisibleText
				if text == "" {
					text = m.Text
				}
				fmt.Fprintln(w, strings.TrimSpace(text))
				for _, a := range m.Attachments {
					fmt.Fprintf(w, "    [attachment %s, %s, %d bytes]\n", a.Filename, a.ContentType, a.Size)
				}
			}
			fmt.Fprintf(w, "\nEvents (%d)\n", len(evs))
			for _, e := range evs {
				change := ""
				if e.Before != "" || e.After != "" {
					change = fmt.Sprintf(" %s -> %s", dash(e.Before), dash(e.After))
				}
				why := ""
				if e.Why != "" {
					why = " (" + e.Why + ")"
				}
				fmt.Fprintf(w, "  %s  %s by %s %s%s%s\n", e.At.Local().Format("2006-01-02 15:04:05"), e.Kind, e.Actor.Kind, e.Actor.Name, change, why)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

type ticketJSON struct {
	Key             string     `json:"key"`
	Kind            string     `json:"kind"`
	Status          string     `json:"status"`
	Priority        string     `json:"priority"`
	Queue           string     `json:"queue"`
	Requester       string     `json:"requester"`
	Assignee        string     `json:"assignee"`
	Subject         string     `json:"subject"`
	CreatedAt       time.Time  `json:"created_at"`
	UpdatedAt       time.Time  `json:"updated_at"`
	FirstResponseAt *time.Time `json:"first_response_at"`
	ResolvedAt      *time.Time `json:"resolved_at"`
	ClosedAt        *time.Time `json:"closed_at"`
}

func toTicketJSON(t *tickets.Ticket) ticketJSON {
	return ticketJSON{Key: t.Key, Kind: string(t.Kind), Status: string(t.Status), Priority: string(t.Priority), Queue: t.Queue,
		Requester: t.Requester, Assignee: t.Assignee, Subject: t.Subject, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt,
		FirstResponseAt: t.FirstResponseAt, ResolvedAt: t.ResolvedAt, ClosedAt: t.ClosedAt}
}

type attachmentJSON struct {
	Filename    string `json:"filename"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
}

type messageJSON struct {
	ID           int64            `json:"id"`
	Direction    string           `json:"direction"`
	Visibility   string           `json:"visibility"`
	Class        string           `json:"class"`
	Author       string           `json:"author"`
	MessageID    string           `json:"message_id"`
	From         string           `json:"from"`
	To           []string         `json:"to"`
	Cc           []string         `json:"cc"`
	Subject      string           `json:"subject"`
	Text         string           `json:"text"`
	VisibleText  string           `json:"visible_text"`
	ThreadReason string           `json:"thread_reason"`
	CreatedAt    time.Time        `json:"created_at"`
	Attachments  []attachmentJSON `json:"attachments"`
}

type eventJSON struct {
	At        time.Time `json:"at"`
	ActorKind string    `json:"actor_kind"`
	Actor     string    `json:"actor"`
	Kind      string    `json:"kind"`
	Before    string    `json:"before"`
	After     string    `json:"after"`
	Why       string    `json:"why"`
}

type participantJSON struct {
	Email string `json:"email"`
	Role  string `json:"role"`
}

type linkJSON struct {
	From int64  `json:"from_ticket_id"`
	To   int64  `json:"to_ticket_id"`
	Kind string `json:"kind"`
}

func showJSON(t *tickets.Ticket, msgs []*tickets.Message, evs []*tickets.Event, parts []tickets.Participant, links []tickets.Link) any {
	out := struct {
		ticketJSON
		Participants []participantJSON `json:"participants"`
		Links        []linkJSON        `json:"links"`
		Messages     []messageJSON     `json:"messages"`
		Events       []eventJSON       `json:"events"`
	}{ticketJSON: toTicketJSON(t), Participants: []participantJSON{}, Links: []linkJSON{}, Messages: []messageJSON{}, Events: []eventJSON{}}
	for _, p := range parts {
		out.Participants = append(out.Participants, participantJSON{Email: p.Email, Role: string(p.Role)})
	}
	for _, l := range links {
		out.Links = append(out.Links, linkJSON{From: l.From, To: l.To, Kind: string(l.Kind)})
	}
	for _, m := range msgs {
		mj := messageJSON{ID: m.ID, Direction: string(m.Direction), Visibility: string(m.Visibility), Class: m.Class,
			Author: m.Author, MessageID: m.MessageID, From: m.From, To: m.To, Cc: m.Cc, Subject: m.Subject, Text: m.Text,
			VisibleText: m.VisibleText, ThreadReason: m.ThreadReason, CreatedAt: m.CreatedAt, Attachments: []attachmentJSON{}}
		for _, a := range m.Attachments {
			mj.Attachments = append(mj.Attachments, attachmentJSON{Filename: a.Filename, ContentType: a.ContentType, Size: a.Size})
		}
		out.Messages = append(out.Messages, mj)
	}
	for _, e := range evs {
		out.Events = append(out.Events, eventJSON{At: e.At, ActorKind: string(e.Actor.Kind), Actor: e.Actor.Name, Kind: string(e.Kind),
			Before: e.Before, After: e.After, Why: e.Why})
	}
	return out
}

func writeJSON(g *globals, v any) error {
	enc := json.NewEncoder(g.stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func trunc(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// messageAuthor is who wrote m for `ticket show`: its From address, and the author (an agent's
// name, a rule) when that is someone else; an inbound mail's author is its sender.
func messageAuthor(m *tickets.Message) string {
	switch {
	case m.From == "":
		return m.Author
	case m.Author == "" || strings.EqualFold(m.Author, m.From):
		return m.From
	}
	return m.From + " (" + m.Author + ")"
}
