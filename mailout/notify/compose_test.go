package notify

import (
	"strings"
	"testing"
	"time"

	"github.com/deskd/deskd/internal/config"
	"github.com/deskd/deskd/internal/subject"
	"github.com/deskd/deskd/internal/token"
	"github.com/deskd/deskd/mailout"
	"github.com/deskd/deskd/templates"
)

// TestDraftComposesWhatRenderingAtOnceWould: a deferred mail's payload, composed at send time, gives
// exactly the subject, bodies and language that rendering the view in the transaction gave, for every
// template in every language, with times shown in the desk's zone (the zone is not in the payload).
func TestDraftComposesWhatRenderingAtOnceWould(t *testing.T) {
	t.Parallel()
	set, err := templates.New(templates.Options{})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := token.New([]byte("0123456789abcdef-compose-secret"), "desk.example.org")
	if err != nil {
		t.Fatal(err)
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(Options{
		Outbox:    mailout.OutboxOptions{Signer: signer, MailOut: config.Default().MailOut},
		Templates: set, Location: berlin,
		Queues: []config.Queue{{Name: "support", Addresses: []string{"support@desk.example.org"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	v := templates.SampleView()
	v.Extra = map[string]string{"phone": "+49 30 1234-0"}
	checked := 0
	for _, name := range templates.Names() {
		for _, lang := range set.Languages() {
			direct := v
			direct.Location = berlin
			want, err := set.Render(name, "support", lang, direct)
			if err != nil {
				t.Fatalf("%s/%s: %v", name, lang, err)
			}
			payload, err := n.draft(name, "support", lang, v.Ticket.Key, v)
			if err != nil {
				t.Fatal(err)
			}
			got, err := n.Compose(name, payload)
			if err != nil {
				t.Fatalf("%s/%s: %v", name, lang, err)
			}
			if got.Subject != subject.Outbound(v.Ticket.Key, want.Subject) || got.Text != want.Text ||
				got.HTML != want.HTML || got.Language != want.Lang {
				t.Errorf("%s/%s: composed from the draft differs from rendering at once:\n%q\n%q\nwant\n%q\n%q",
					name, lang, got.Subject, got.Text, want.Subject, want.Text)
			}
			if !strings.Contains(got.Text+got.HTML, "SD-1042") && name != templates.Digest {
				t.Errorf("%s/%s: composed mail does not mention the ticket", name, lang)
			}
			checked++
		}
	}
	if checked < len(templates.Names()) {
		t.Fatalf("checked %d renderings", checked)
	}
	if _, err := n.Compose(templates.Ack, []byte(`{"template":`)); err == nil {
		t.Error("a truncated draft composed without error")
	}
}
