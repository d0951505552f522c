package classify

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/deskd/deskd/internal/corpustest"
	"github.com/deskd/deskd/mailin/parse"
)

// FuzzClassify parses arbitrary bytes and classifies the result, and also feeds the bytes
// straight into every report parser (as text and as each report part type), since parse.Parse
// normalises most of what an attacker could put there. Seeds: every corpus message (when the
// corpus is present) and a few small reports. Invariants: no panic, a known class with a
// reason, bounded recipients, consistent recipient flags, deterministic results.
func FuzzClassify(f *testing.F) {
	f.Add([]byte("From: MAILER-DAEMON@x\nSubject: failure notice\n\n<a@b.example>:\n550 5.1.1 no such user\n"))
	f.Add([]byte("Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n--b\nContent-Type: message/delivery-status\n\nFinal-Recipient: rfc822; a@b\nAction: failed\nStatus: 5.1.1\n--b--\n"))
	f.Add([]byte("From: a@b\nAuto-Submitted: auto-replied\nSubject: Automatic reply: x\n\naway"))
	f.Add([]byte("Final-Recipient: rfc822; a@b\nAction: delayed\nStatus: 4.4.1\n\nFinal-Recipient: rfc822; c@d\n"))
	dir := os.Getenv("DESKD_CORPUS")
	if root, err := corpustest.Root(); err == nil && dir == "" {
		dir = filepath.Join(root, "..", "shared", "corpus")
	}
	if _, err := os.Stat(dir); err == nil {
		_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || strings.HasSuffix(path, ".tsv") || strings.HasSuffix(path, ".md") ||
				strings.Contains(path, ".expected.") {
				return nil
			}
			if raw, err := os.ReadFile(path); err == nil && len(raw) < 256<<10 {
				f.Add(raw)
			}
			return nil
		})
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if m, err := parse.Parse(raw); err == nil && m != nil {
			checkResult(t, m)
		}
		text := string(raw)
		direct := &parse.Message{Text: text, Subject: firstLine(text), ContentType: "multipart/report",
			ContentTypeParams: map[string]string{"report-type": "delivery-status"}}
		for _, ct := range append(append(append(append([]string(nil), deliveryStatusTypes...), dispositionTypes...), feedbackTypes...), returnedTypes...) {
			direct.Attachments = append(direct.Attachments, parse.Attachment{ContentType: ct, Data: raw})
		}
		checkResult(t, direct)
		direct.Attachments = nil
		direct.ContentType = "text/plain"
		checkResult(t, direct)
	})
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// checkResult classifies m twice and checks the invariants of a Result.
func checkResult(t *testing.T, m *parse.Message) {
	t.Helper()
	o := Options{DeskAddresses: []string{"support@desk.example"}, DeskDomain: "desk.example"}
	r := Classify(m, o)
	switch r.Class {
	case ClassLoop, ClassBounce, ClassReport, ClassMDN, ClassAutoreply, ClassList, ClassNormal:
	default:
		t.Fatalf("unknown class %q", r.Class)
	}
	if r.Reason == "" {
		t.Fatalf("class %s without a reason", r.Class)
	}
	if r.Bounce != nil {
		if r.Class != ClassBounce && r.Class != ClassReport {
			t.Fatalf("Bounce details on class %s", r.Class)
		}
		if n := len(r.Bounce.Recipients); n > maxRecipients {
			t.Fatalf("%d recipients", n)
		}
		for _, rc := range r.Bounce.Recipients {
			if rc.Hard && (rc.Action != ActionFailed || rc.Retryable || strings.HasPrefix(rc.Status, "4.")) {
				t.Fatalf("inconsistent hard recipient %+v", rc)
			}
		}
		if r.Class == ClassReport && r.Bounce.Failed() {
			t.Fatalf("report with a failed recipient: %+v", r.Bounce)
		}
	}
	if again := Classify(m, o); !reflect.DeepEqual(again, r) {
		t.Fatalf("not deterministic: %+v then %+v", r, again)
	}
}
