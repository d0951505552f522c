package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/deskd/deskd/internal/memmail"
	"github.com/deskd/deskd/tickets"
)

// runScenario plays a scripted morning at the desk through the real mail path (SMTP in, IMAP
// poller, ingest, outbox, SMTP out) and prints a summary of tickets and mails.
func runScenario(ctx context.Context, g *globals, a *app, mm *memmail.Server) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- a.run(ctx) }()
	w := g.stdout
	smtpAddr, imapAddr := mm.SMTPAddr(), mm.IMAPAddr()
	step := func(format string, args ...any) { fmt.Fprintf(w, "• "+format+"\n", args...) }

	// waitFor polls a mailbox until match finds a message, or fails after a deadline.
	waitFor := func(user, what string, match func(inboxMessage) bool) (inboxMessage, error) {
		deadline := time.Now().Add(30 * time.Second)
		for {
			msgs, err := readInbox(imapAddr, user, "INBOX")
			if err != nil {
				return inboxMessage{}, err
			}
			for _, m := range msgs {
				if match(m) {
					return m, nil
				}
			}
			select {
			case err := <-errc:
				return inboxMessage{}, fmt.Errorf("deskd stopped while waiting for %s: %v", what, err)
			case <-ctx.Done():
				return inboxMessage{}, ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				return inboxMessage{}, fmt.Errorf("timed out waiting for %s in %s's mailbox", what, user)
			}
		}
	}
	subjectHas := func(parts ...string) func(inboxMessage) bool {
		return func(m inboxMessage) bool {
			for _, p := range parts {
				if !strings.Contains(m.Mail.Subject, p) {
					return false
				}
			}
			return true
		}
	}
	start := time.Now()
	reports := []demoMail{
		{From: "Alice Example <alice@demo.test>", To: "support@demo.test", Subject: "VPN is down",
			Body: "Hi,\n\nthe VPN drops every five minutes since this morning.\n\nAlice"},
		{From: "Bob Example <bob@demo.test>", To: "support@demo.test", Subject: "New laptop for onboarding",
			Body: "Hello, our new colleague starts on Monday and needs a laptop.\n\nBob"},
		{From: "Carol Example <carol@demo.test>", To: "changes@demo.test", Subject: "Upgrade PostgreSQL to 17 on Saturday",
			Body: "Requesting a change window on Saturday 06:00-08:00 to upgrade the reporting database.\n\nCarol"},
	}
	acks := map[string]inboxMessage{}
	for _, r := range reports {
		sent := time.Now()
		if _, err := sendDemoMail(ctx, smtpAddr, r); err != nil {
			return err
		}
		user := r.From[strings.IndexByte(r.From, '<')+1 : len(r.From)-1]
		ack, err := waitFor(user, "the acknowledgement of "+r.Subject, subjectHas(r.Subject, "["))
		if err != nil {
			return err
		}
		acks[user] = ack
		step("%s reported %q -> acknowledged as %q after %s", user, r.Subject, ack.Mail.Subject, time.Since(sent).Round(time.Millisecond))
	}
	ack := acks["alice@demo.test"]
	key := ack.Mail.Subject[strings.IndexByte(ack.Mail.Subject, '[')+1 : strings.IndexByte(ack.Mail.Subject, ']')]

	// Alice replies to the acknowledgement from her mail client, quoting it.
	refs := append(append([]string{}, ack.Mail.References...), ack.Mail.MessageID)
	quoted := "> " + strings.ReplaceAll(strings.TrimSpace(ack.Mail.Text), "\n", "\n> ")
	if _, err := sendDemoMail(ctx, smtpAddr, demoMail{From: "Alice Example <alice@demo.test>", To: replyTarget(ack),
		Subject: "Re: " + ack.Mail.Subject, InReplyTo: ack.Mail.MessageID, References: refs,
		Body: "It now drops every minute, and Teams calls fail too.\n\nOn " + ack.Mail.Date.Format("Mon, 2 Jan 2006 15:04") +
			", Demo Service Desk wrote:\n" + quoted}); err != nil {
		return err
	}
	notif, err := waitFor("ana@demo.test", "the notification of Alice's reply", func(m inboxMessage) bool {
		return strings.Contains(m.Mail.Subject, key) && strings.Contains(m.Mail.Text, "Teams calls fail")
	})
	if err != nil {
		return err
	}
	step("alice replied to %s -> agent ana notified: %q", key, notif.Mail.Subject)

	// Ana answers from her mail client by replying to that notification.
	if _, err := sendDemoMail(ctx, smtpAddr, demoMail{From: "Ana Agent <ana@demo.test>", To: replyTarget(notif),
		Subject: "Re: " + notif.Mail.Subject, InReplyTo: notif.Mail.MessageID,
		References: append(append([]string{}, notif.Mail.References...), notif.Mail.MessageID),
		Body:       "Hi Alice, I reset your VPN session and pushed a new profile. Please reconnect and tell me if it holds.\n\nAna\n\n> " + key}); err != nil {
		return err
	}
	answer, err := waitFor("alice@demo.test", "Ana's answer", func(m inboxMessage) bool {
		return strings.Contains(m.Mail.Subject, key) && strings.Contains(m.Mail.Text, "I reset your VPN session")
	})
	if err != nil {
		return err
	}
	step("agent ana answered by mail -> alice received %q from %s", answer.Mail.Subject, answer.Mail.From.String())

	fmt.Fprintf(w, "\nScenario finished in %s.\n\n", time.Since(start).Round(time.Millisecond))
	if err := printScenarioSummary(ctx, g, a, imapAddr); err != nil {
		return err
	}
	cancel()
	if err := <-errc; err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// replyTarget is where a mail client sends a reply: Reply-To when present, else From.
func replyTarget(m inboxMessage) string {
	if len(m.Mail.ReplyTo) > 0 {
		return m.Mail.ReplyTo[0].Address
	}
	return m.Mail.From.Address
}

func printScenarioSummary(ctx context.Context, g *globals, a *app, imapAddr string) error {
	st := a.tickets.Store()
	list, err := st.List(ctx, tickets.Filter{})
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TICKET\tSTATUS\tQUEUE\tREQUESTER\tMESSAGES\tSUBJECT")
	for i := len(list) - 1; i >= 0; i-- {
		t := list[i]
		msgs, err := st.Messages(ctx, t.ID)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\n", t.Key, t.Status, t.Queue, t.Requester, len(msgs), t.Subject)
	}
	w.Flush()
	var sent, pending int
	if err := a.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'sent'), count(*) FILTER (WHERE status IN ('pending', 'sending'))
		FROM outbox`).Scan(&sent, &pending); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "\nMails sent by the desk: %d (%d still queued)\n\n", sent, pending)
	w = tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "MAILBOX\tMAILS\tSUBJECTS")
	for _, u := range demoUsers {
		msgs, err := readInbox(imapAddr, u, "INBOX")
		if err != nil {
			return err
		}
		var subjects []string
		for _, m := range msgs {
			subjects = append(subjects, m.Mail.Subject)
		}
		fmt.Fprintf(w, "%s\t%d\t%s\n", u, len(msgs), trunc(strings.Join(subjects, " | "), 110))
	}
	return w.Flush()
}
