package mailin_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/deskd/deskd/tickets"
)

// withAttachments is a multipart mail with a text body and the given files, base64-encoded.
func withAttachments(from, msgID string, files map[string][]byte, order []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\nTo: support@example.com\nSubject: Logs\nMessage-ID: <%s>\nDate: Tue, 24 Nov 2026 09:00:00 +0000\n", from, msgID)
	b.WriteString("MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b1\"\n\n--b1\nContent-Type: text/plain\n\nlogs attached\n")
	for _, name := range order {
		enc := base64.StdEncoding.EncodeToString(files[name])
		fmt.Fprintf(&b, "--b1\nContent-Type: application/octet-stream\nContent-Disposition: attachment; filename=%q\n"+
			"Content-Transfer-Encoding: base64\n\n", name)
		for len(enc) > 76 {
			b.WriteString(enc[:76] + "\n")
			enc = enc[76:]
		}
		b.WriteString(enc + "\n")
	}
	b.WriteString("--b1--\n")
	return b.String()
}

// An attachment of received mail is stored once, in its raw mail: the blob row points at the raw
// mail and the attachment's position, holds no copy, and reads back decoded and checked; content
// that arrives again with another mail keeps the first mail's blob.
func TestAttachmentsStayInTheRawMail(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	files := map[string][]byte{"a.log": bytes.Repeat([]byte("tray 2 jammed\n"), 500), "b.bin": {0, 1, 2, 255}}
	first := h.deliver(withAttachments("alice@corp.example", "att1@corp.example", files, []string{"a.log", "b.bin"}))
	second := h.deliver(withAttachments("bob@corp.example", "att2@corp.example", files, []string{"b.bin"}))
	outs := h.process()
	if len(outs) != 2 || outs[0].State != "ingested" || outs[1].State != "ingested" {
		t.Fatalf("outcomes %+v", outs)
	}
	// the two mails went in by concurrent transactions: b.bin's blob names whichever came first
	rows, err := h.pool.Query(h.ctx, `SELECT sha256, data IS NULL, raw_mail_id, raw_part FROM blobs ORDER BY size DESC`)
	if err != nil {
		t.Fatal(err)
	}
	type blob struct {
		sha     []byte
		noData  bool
		raw     int64
		rawPart int32
	}
	var blobs []blob
	for rows.Next() {
		var b blob
		if err := rows.Scan(&b.sha, &b.noData, &b.raw, &b.rawPart); err != nil {
			t.Fatal(err)
		}
		blobs = append(blobs, b)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(blobs) != 2 || !blobs[0].noData || !blobs[1].noData || blobs[0].raw != first || blobs[0].rawPart != 1 ||
		!(blobs[1].raw == first && blobs[1].rawPart == 2 || blobs[1].raw == second && blobs[1].rawPart == 1) {
		t.Fatalf("blobs %+v: want two without data, a.log part 1 of raw mail %d, b.bin part 2 of it or part 1 of %d",
			blobs, first, second)
	}
	for name, want := range files {
		sum := sha256.Sum256(want)
		got, err := h.svc.Store().AttachmentData(h.ctx, sum[:])
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: read back %d bytes (%v), want %d", name, len(got), err, len(want))
		}
	}
	if n := h.count(`SELECT count(*) FROM attachments`); n != 3 {
		t.Errorf("%d attachment rows, want 3", n)
	}
	// content whose raw mail no longer matches it is refused, not returned wrong
	wrong := sha256.Sum256([]byte("other"))
	if _, err := h.pool.Exec(h.ctx, `INSERT INTO blobs (sha256, size, raw_mail_id, raw_part) VALUES ($1, 5, $2, 1)`, wrong[:], first); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.Store().AttachmentData(h.ctx, wrong[:]); err == nil {
		t.Error("a blob whose raw mail holds no such content was read back")
	}
	if _, err := h.svc.Store().AttachmentData(h.ctx, []byte("missing")); err == nil || !strings.Contains(err.Error(), tickets.ErrNotFound.Error()) {
		t.Errorf("missing blob: %v", err)
	}
}
