package parse

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func mustParse(t *testing.T, raw string) *Message {
	t.Helper()
	m, err := Parse([]byte(raw))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return m
}

func hasWarning(m *Message, sub string) bool {
	for _, w := range m.Warnings {
		if strings.Contains(w, sub) {
			return true
		}
	}
	return false
}

func TestParseEmptyIsNotMail(t *testing.T) {
	for _, raw := range []string{"", "  \r\n\r\n"} {
		if _, err := Parse([]byte(raw)); !errors.Is(err, ErrNotMail) {
			t.Errorf("Parse(%q) error = %v, want ErrNotMail", raw, err)
		}
	}
}

func TestDecodeHeaderWords(t *testing.T) {
	tests := []struct{ name, in, hint, want string }{
		{"plain", "Hello", "", "Hello"},
		{"b word", "=?UTF-8?B?w6l0w6k=?=", "", "été"},
		{"q word underscores", "=?iso-8859-1?q?caf=E9_cr=E8me?=", "", "café crème"},
		{"adjacent words join", "=?utf-8?q?a?= =?utf-8?q?b?=", "", "ab"},
		{"split multibyte across words", "=?utf-8?B?4oI=?= =?utf-8?B?rA==?=", "", "€"},
		{"missing spaces", "foo=?utf-8?q?bar?=baz", "", "foobarbaz"},
		{"inside quotes", `"=?utf-8?q?J=C3=B6rg?=" <j@x>`, "", `"Jörg" <j@x>`},
		{"unpadded base64", "=?utf-8?b?w6k?=", "", "é"},
		{"unknown charset keeps text", "=?x-unknown?q?abc?=", "", "abc"},
		{"not a word", "=?broken", "", "=?broken"},
		{"ks_c_5601-1987 alias", "=?ks_c_5601-1987?B?vcW32g==?=", "", "신뢰"},
		{"iso-2022-jp", "=?ISO-2022-JP?B?GyRCJCIkJCQmGyhC?=", "", "あいう"},
		{"raw 8-bit latin1 with hint", "Caf\xe9", "iso-8859-1", "Café"},
		{"raw utf-8 kept", "Säying", "", "Säying"},
		{"language tag", "=?utf-8*en?q?hi?=", "", "hi"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := decodeHeader(tt.in, tt.hint)
			if got != tt.want {
				t.Errorf("decodeHeader(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestDecodeCharset(t *testing.T) {
	tests := []struct {
		name, label string
		in          []byte
		want, used  string
		warn        bool
	}{
		{"shift_jis alias", "x-sjis", []byte("\x82\xa0"), "あ", "x-sjis", false},
		{"cp1252 euro", "cp1252", []byte("\x80 5"), "€ 5", "cp1252", false},
		{"latin1 is windows-1252", "ISO-8859-1", []byte("\x93q\x94"), "\u201cq\u201d", "iso-8859-1", false},
		{"koi8-r", "koi8-r", []byte("\xf0\xd2\xc9\xd7\xc5\xd4"), "Привет", "koi8-r", false},
		{"gb2312 decoded as gb18030", "gb2312", []byte("\xc4\xe3\xba\xc3"), "你好", "gb2312", false},
		{"big5", "big5", []byte("\xa4\xa4\xa4\xe5"), "中文", "big5", false},
		{"euc-jp", "euc-jp", []byte("\xa4\xa2"), "あ", "euc-jp", false},
		{"windows-1251", "windows-1251", []byte("\xcf\xf0\xe8"), "При", "windows-1251", false},
		{"iso-8859-2", "iso-8859-2", []byte("\xb1"), "ą", "iso-8859-2", false},
		{"utf-7", "unicode-1-1-utf-7", []byte("Hi +AOk-"), "Hi é", "unicode-1-1-utf-7", false},
		{"utf-7 literal plus", "utf-7", []byte("1 +- 1"), "1 + 1", "utf-7", false},
		{"us-ascii label but latin1 bytes", "us-ascii", []byte("Gr\xfc\xdfe"), "Grüße", "windows-1252", true},
		{"utf-8 label but latin1 bytes", "utf-8", []byte("na\xefve"), "naïve", "windows-1252", true},
		{"us-ascii label but iso-2022-jp", "us-ascii", []byte("\x1b$B$\"\x1b(B"), "あ", "iso-2022-jp", true},
		{"latin1 label but utf-8 bytes", "iso-8859-1", []byte("é"), "é", "utf-8", true},
		{"unknown label ascii", "fakescii", []byte("hello"), "hello", "us-ascii", true},
		{"missing label latin1", "", []byte("caf\xe9"), "café", "windows-1252", false},
		{"missing label koi8", "", []byte("\xf0\xd2\xc9\xd7\xc5\xd4 \xcd\xc9\xd2"), "Привет мир", "koi8-r", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, used, warn := decodeCharset(tt.in, tt.label)
			if got != tt.want || used != tt.used || (warn != "") != tt.warn {
				t.Errorf("decodeCharset(%q, %q) = %q, %q, warn %q; want %q, %q, warn=%v", tt.in, tt.label, got, used, warn, tt.want, tt.used, tt.warn)
			}
		})
	}
}

func TestParseHeaders(t *testing.T) {
	raw := "From: =?utf-8?q?J=C3=B6rg?= <jorg@example.com>\r\n" +
		"To: a@example.com, \"B, Bee\" <b@example.com>\r\n" +
		"Cc: undisclosed-recipients:;\r\n" +
		"Subject: =?utf-8?B?SGVsbG8g?=\r\n =?utf-8?B?V29ybGQ=?=\r\n" +
		"Date: Tue, 1 Mar 2011 18:02:00 +0530\r\n" +
		"Message-ID: <abc@example.com>\r\n" +
		"In-Reply-To: <p1@x>\r\n" +
		"References: <p0@x>\r\n <p1@x> junk\r\n" +
		"\r\nbody\r\n"
	m := mustParse(t, raw)
	if m.From == nil || m.From.Name != "Jörg" || m.From.Address != "jorg@example.com" {
		t.Errorf("From = %v", m.From)
	}
	if len(m.To) != 2 || m.To[1].Name != "B, Bee" {
		t.Errorf("To = %v", m.To)
	}
	if len(m.Cc) != 0 {
		t.Errorf("Cc = %v, want empty group to yield nothing", m.Cc)
	}
	if m.Subject != "Hello World" {
		t.Errorf("Subject = %q", m.Subject)
	}
	if want := time.Date(2011, 3, 1, 12, 32, 0, 0, time.UTC); !m.Date.Equal(want) {
		t.Errorf("Date = %v", m.Date)
	}
	if m.MessageID != "abc@example.com" || strings.Join(m.InReplyTo, ",") != "p1@x" || strings.Join(m.References, ",") != "p0@x,p1@x" {
		t.Errorf("ids = %q %v %v", m.MessageID, m.InReplyTo, m.References)
	}
	if m.ContentType != "text/plain" || m.Text != "body\n" {
		t.Errorf("ContentType %q Text %q", m.ContentType, m.Text)
	}
}

func TestParseBrokenAddressList(t *testing.T) {
	m := mustParse(t, "From: Bob <bob@x> Bobby <bobby@x>\nTo: <a@x>, broken <<, c@x\n\nhi\n")
	if m.From == nil || m.From.Address != "bob@x" {
		t.Errorf("From = %v", m.From)
	}
	var got []string
	for _, a := range m.To {
		got = append(got, a.Address)
	}
	if strings.Join(got, ",") != "a@x,c@x" {
		t.Errorf("To = %v, want a@x,c@x salvaged", got)
	}
	if !hasWarning(m, "malformed address list") {
		t.Errorf("no warning: %q", m.Warnings)
	}
}

func TestParseStructure(t *testing.T) {
	raw := "Content-Type: multipart/mixed; boundary=\"outer\"\n\n" +
		"preamble\n--outer\n" +
		"Content-Type: multipart/alternative; boundary=inner\n\n" +
		"--inner\nContent-Type: text/plain; charset=utf-8\n\nplain body\n" +
		"--inner\nContent-Type: multipart/related; boundary=rel\n\n" +
		"--rel\nContent-Type: text/html; charset=utf-8\n\n<p>html <img src=\"cid:logo@x\"></p>\n" +
		"--rel\nContent-Type: image/png\nContent-ID: <logo@x>\nContent-Transfer-Encoding: base64\n\niVBORw0KGgo=\n" +
		"--rel--\n--inner--\n" +
		"--outer\nContent-Type: application/pdf; name*0*=utf-8''R%C3%A9sum; name*1*=%C3%A9.pdf\n" +
		"Content-Disposition: attachment\nContent-Transfer-Encoding: base64\n\nJVBERi0=\n" +
		"--outer\nContent-Type: message/rfc822\n\nSubject: inner\n\ninner text must not be the body\n" +
		"--outer--\nepilogue\n"
	m := mustParse(t, raw)
	if m.Text != "plain body" {
		t.Errorf("Text = %q", m.Text)
	}
	if m.HTML != "<p>html <img src=\"cid:logo@x\"></p>" {
		t.Errorf("HTML = %q", m.HTML)
	}
	if len(m.Attachments) != 3 {
		t.Fatalf("attachments = %+v", m.Attachments)
	}
	img, pdf, msg := m.Attachments[0], m.Attachments[1], m.Attachments[2]
	if img.ContentType != "image/png" || img.ContentID != "logo@x" || !img.Inline || img.Size != 8 {
		t.Errorf("image = %+v", img)
	}
	if pdf.Filename != "Résumé.pdf" || string(pdf.Data) != "%PDF-" || pdf.Size != 5 {
		t.Errorf("pdf = %q %q", pdf.Filename, pdf.Data)
	}
	if msg.ContentType != "message/rfc822" || !strings.Contains(string(msg.Data), "inner text") {
		t.Errorf("rfc822 = %+v", msg)
	}
	if strings.Contains(m.Text, "inner text") || len(m.Warnings) != 0 {
		t.Errorf("Text %q warnings %q", m.Text, m.Warnings)
	}
}

func TestParseReport(t *testing.T) {
	raw := "Content-Type: multipart/report; report-type=delivery-status; boundary=r\n\n" +
		"--r\nContent-Type: text/plain\n\nDelivery failed.\n" +
		"--r\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx\n\nAction: failed\nStatus: 5.1.1\n" +
		"--r\nContent-Type: text/rfc822-headers\n\nSubject: hi\n" +
		"--r--\n"
	m := mustParse(t, raw)
	if m.Text != "Delivery failed." || m.ContentTypeParams["report-type"] != "delivery-status" {
		t.Errorf("Text %q params %v", m.Text, m.ContentTypeParams)
	}
	if len(m.Attachments) != 2 || m.Attachments[0].ContentType != "message/delivery-status" || m.Attachments[1].ContentType != "text/rfc822-headers" {
		t.Errorf("attachments %+v", m.Attachments)
	}
}

func TestParseDamage(t *testing.T) {
	tests := []struct {
		name, raw, text, warning string
	}{
		{"missing close delimiter", "Content-Type: multipart/mixed; boundary=b\n\n--b\n\ntext\n--b\nContent-Type: text/plain\n\nmore", "text\n\nmore", "close delimiter missing"},
		{"wrong boundary parameter", "Content-Type: multipart/mixed; boundary=zzz\n\n--real-boundary-1\n\nfound\n--real-boundary-1--\n", "found", "not found, used"},
		{"no boundary at all", "Content-Type: multipart/mixed\n\njust text\n", "just text", "without boundary"},
		{"truncated base64", "Content-Transfer-Encoding: base64\n\nSGVsbG8gd29ybG", "Hello worl", "base64"},
		{"base64 label on plain text", "Content-Transfer-Encoding: base64\n\nthis is not base64 at all, friends\n", "this is not base64 at all, friends", "not base64"},
		{"broken quoted-printable", "Content-Transfer-Encoding: quoted-printable\n\na=3Db=ZZc=\nd", "a=b=ZZcd", "quoted-printable"},
		{"unknown transfer encoding", "Content-Transfer-Encoding: base9000\n\nraw", "raw", "Content-Transfer-Encoding"},
		{"CR-only line endings", "Subject: x\rContent-Type: text/plain\r\rline1\rline2\r", "line1\nline2\n", "CR-only"},
		{"missing content type", "Subject: x\n\nplain", "plain", "missing Content-Type"},
		{"html without content type", "Subject: x\n\n<html><body><p>Hi &amp; bye</p></body></html>", "Hi & bye", "looks like HTML"},
		{"malformed content type", "Content-Type: text\n\nplain", "plain", "malformed Content-Type"},
		{"bare LF and CRLF mixed", "Content-Type: text/plain\r\n\nA\r\nB\n", "A\nB\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustParse(t, tt.raw)
			if strings.TrimSpace(m.Text) != strings.TrimSpace(tt.text) {
				t.Errorf("Text = %q, want %q", m.Text, tt.text)
			}
			if tt.warning != "" && !hasWarning(m, tt.warning) {
				t.Errorf("warnings %q lack %q", m.Warnings, tt.warning)
			}
		})
	}
}

func TestParseDeepNestingIsBounded(t *testing.T) {
	var sb strings.Builder
	for i := 0; i < 200; i++ {
		sb.WriteString("Content-Type: multipart/mixed; boundary=b" + strings.Repeat("x", i) + "\n\n--b" + strings.Repeat("x", i) + "\n")
	}
	sb.WriteString("Content-Type: text/plain\n\ndeep\n")
	m := mustParse(t, sb.String())
	if !hasWarning(m, "nesting too deep") {
		t.Errorf("warnings %q", m.Warnings)
	}
}

func TestFormatFlowed(t *testing.T) {
	tests := []struct {
		name, in string
		delsp    bool
		want     string
	}{
		{"joins soft breaks", "Hello \nworld\n", false, "Hello world\n"},
		{"space stuffing", " From me\n", false, "From me\n"},
		{"quotes keep depth", "> a \n> b\n>> c\n", false, "> a b\n>> c\n"},
		{"signature separator not flowed", "text\n-- \nsig\n", false, "text\n-- \nsig\n"},
		{"delsp doubled space", "long  \nword\n", true, "long word\n"},
		{"delsp cjk", "日本 \n語\n", true, "日本語\n"},
		{"delsp single space after latin letter kept", "there is \na test\n", true, "there is a test\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := unflow(tt.in, tt.delsp); got != tt.want {
				t.Errorf("unflow(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestHTMLToText(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"paragraphs and br", "<p>One</p><p>Two<br>Three</p>", "One\n\nTwo\nThree"},
		{"link target kept", `See <a href="https://example.com/x">the docs</a>.`, "See the docs (https://example.com/x)."},
		{"link text equal to url", `<a href="https://example.com">https://example.com</a>`, "https://example.com"},
		{"mailto with address text", `<a href="mailto:a@x">a@x</a>`, "a@x"},
		{"lists", "<ul><li>a</li><li>b</li></ul><ol><li>c</li><li>d</li></ol>", "- a\n- b\n1. c\n2. d"},
		{"script and style dropped", "<style>p{}</style><script>alert(1)</script><p>ok</p>", "ok"},
		{"entities", "Fish &amp; chips &lt;3 &nbsp;&eacute;", "Fish & chips <3 é"},
		{"table rows", "<table><tr><td>a</td><td>b</td></tr><tr><td>c</td><td></td></tr></table>", "a | b\nc"},
		{"blockquote quoted", "<p>reply</p><blockquote>old<br>older</blockquote>", "reply\n\n> old\n> older"},
		{"pre keeps whitespace", "<pre>a  b\n  c</pre>", "a  b\n  c"},
		{"whitespace collapsed", "a\n   b\t\tc", "a b c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := HTMLToText(tt.in); got != tt.want {
				t.Errorf("HTMLToText(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestFixtures checks the hand-made messages in testdata.
func TestFixtures(t *testing.T) {
	tests := []struct {
		file, text, visible, charset string
		attachments                  []string
		warning                      string
	}{
		{"reply-outlook-de.eml", "", "Das Problem besteht weiterhin.", "windows-1252", nil, ""},
		{"iso2022jp-mislabelled.eml", "", "こんにちは", "iso-2022-jp", []string{"報告書.txt"}, "ISO-2022-JP"},
		{"flowed-reply.eml", "", "Thanks, the printer on floor 3 works again after the restart.", "utf-8", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			m, err := Parse(raw)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if m.VisibleText != tt.visible {
				t.Errorf("VisibleText = %q, want %q", m.VisibleText, tt.visible)
			}
			if m.Charset != tt.charset {
				t.Errorf("Charset = %q, want %q", m.Charset, tt.charset)
			}
			if got := attNames(m); strings.Join(got, ",") != strings.Join(tt.attachments, ",") {
				t.Errorf("attachments = %q, want %q", got, tt.attachments)
			}
			if tt.warning != "" && !hasWarning(m, tt.warning) {
				t.Errorf("warnings %q lack %q", m.Warnings, tt.warning)
			}
		})
	}
}

// TestParseLargeInputsStayFast guards the linear paths: a large base64 attachment, a huge folded
// header, many parts and a long HTML body.
func TestParseLargeInputsStayFast(t *testing.T) {
	payload := strings.Repeat("QUJDRA==\n", 1) + strings.Repeat(strings.Repeat("A", 76)+"\n", 60000)
	var parts strings.Builder
	for i := 0; i < 3000; i++ {
		parts.WriteString("--b\nContent-Type: text/plain\nContent-Disposition: attachment; filename=f.txt\n\nx\n")
	}
	inputs := map[string]string{
		"attachment": "Content-Type: multipart/mixed; boundary=b\n\n--b\n\nhi\n--b\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n" + payload + "--b--\n",
		"folded":     "Subject: x\n" + strings.Repeat(" folded line\n", 200000) + "\nbody\n",
		"no blank":   "X-A: b\n" + strings.Repeat("not a header line\n", 200000),
		"parts":      "Content-Type: multipart/mixed; boundary=b\n\n" + parts.String() + "--b--\n",
		"html":       "Content-Type: text/html\n\n" + strings.Repeat("<div><a href=\"https://x\">link</a> text <blockquote>q</blockquote></div>", 40000),
	}
	for name, raw := range inputs {
		start := time.Now()
		m, err := Parse([]byte(raw))
		if err != nil {
			t.Fatalf("%s: Parse: %v", name, err)
		}
		d := time.Since(start)
		t.Logf("%s: %v for %d bytes", name, d, len(raw))
		if d > 5*time.Second {
			t.Errorf("%s: Parse took %v for %d bytes", name, d, len(raw))
		}
		if name == "attachment" && (len(m.Attachments) != 1 || m.Attachments[0].Size < 3_000_000) {
			t.Errorf("attachment: %d attachments, warnings %q", len(m.Attachments), m.Warnings)
		}
		if name == "parts" && len(m.Attachments) >= maxParts {
			t.Errorf("parts: %d attachments, want at most %d", len(m.Attachments), maxParts)
		}
	}
}
