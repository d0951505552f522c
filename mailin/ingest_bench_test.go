package mailin_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/deskd/deskd/internal/config"
	"github.com/deskd/deskd/internal/testdb"
	"github.com/deskd/deskd/internal/token"
	"github.com/deskd/deskd/mailin"
	"github.com/deskd/deskd/mailout"
	"github.com/deskd/deskd/mailout/notify"
	"github.com/deskd/deskd/templates"
	"github.com/deskd/deskd/tickets"
)

// BenchmarkIngest measures the Ingester alone: b.N stored raw mails (one in five a reply to an
// earlier one) become ticket changes, with or without the mail-out notifier (acknowledgement and agent
// notifications rendered and enqueued in the same transaction). Compare -bench 'Ingest/workers=' figures.
func BenchmarkIngest(b *testing.B) {
	for _, c := range []struct {
		workers int
		notify  bool
	}{{1, false}, {4, false}, {4, true}, {8, true}} {
		b.Run(fmt.Sprintf("workers=%d/notify=%v", c.workers, c.notify), func(b *testing.B) {
			ctx := context.Background()
			pool := testdb.New(b)
			signer, _ := token.New([]byte("0123456789abcdef0123456789abcdef"), deskDomain)
			workers := c.workers
			opts := tickets.Options{}
			if c.notify {
				opts.Mailer = benchNotifier(b, signer)
			}
			ing, err := mailin.NewIngester(tickets.NewService(pool, opts), mailin.Options{
				Signer: signer, DeskDomain: deskDomain, DeskAddresses: []string{"support@example.com"}, Workers: workers,
				Queues: []mailin.Queue{{Name: "support", Prefix: "SD", Addresses: []string{"support@example.com"},
					DefaultKind: tickets.KindIncident, DefaultPriority: tickets.P3}},
			})
			if err != nil {
				b.Fatal(err)
			}
			for i := range b.N {
				extra := ""
				if i%5 == 4 {
					extra = fmt.Sprintf("In-Reply-To: <m%d@corp.example>\n", i-1)
				}
				raw := mailFrom(fmt.Sprintf("u%d@corp.example", i%300), "support@example.com", fmt.Sprintf("Issue %d", i),
					fmt.Sprintf("m%d@corp.example", i), extra, "Something is broken.\n\nThanks")
				raw = strings.ReplaceAll(raw, "\n", "\r\n")
				if _, _, err := mailin.StoreRaw(ctx, pool, mailin.NewRaw("inbox", 1, uint32(i+1), []byte(raw), 0, 1<<20)); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			outs, err := ing.ProcessPending(ctx, "")
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if len(outs) != b.N {
				b.Fatalf("%d outcomes, want %d", len(outs), b.N)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

func benchNotifier(b testing.TB, signer *token.Signer) *notify.Notifier {
	b.Helper()
	tpl, err := templates.New(templates.Options{})
	if err != nil {
		b.Fatal(err)
	}
	n, err := notify.New(notify.Options{
		Outbox:    mailout.OutboxOptions{Signer: signer, MailOut: config.Default().MailOut, OwnAddresses: []string{"support@example.com"}},
		Templates: tpl,
		Desk:      config.Desk{Name: "Bench Desk", Domain: deskDomain},
		Queues: []config.Queue{{Name: "support", Addresses: []string{"support@example.com"}, KeyPrefix: "SD", Language: "en",
			Agents: []string{"ana", "ben"}}},
		Agents: []config.Agent{{Name: "ana", Email: "ana@example.com", Language: "en"}, {Name: "ben", Email: "ben@example.com", Language: "en"}},
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}
