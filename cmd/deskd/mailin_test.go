package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deskd/deskd/internal/corpustest"
	"github.com/deskd/deskd/internal/testdb"
)

func TestImportReplayQuarantineAndInspect(t *testing.T) {
	ctx := context.Background()
	pool, url := testdb.NewWithURL(t)
	cfg := writeConfig(t, url, "127.0.0.1:0")
	dir := t.TempDir()
	mboxPath := filepath.Join(dir, "old.mbox")
	mbox := "From alice@corp.example Tue Nov 24 09:00:00 2026\n" +
		"From: Alice <alice@corp.example>\nTo: support@desk.example.com\nSubject: Printer offline\nMessage-ID: <p1@corp.example>\n\nThe printer is offline.\n\n" +
		"From alice@corp.example Tue Nov 24 09:05:00 2026\n" +
		"From: Alice <alice@corp.example>\nTo: support@desk.example.com\nSubject: Re: Printer offline\nMessage-ID: <p2@corp.example>\nIn-Reply-To: <p1@corp.example>\n\nStill offline.\n>From the logs: nothing.\n\n" +
		"From nobody Tue Nov 24 09:06:00 2026\n" +
		"Subject: no sender\nMessage-ID: <p3@corp.example>\n\nwho sent this?\n"
	if err := os.WriteFile(mboxPath, []byte(mbox), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := deskd(t, ctx, "import", mboxPath, "--config", cfg, "--json", "--log-format", "json")
	if code != 0 {
		t.Fatalf("import: %d %s", code, errOut)
	}
	var res struct {
		Messages int            `json:"messages"`
		ByState  map[string]int `json:"by_state"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Messages != 3 || res.ByState["ingested"] != 2 || res.ByState["quarantined"] != 1 {
		t.Fatalf("import result %v %s", err, out)
	}
	if !strings.Contains(errOut, "ingest") {
		t.Errorf("no progress output on stderr: %q", errOut)
	}
	var tickets, msgs, outbox int
	pool.QueryRow(ctx, `SELECT count(*) FROM tickets`).Scan(&tickets)
	pool.QueryRow(ctx, `SELECT count(*) FROM messages`).Scan(&msgs)
	if tickets != 1 || msgs != 2 {
		t.Errorf("%d tickets %d messages after import, want the reply threaded onto one ticket", tickets, msgs)
	}
	// importing again adds nothing
	code, out, _ = deskd(t, ctx, "import", mboxPath, "--config", cfg, "--json")
	if code != 0 || !strings.Contains(out, `"messages": 0`) {
		t.Errorf("re-import: %d %s", code, out)
	}
	pool.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&outbox)
	if outbox != 0 {
		t.Errorf("import without --notify queued %d mails", outbox)
	}

	code, out, _ = deskd(t, ctx, "quarantine", "list", "--json", "--config", cfg)
	var q []struct {
		ID     int64  `json:"id"`
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal([]byte(out), &q); code != 0 || err != nil || len(q) != 1 || !strings.Contains(q[0].Reason, "From") {
		t.Fatalf("quarantine list: %d %v %s", code, err, out)
	}
	qid := fmt.Sprint(q[0].ID)
	code, out, _ = deskd(t, ctx, "quarantine", "show", qid, "--config", cfg)
	if code != 0 || !strings.Contains(out, "raw mail "+qid+": quarantined") || !strings.Contains(out, "reason: "+firstLine(q[0].Reason)) {
		t.Errorf("quarantine show %s: %d %s", qid, code, out)
	}
	code, out, _ = deskd(t, ctx, "quarantine", "show", qid, "--raw", "--config", cfg)
	if code != 0 || !strings.Contains(out, "who sent this?") {
		t.Errorf("quarantine show --raw: %d %q", code, out)
	}
	code, out, _ = deskd(t, ctx, "replay", "--all", "--json", "--config", cfg)
	if code != 0 || !strings.Contains(out, `"quarantined": 1`) {
		t.Errorf("replay --all: %d %s", code, out)
	}
	if code, _, errOut := deskd(t, ctx, "replay", "--config", cfg); code == 0 || !strings.Contains(errOut, "--all") {
		t.Errorf("replay without arguments: %d %q", code, errOut)
	}

	// inspect a real bounce from the corpus
	corpus := corpustest.Dir(t)
	code, out, errOut = deskd(t, ctx, "inspect", filepath.Join(corpus, "bounces/mailgem__report_530.eml"), "--json", "--config", cfg)
	if code != 0 {
		t.Fatalf("inspect: %d %s", code, errOut)
	}
	var ins map[string]any
	if err := json.Unmarshal([]byte(out), &ins); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"subject", "from", "to", "cc", "date", "message_id", "in_reply_to", "references", "text",
		"visible_text", "has_html", "attachments", "warnings", "class", "bounce", "thread"} {
		if _, ok := ins[k]; !ok {
			t.Errorf("inspect output lacks %q", k)
		}
	}
	bounce, _ := ins["bounce"].(map[string]any)
	if ins["class"] != "bounce" || bounce["recipient"] != "edwin@zzzzzzz.com" || bounce["status"] != "5.3.0" || bounce["hard"] != true {
		t.Errorf("inspect bounce: class %v bounce %v", ins["class"], bounce)
	}
	code, out, _ = deskd(t, ctx, "inspect", filepath.Join(corpus, "bounces/mailgem__report_530.eml"), "--db", "--config", cfg)
	if code != 0 || !strings.Contains(out, `"decision": "new_ticket"`) {
		t.Errorf("inspect --db: %d %s", code, out)
	}
}

func TestTemplatesPreview(t *testing.T) {
	ctx := context.Background()
	_, url := testdb.NewWithURL(t)
	cfg := writeConfig(t, url, "127.0.0.1:0")
	dir := t.TempDir()
	eml := filepath.Join(dir, "in.eml")
	os.WriteFile(eml, []byte("From: Jörg <joerg@corp.example>\r\nTo: support@desk.example.com\r\nSubject: Drucker kaputt\r\n"+
		"Message-ID: <Mixed.Case.1@corp.example>\r\n\r\nDer Drucker druckt nicht.\r\n"), 0o644)
	if code, _, errOut := deskd(t, ctx, "import", eml, "--config", cfg); code != 0 {
		t.Fatalf("import: %s", errOut)
	}
	out := filepath.Join(dir, "ack.eml")
	code, stdout, errOut := deskd(t, ctx, "templates", "preview", "ack", "--ticket", "SD-1000", "--lang", "de", "--out", out, "--config", cfg)
	if code != 0 {
		t.Fatalf("preview: %d %s", code, errOut)
	}
	raw, err := os.ReadFile(out)
	if err != nil || !strings.Contains(stdout, "wrote") {
		t.Fatal(err, stdout)
	}
	for _, want := range []string{"Subject: [SD-1000]", "In-Reply-To: <Mixed.Case.1@corp.example>", "Auto-Submitted: auto-replied",
		"Content-Language: de", "To: =?utf-8?q?J=C3=B6rg?= <joerg@corp.example>"} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("preview lacks %q:\n%s", want, raw)
		}
	}
	code, stdout, _ = deskd(t, ctx, "templates", "preview", "agent_new", "--ticket", "sd-1000", "--config", cfg)
	if code != 0 || !strings.Contains(stdout, "To: ana@desk.example.com") && !strings.Contains(stdout, "<ana@desk.example.com>") {
		t.Errorf("agent_new preview: %d\n%s", code, stdout)
	}
	if code, _, errOut := deskd(t, ctx, "templates", "preview", "nope", "--ticket", "SD-1000", "--config", cfg); code == 0 {
		t.Errorf("unknown template accepted: %s", errOut)
	}
}
