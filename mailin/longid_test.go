package mailin_test

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/deskd/deskd/mailin"
)

// A Message-ID too long for any index (an attack, or a broken gateway) neither blocks storing the
// mail nor its ingest: it is treated as absent (RFC 5322 caps a msg-id at one 998-character line).
func TestOverlongMessageIDIsIgnored(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var long strings.Builder
	for i := range 120 { // 7,680 characters that do not compress
		sum := sha256.Sum256([]byte{byte(i), byte(i >> 8)})
		long.WriteString(hex.EncodeToString(sum[:]))
	}
	id := long.String() + "@corp.example"
	raw := mailFrom("m@corp.example", "support@example.com", "Long id", id, "In-Reply-To: <"+id+">\nReferences: <"+id+">\n", "body")
	h.deliver(raw)
	outs := h.process()
	if len(outs) != 1 || outs[0].State != mailin.StateIngested || outs[0].TicketKey == "" {
		t.Fatalf("outcomes %+v", outs)
	}
	var stored string
	if err := h.pool.QueryRow(h.ctx, `SELECT message_id FROM messages`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if len(stored) > 200 || !strings.HasPrefix(stored, "deskd-raw-") {
		t.Errorf("stored Message-ID %.80q (%d bytes), want the generated one", stored, len(stored))
	}
}
