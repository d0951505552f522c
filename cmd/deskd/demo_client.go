package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/spf13/cobra"
	gomail "github.com/wneessen/go-mail"

	"github.com/deskd/deskd/mailin/parse"
)

// demoMail is one message a demo person sends, the way a mail client would.
type demoMail struct {
	From, To, Subject, Body string
	InReplyTo               string   // Message-ID answered, without brackets
	References              []string // without brackets
}

// sendDemoMail submits m over SMTP at addr (no TLS: the demo server is on loopback) and returns its
// Message-ID.
func sendDemoMail(ctx context.Context, addr string, m demoMail) (string, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("smtp address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", fmt.Errorf("smtp port %q: %w", p, err)
	}
	msg := gomail.NewMsg()
	if err := msg.From(m.From); err != nil {
		return "", fmt.Errorf("--from: %w", err)
	}
	if err := msg.To(m.To); err != nil {
		return "", fmt.Errorf("--to: %w", err)
	}
	msg.Subject(m.Subject)
	msg.SetDate()
	domain := m.From[strings.LastIndexByte(m.From, '@')+1:]
	id := fmt.Sprintf("%d.demo@%s", time.Now().UnixNano(), strings.TrimSuffix(domain, ">"))
	msg.SetMessageIDWithValue(id)
	if m.InReplyTo != "" {
		msg.SetGenHeader(gomail.HeaderInReplyTo, "<"+m.InReplyTo+">")
		refs := make([]string, 0, len(m.References)+1)
		for _, r := range m.References {
			refs = append(refs, "<"+r+">")
		}
		msg.SetGenHeader(gomail.HeaderReferences, strings.Join(refs, " "))
	}
	msg.SetBodyString(gomail.TypeTextPlain, m.Body)
	c, err := gomail.NewClient(host, gomail.WithPort(port), gomail.WithTLSPolicy(gomail.NoTLS), gomail.WithTimeout(10*time.Second),
		gomail.WithHELO("client."+demoDomain))
	if err != nil {
		return "", err
	}
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		return "", fmt.Errorf("send over SMTP %s: %w", addr, err)
	}
	return id, nil
}

// inboxMessage is one message read from a demo mailbox.
type inboxMessage struct {
	UID  imap.UID
	Raw  []byte
	Mail *parse.Message
}

// readInbox logs in as user and returns every message of folder, oldest first, without changing flags.
func readInbox(imapAddr, user, folder string) ([]inboxMessage, error) {
	c, err := imapclient.DialInsecure(imapAddr, nil)
	if err != nil {
		return nil, fmt.Errorf("connect to IMAP %s: %w", imapAddr, err)
	}
	defer c.Close()
	if err := c.Login(user, demoPassword).Wait(); err != nil {
		return nil, fmt.Errorf("log in as %s: %w", user, err)
	}
	sel, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return nil, fmt.Errorf("select %s: %w", folder, err)
	}
	if sel.NumMessages == 0 {
		return nil, nil
	}
	var set imap.SeqSet
	set.AddRange(1, sel.NumMessages)
	bufs, err := c.Fetch(set, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", folder, err)
	}
	out := make([]inboxMessage, 0, len(bufs))
	for _, b := range bufs {
		if len(b.BodySection) == 0 {
			continue
		}
		raw := b.BodySection[0].Bytes
		m, err := parse.Parse(raw)
		if err != nil {
			continue
		}
		out = append(out, inboxMessage{UID: b.UID, Raw: raw, Mail: m})
	}
	_ = c.Logout().Wait()
	return out, nil
}

func newDemoSendCmd(g *globals) *cobra.Command {
	var m demoMail
	var smtpAddr string
	cmd := &cobra.Command{
		Use:   "send",
		Short: "Send a mail as a demo person to the running demo",
		Example: `  deskd demo send --from alice@demo.test --subject "VPN is down" --body "It drops every 5 minutes."
  deskd demo send --from carol@demo.test --to changes@demo.test --subject "Upgrade the DB on Saturday"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if m.Subject == "" {
				return fmt.Errorf("--subject is required")
			}
			id, err := sendDemoMail(cmd.Context(), smtpAddr, m)
			if err != nil {
				return fmt.Errorf("%w (is `deskd demo` running?)", err)
			}
			fmt.Fprintf(g.stdout, "sent <%s> from %s to %s\nwithin a second: `deskd demo inbox %s` shows the acknowledgement with the ticket key\n",
				id, m.From, m.To, m.From)
			return nil
		},
	}
	cmd.Flags().StringVar(&m.From, "from", "alice@demo.test", "sender (a demo person)")
	cmd.Flags().StringVar(&m.To, "to", "support@demo.test", "recipient (support@demo.test or changes@demo.test)")
	cmd.Flags().StringVar(&m.Subject, "subject", "", "subject")
	cmd.Flags().StringVar(&m.Body, "body", "Hello, something is broken.", "body text")
	cmd.Flags().StringVar(&m.InReplyTo, "in-reply-to", "", "Message-ID this mail answers (without brackets)")
	cmd.Flags().StringVar(&smtpAddr, "smtp", "127.0.0.1:2525", "the demo's SMTP address")
	return cmd
}

func newDemoInboxCmd(g *globals) *cobra.Command {
	var (
		imapAddr, folder string
		asJSON, full     bool
	)
	cmd := &cobra.Command{
		Use:     "inbox USER",
		Short:   "List the mail in a demo person's mailbox",
		Example: "  deskd demo inbox alice@demo.test\n  deskd demo inbox ana@demo.test --full",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			msgs, err := readInbox(imapAddr, args[0], folder)
			if err != nil {
				return fmt.Errorf("%w (is `deskd demo` running?)", err)
			}
			if asJSON {
				type item struct {
					UID       uint32 `json:"uid"`
					From      string `json:"from"`
					Subject   string `json:"subject"`
					MessageID string `json:"message_id"`
					Date      string `json:"date"`
					Text      string `json:"text"`
				}
				out := []item{}
				for _, m := range msgs {
					it := item{UID: uint32(m.UID), Subject: m.Mail.Subject, MessageID: m.Mail.MessageID, Text: m.Mail.Text,
						Date: m.Mail.Date.Format(time.RFC3339)}
					if m.Mail.From != nil {
						it.From = m.Mail.From.String()
					}
					out = append(out, it)
				}
				return writeJSON(g, out)
			}
			if len(msgs) == 0 {
				fmt.Fprintf(g.stdout, "%s has no mail in %s\n", args[0], folder)
			}
			for _, m := range msgs {
				from := ""
				if m.Mail.From != nil {
					from = m.Mail.From.String()
				}
				fmt.Fprintf(g.stdout, "%4d  %s  %-40s  %s\n", m.UID, m.Mail.Date.Local().Format("15:04:05"), trunc(from, 40), m.Mail.Subject)
				if full {
					fmt.Fprintf(g.stdout, "%s\n\n", strings.TrimSpace(string(m.Raw)))
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&imapAddr, "imap", "127.0.0.1:1143", "the demo's IMAP address")
	cmd.Flags().StringVar(&folder, "folder", "INBOX", "folder")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&full, "full", false, "print each raw message")
	return cmd
}
