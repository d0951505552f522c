package parse_test

import (
	"strings"
	"testing"

	"github.com/deskd/deskd/mailin/parse"
	"github.com/deskd/deskd/templates"
)

// Our own templates' reply markers must cut a reply even when the client's reply header is unknown.
func TestVisibleTextCutsAtOwnReplyMarkers(t *testing.T) {
	for _, marker := range templates.ReplyMarkers() {
		text := "Thanks, that fixed it.\n\nЯ отримав ваш лист\n> " + marker + "\n> Ticket SD-1000 received.\n"
		got := parse.VisibleText(text)
		if got != "Thanks, that fixed it.\n\nЯ отримав ваш лист" {
			t.Errorf("marker %q: visible text %q", marker, got)
		}
		if got := parse.VisibleText("New text here.\n" + strings.ToUpper(marker) + "\nold"); got != "New text here." {
			t.Errorf("unquoted upper-case marker %q: visible text %q", marker, got)
		}
	}
}

func TestVisibleTextCzechAndUkrainianOutlook(t *testing.T) {
	for _, c := range []struct{ name, text, want string }{
		{"czech", "Děkuji, funguje to.\n\nS pozdravem\nJana\n\nOd: Service Desk <support@example.com>\nOdesláno: pondělí 24. listopadu 2026 9:00\nKomu: Jana <jana@corp.example>\nPředmět: [SD-1000] Received: VPN\n\nold text", "Děkuji, funguje to."},
		{"ukrainian", "Дякую, працює.\n\nВід: Service Desk <support@example.com>\nНадіслано: 24 листопада 2026 р. 9:00\nКому: Олена\nТема: [SD-1000] VPN\n\nold text", "Дякую, працює."},
	} {
		if got := parse.VisibleText(c.text); got != c.want {
			t.Errorf("%s: visible text %q, want %q", c.name, got, c.want)
		}
	}
}
