package mailout

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestThreadHeaders(t *testing.T) {
	t.Parallel()
	long := make([]string, 40)
	for i := range long {
		long[i] = fmt.Sprintf("<m%d@x.example>", i)
	}
	tests := []struct {
		name      string
		inReplyTo string
		refs      []string
		wantIRT   string
		wantRefs  []string
	}{
		{"no parent", "", []string{"<a@x>"}, "", nil},
		{"malformed parent", "not an id", nil, "", nil},
		{"first reply", "<a@x>", nil, "a@x", []string{"a@x"}},
		{"chain", "<c@x>", []string{"<a@x>", "b@x"}, "c@x", []string{"a@x", "b@x", "c@x"}},
		{"duplicates and junk dropped", " <c@x> ", []string{"<a@x>", "<a@x>", "bad id", "<b@x>", "<c@x>"}, "c@x",
			[]string{"a@x", "b@x", "c@x"}},
		{"header injection in id", "<c@x>\r\nBcc: evil@x", nil, "", nil},
		{"capped keeps root and newest", "<new@x.example>", long, "new@x.example",
			append([]string{"m0@x.example"}, append(trim(long[len(long)-(MaxReferences-2):]), "new@x.example")...)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			irt, refs := ThreadHeaders(tc.inReplyTo, tc.refs)
			if irt != tc.wantIRT || !slices.Equal(refs, tc.wantRefs) {
				t.Errorf("ThreadHeaders = %q, %q; want %q, %q", irt, refs, tc.wantIRT, tc.wantRefs)
			}
			if len(refs) > MaxReferences {
				t.Errorf("%d references, cap is %d", len(refs), MaxReferences)
			}
		})
	}
}

func trim(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = strings.Trim(id, "<>")
	}
	return out
}

func TestSanitizeHeader(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"Printer on fire":                    "Printer on fire",
		"Hi\r\nBcc: victim@example.org":      "Hi Bcc: victim@example.org",
		"  tabs\tand\x00nul  ":               "tabs and nul",
		"Ünïcödé stays":                      "Ünïcödé stays",
		"line\nfeed\rcarriage\r\n\r\ninject": "line feed carriage inject",
	} {
		if got := sanitizeHeader(in); got != want {
			t.Errorf("sanitizeHeader(%q) = %q, want %q", in, got, want)
		}
	}
}

// renderFixture renders a mail exercising every header concern.
func renderFixture(t testing.TB, m Mail) []byte {
	t.Helper()
	m, err := m.normalize()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := render(m, envelope{
		messageID: "t.1-abc.xyz@" + testDomain,
		date:      time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC),
		domain:    testDomain,
		replyTo:   Address{Name: m.From.Name, Email: "support+t-1-abc@" + testDomain},
		to:        m.To,
	})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestRenderHeaders(t *testing.T) {
	t.Parallel()
	raw := renderFixture(t, Mail{
		IdempotencyKey: "k",
		Kind:           "ack",
		From:           Address{Name: "Służba Techniczna — Ünïcödé Desk with a rather long display name", Email: queueAddr},
		To:             []Address{{Name: "Zoë Ærøskøbing", Email: "Zoe@Example.net"}, {Email: "zoe@example.net"}},
		Subject:        "[SD-1042] Drucker brennt — bitte dringend helfen, es qualmt schon im ganzen Büro\r\nBcc: evil@x",
		Text:           "Hallo Zoë,\n\n" + strings.Repeat("a very long line ", 30) + "\n",
		HTML:           "<p>Hallo Zoë</p>",
		InReplyTo:      "<orig@client.example.net>",
		References:     []string{"<root@client.example.net>"},
		AutoSubmitted:  AutoReplied,
		Attachments:    []Attachment{{Filename: "log\r\n.txt", ContentType: "text/plain", Data: []byte("log line\n")}},
	})
	checkLineLengths(t, raw)
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("parse rendered mail: %v\n%s", err, raw)
	}
	h := msg.Header
	want := map[string]string{
		"Message-Id":               "<t.1-abc.xyz@" + testDomain + ">",
		"In-Reply-To":              "<orig@client.example.net>",
		"References":               "<root@client.example.net> <orig@client.example.net>",
		"Auto-Submitted":           "auto-replied",
		"Precedence":               "bulk",
		"X-Auto-Response-Suppress": "All",
		LoopHeader:                 testDomain,
	}
	for k, v := range want {
		if got := unfold(h.Get(k)); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if got := h["Bcc"]; got != nil {
		t.Errorf("header injection produced Bcc: %q", got)
	}
	dec := new(mime.WordDecoder)
	subj, err := dec.DecodeHeader(h.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	if wantSubj := "[SD-1042] Drucker brennt — bitte dringend helfen, es qualmt schon im ganzen Büro Bcc: evil@x"; subj != wantSubj {
		t.Errorf("Subject = %q, want %q", subj, wantSubj)
	}
	from, err := mail.ParseAddress(h.Get("From"))
	if err != nil || from.Name != "Służba Techniczna — Ünïcödé Desk with a rather long display name" || from.Address != queueAddr {
		t.Errorf("From = %v (%v)", from, err)
	}
	if !strings.Contains(strings.ToLower(h.Get("From")), "=?utf-8?") {
		t.Errorf("From display name not RFC 2047 encoded: %q", h.Get("From"))
	}
	to, err := h.AddressList("To")
	if err != nil || len(to) != 1 || to[0].Name != "Zoë Ærøskøbing" || to[0].Address != "zoe@example.net" {
		t.Errorf("To = %v (%v); want one de-duplicated, lower-cased address", to, err)
	}
	rt, err := mail.ParseAddress(h.Get("Reply-To"))
	if err != nil || rt.Address != "support+t-1-abc@"+testDomain {
		t.Errorf("Reply-To = %v (%v)", rt, err)
	}
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" {
		t.Fatalf("Content-Type = %q (%v)", mt, err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	var names []string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if fn := p.FileName(); fn != "" {
			names = append(names, fn)
		}
	}
	if len(names) != 1 || strings.ContainsAny(names[0], "\r\n") {
		t.Errorf("attachment names = %q, want one without CR/LF", names)
	}
}

func TestRenderHumanReplyNotAutomated(t *testing.T) {
	t.Parallel()
	raw := renderFixture(t, Mail{
		IdempotencyKey: "k", Kind: "reply",
		From: Address{Name: "Desk", Email: queueAddr}, To: []Address{{Email: "u@example.net"}},
		Subject: "[SD-1] Re: x", Text: "Done.\n",
	})
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"Auto-Submitted", "Precedence", "In-Reply-To", "References"} {
		if v := msg.Header.Get(k); v != "" {
			t.Errorf("human reply without parent has %s: %q", k, v)
		}
	}
	if msg.Header.Get(LoopHeader) != testDomain || msg.Header.Get("X-Auto-Response-Suppress") != "All" {
		t.Errorf("loop headers missing on human reply:\n%s", raw)
	}
}

// checkLineLengths asserts RFC 5322 §2.1.1: header lines at most 78 characters unless one token is
// longer, every line at most 998.
func checkLineLengths(t *testing.T, raw []byte) {
	t.Helper()
	inHeader := true
	for i, line := range strings.Split(string(raw), "\r\n") {
		if line == "" {
			inHeader = false
		}
		if len(line) > 998 {
			t.Errorf("line %d is %d characters", i+1, len(line))
		}
		if inHeader && len(line) > 78 && strings.Count(strings.TrimSpace(line), " ") > 0 {
			t.Errorf("header line %d is %d characters and could have been folded: %q", i+1, len(line), line)
		}
		if !inHeader && len(line) > 78 {
			t.Errorf("body line %d is %d characters: %q", i+1, len(line), line)
		}
	}
}

func unfold(s string) string { return strings.Join(strings.Fields(s), " ") }

func FuzzSanitizeHeader(f *testing.F) {
	for _, s := range []string{"x", "a\r\nb: c", "\x00\x7f", "Ünï\ncödé"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := sanitizeHeader(s)
		if strings.ContainsAny(got, "\r\n") {
			t.Fatalf("sanitizeHeader(%q) = %q keeps a line break", s, got)
		}
	})
}

func FuzzThreadHeaders(f *testing.F) {
	f.Add("<a@x>", "<r1@x> <r2@x>")
	f.Add("c@x\r\nBcc: y", "<a@x>")
	f.Add("<1234@local.machine.example>", "<1234@local.machine.example> <3456@example.net>") // RFC 5322 Appendix A.2
	f.Fuzz(func(t *testing.T, parent, refs string) {
		irt, chain := ThreadHeaders(parent, strings.Fields(refs))
		if irt == "" {
			if chain != nil {
				t.Fatalf("references %q without a parent", chain)
			}
			return
		}
		if len(chain) == 0 || len(chain) > MaxReferences || chain[len(chain)-1] != irt {
			t.Fatalf("chain %q for parent %q", chain, irt)
		}
		for _, id := range append(chain, irt) {
			if cleanMsgID(id) != id {
				t.Fatalf("unclean id %q", id)
			}
		}
	})
}
