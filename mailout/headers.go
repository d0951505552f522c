package mailout

import (
	"bytes"
	"fmt"
	"net/mail"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// LoopHeader names the header deskd puts on every mail it sends, valued with the desk's domain, so
// that mailin recognises its own mail coming back (DESIGN.md invariant 5).
const LoopHeader = "X-Deskd-Loop"

// MaxReferences caps the References header. RFC 5322 §3.6.4 lets a References field grow with every
// reply; long threads then produce headers some MTAs truncate or reject. Like common MUAs we keep the
// thread root and the most recent ids, which is all that threading algorithms need (RFC 5256 §2.2 uses
// the last id as the parent and the first as the root).
const MaxReferences = 20

// ThreadHeaders returns the In-Reply-To and References values for a reply to the message whose
// Message-ID is inReplyTo and whose own References are refs (RFC 5322 §3.6.4): In-Reply-To is that
// message's id, References is refs followed by it, duplicates and malformed ids removed, capped at
// MaxReferences by keeping the first id and the most recent ones. Ids are returned without angle
// brackets. With an empty or malformed inReplyTo, both results are empty: a message that does not
// reply to anything carries no thread headers.
func ThreadHeaders(inReplyTo string, refs []string) (string, []string) {
	parent := cleanMsgID(inReplyTo)
	if parent == "" {
		return "", nil
	}
	seen := make(map[string]bool, len(refs)+1)
	chain := make([]string, 0, len(refs)+1)
	for _, r := range append(append([]string(nil), refs...), parent) {
		id := cleanMsgID(r)
		if id == "" || seen[id] {
			continue
		}
		seen[id] = true
		chain = append(chain, id)
	}
	// The parent must stay last even if it appeared earlier in refs.
	if chain[len(chain)-1] != parent {
		for i, id := range chain {
			if id == parent {
				chain = append(chain[:i], chain[i+1:]...)
				break
			}
		}
		chain = append(chain, parent)
	}
	if len(chain) > MaxReferences {
		chain = append(chain[:1], chain[len(chain)-(MaxReferences-1):]...)
	}
	return parent, chain
}

// cleanMsgID returns id without surrounding whitespace and angle brackets, or "" when what remains is
// not a plausible msg-id (RFC 5322 §3.6.4: id-left "@" id-right, no whitespace, brackets or controls,
// at most 250 octets so a References line of one id stays far below 998).
func cleanMsgID(id string) string {
	id = strings.TrimSpace(id)
	id = strings.TrimSuffix(strings.TrimPrefix(id, "<"), ">")
	if id == "" || len(id) > 250 {
		return ""
	}
	at := strings.LastIndexByte(id, '@')
	if at <= 0 || at == len(id)-1 {
		return ""
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c <= ' ' || c >= 0x7f || c == '<' || c == '>' || c == '"' || c == '\\' {
			return ""
		}
	}
	return id
}

// sanitizeHeader makes s safe as an unstructured header value: CR and LF (the header injection
// vectors) and other C0 controls become spaces, runs of spaces collapse, and the ends are trimmed.
func sanitizeHeader(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return strings.TrimSpace(s)
	}
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// envelope is what rendering needs beyond the Mail: values Enqueue fixes once.
type envelope struct {
	messageID string    // without angle brackets
	date      time.Time // Date header
	domain    string    // the desk's domain, valued in LoopHeader
	replyTo   Address   // "" Email for none
	to        []Address // recipients after policy
}

// render writes m as RFC 5322 bytes with go-mail. Header values are sanitised and encoded (RFC 2047
// encoded words for non-ASCII, lines folded at 78), bodies are quoted-printable (RFC 2045 §6.7) so no
// body line exceeds 76 characters. render is pure: the same inputs give the same headers (the MIME
// boundary is random).
func render(m Mail, env envelope) ([]byte, error) {
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	msg.SetMessageIDWithValue(env.messageID)
	msg.SetDateWithValue(env.date)
	msg.FromMailAddress(toMailAddress(m.From))
	rcpts := make([]*mail.Address, len(env.to))
	for i, a := range env.to {
		rcpts[i] = toMailAddress(a)
	}
	msg.ToMailAddress(rcpts...)
	if env.replyTo.Email != "" {
		msg.ReplyToMailAddress(toMailAddress(env.replyTo))
	}
	msg.Subject(m.Subject)
	if irt, refs := ThreadHeaders(m.InReplyTo, m.References); irt != "" {
		msg.SetGenHeader(gomail.HeaderInReplyTo, "<"+irt+">")
		msg.SetGenHeader(gomail.HeaderReferences, "<"+strings.Join(refs, "> <")+">")
	}
	if lang := sanitizeHeader(m.Language); lang != "" && !strings.ContainsAny(lang, " ,;") {
		msg.SetGenHeader(gomail.HeaderContentLang, lang) // RFC 3282 §2
	}
	// MS-OXCMAIL §2.2.3.2.14: ask Exchange and Outlook not to send out-of-office and similar replies.
	msg.SetGenHeader(gomail.HeaderXAutoResponseSuppress, "All")
	msg.SetGenHeader(LoopHeader, env.domain)
	if m.automated() {
		msg.SetGenHeader("Auto-Submitted", m.AutoSubmitted) // RFC 3834 §5
		// RFC 3834 §3.1.8 discourages Precedence for new software but recommends honouring it; many
		// vacation responders only look at it, so automated mail carries both.
		msg.SetGenHeader(gomail.HeaderPrecedence, "bulk")
	}
	text := m.Text
	if text == "" && m.HTML == "" {
		text = "\n"
	}
	if text != "" {
		msg.SetBodyString(gomail.TypeTextPlain, text)
		if m.HTML != "" {
			msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
		}
	} else {
		msg.SetBodyString(gomail.TypeTextHTML, m.HTML)
	}
	for _, a := range m.Attachments {
		ct := a.ContentType
		if ct == "" {
			ct = "application/octet-stream"
		}
		name := sanitizeHeader(a.Filename)
		if name == "" {
			name = "attachment"
		}
		if err := msg.AttachReader(name, bytes.NewReader(a.Data),
			gomail.WithFileContentType(gomail.ContentType(sanitizeHeader(ct)))); err != nil {
			return nil, fmt.Errorf("attach %q: %w", name, err)
		}
	}
	// sized once for the usual case (quoted-printable adds about a quarter to text, base64 a third
	// to attachments, headers and boundaries a few KB): regrowing it cost 7% of BenchmarkRenderMail
	size := 4096 + len(m.Text) + len(m.HTML) + (len(m.Text)+len(m.HTML))/4
	for _, a := range m.Attachments {
		size += len(a.Data) * 4 / 3
	}
	var buf bytes.Buffer
	buf.Grow(size)
	if _, err := msg.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("write message: %w", err)
	}
	return buf.Bytes(), nil
}
