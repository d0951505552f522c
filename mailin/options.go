package mailin

import (
	"fmt"
	"strings"

	"github.com/deskd/deskd/internal/config"
	"github.com/deskd/deskd/internal/token"
	"github.com/deskd/deskd/tickets"
)

// OptionsFromConfig maps a validated configuration onto Ingester options (the caller adds Log and
// Observe). It is called once at start-up; workers never read the configuration themselves.
func OptionsFromConfig(cfg *config.Config) (Options, error) {
	signer, err := token.New([]byte(cfg.Desk.Secret), cfg.Desk.Domain)
	if err != nil {
		return Options{}, fmt.Errorf("desk.secret: %w", err)
	}
	o := Options{
		Signer: signer, DeskDomain: strings.ToLower(cfg.Desk.Domain), DeskAddresses: cfg.DeskAddresses(),
		MailboxQueue: map[string]string{}, Agents: map[string]string{}, AcceptRequesterDomain: cfg.Desk.AcceptRequesterDomain,
	}
	for _, q := range cfg.Queues {
		mq := Queue{Name: q.Name, Prefix: q.KeyPrefix, DefaultKind: tickets.Kind(q.DefaultKind),
			DefaultPriority: tickets.Priority(q.DefaultPriority), Language: q.Language}
		for _, a := range q.Addresses {
			mq.Addresses = append(mq.Addresses, strings.ToLower(a))
		}
		o.Queues = append(o.Queues, mq)
	}
	for _, m := range cfg.Mailboxes {
		o.MailboxQueue[m.Name] = m.Queue
	}
	for _, a := range cfg.Agents {
		o.Agents[strings.ToLower(a.Email)] = a.Name
	}
	return o, nil
}
