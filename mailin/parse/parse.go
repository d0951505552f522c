package parse

import (
	"bytes"
	"errors"
	"fmt"
	"net/mail"
	"strings"
)

// ErrNotMail is returned by Parse for input that is not a mail message at all (empty or blank).
// Everything else parses best-effort.
var ErrNotMail = errors.New("not a mail message")

const (
	maxDepth    = 24   // nesting of multiparts; deeper entities become opaque attachments
	maxParts    = 2000 // entities per message
	maxWarnings = 64
)

// Parse parses one RFC 5322 message (MIME per RFC 2045-2049). It never fails on broken mail: damaged
// structure, transfer encodings, charsets and headers are repaired as far as possible and each repair
// is listed in Message.Warnings. It returns an error wrapping ErrNotMail only for empty input, and an
// error (never a panic) if an internal fault occurs. Lines may end in CRLF, LF or CR.
//
// The returned Message may share memory with raw (attachment Data of identity-encoded parts), so raw
// must not be modified afterwards.
func Parse(raw []byte) (msg *Message, err error) {
	defer func() {
		if r := recover(); r != nil {
			msg, err = nil, fmt.Errorf("parse message: internal error: %v", r)
		}
	}()
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, fmt.Errorf("parse message: %w", ErrNotMail)
	}
	b := &builder{msg: &Message{}}
	raw = bytes.TrimPrefix(raw, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark from a Windows tool
	if crOnly(raw) {
		raw = bytes.ReplaceAll(raw, []byte{'\r'}, []byte{'\n'})
		b.warn("CR-only line endings")
	}
	fields, body, warns := splitHeader(raw)
	for _, w := range warns {
		b.warn(w)
	}
	top := b.newEntity(fields, body, "text/plain")
	b.hint = top.params["charset"]
	if get(fields, "Content-Type") == "" {
		b.warn("missing Content-Type, assuming text/plain")
		if looksHTML(body) {
			top.ctype = "text/html"
			b.warn("body without Content-Type looks like HTML")
		}
	}
	b.walk(top, 0, modeBody)
	b.finish(fields, top)
	return b.msg, nil
}

// crOnly reports whether the first line break is a bare CR (classic Mac line endings).
func crOnly(raw []byte) bool {
	i := bytes.IndexAny(raw, "\r\n")
	return i >= 0 && raw[i] == '\r' && (i+1 == len(raw) || raw[i+1] != '\n')
}

func looksHTML(body []byte) bool {
	head := bytes.TrimLeft(body, " \t\r\n")
	if len(head) > 15 {
		head = head[:15]
	}
	head = bytes.ToLower(head)
	return bytes.HasPrefix(head, []byte("<html")) || bytes.HasPrefix(head, []byte("<!doctype html"))
}

// mode says what an entity may become while walking the tree.
type mode uint8

const (
	modeBody   mode = iota // may become the main text/plain or text/html part
	modeAppend             // after the body of a multipart/mixed: inline text/plain is appended to Text
	modeAttach             // always an attachment
)

type textPart struct {
	text     string
	charset  string // used
	declared string
}

// builder accumulates the Message while walking the MIME tree.
type builder struct {
	msg    *Message
	hint   string // charset for raw 8-bit header text
	plain  *textPart
	html   *textPart
	extra  []string // further inline text/plain parts of a multipart/mixed
	nparts int
	seen   map[string]bool // warnings already recorded
}

func (b *builder) warn(w string) {
	w = strings.ToValidUTF8(w, "?")
	if b.seen == nil {
		b.seen = map[string]bool{}
	}
	if b.seen[w] || len(b.msg.Warnings) >= maxWarnings {
		return
	}
	b.seen[w] = true
	b.msg.Warnings = append(b.msg.Warnings, w)
}

// entity is one MIME entity: its header fields and raw (still transfer-encoded) body.
type entity struct {
	fields  []field
	body    []byte
	ctype   string
	params  map[string]string
	disp    string
	dparams map[string]string
	cte     string
}

// newEntity interprets the MIME header fields of an entity (RFC 2045 §5, RFC 2183).
func (b *builder) newEntity(fields []field, body []byte, defType string) *entity {
	e := &entity{fields: fields, body: body}
	ct := get(fields, "Content-Type")
	e.ctype, e.params = parseMediaType(ct, b.hint)
	switch {
	case e.ctype == "":
		e.ctype = defType
	case !strings.Contains(e.ctype, "/") || strings.HasSuffix(e.ctype, "/") || strings.HasPrefix(e.ctype, "/"):
		b.warn("malformed Content-Type " + quote(strings.TrimSpace(ct)))
		switch strings.TrimSuffix(e.ctype, "/") {
		case "text":
			e.ctype = "text/plain"
		case "multipart":
			e.ctype = "multipart/mixed"
		case "message":
			e.ctype = "message/rfc822"
		default:
			e.ctype = "application/octet-stream"
		}
	}
	if e.params == nil {
		e.params = map[string]string{}
	}
	if d := get(fields, "Content-Disposition"); d != "" {
		e.disp, e.dparams = parseMediaType(d, b.hint)
	}
	cte := strings.ToLower(strings.TrimSpace(get(fields, "Content-Transfer-Encoding")))
	if i := strings.IndexAny(cte, " ;("); i >= 0 {
		cte = cte[:i]
	}
	e.cte = strings.Trim(cte, "\"'")
	return e
}

func (e *entity) filename() string {
	if n := e.dparams["filename"]; n != "" {
		return n
	}
	return e.params["name"]
}

// walk classifies one entity and its children. RFC 2046 §5.1: multipart/alternative offers the same
// content in several forms (we keep the first text/plain and the first text/html); multipart/related
// (RFC 2387) has a root part and resources; multipart/report (RFC 6522) and multipart/signed (RFC 1847)
// have the human-readable part first.
func (b *builder) walk(e *entity, depth int, m mode) {
	b.nparts++
	if b.nparts > maxParts {
		b.warn(fmt.Sprintf("more than %d MIME parts, rest ignored", maxParts))
		return
	}
	major, sub, _ := strings.Cut(e.ctype, "/")
	switch {
	case major == "multipart":
		if depth >= maxDepth {
			b.warn("MIME nesting too deep, kept as attachment")
			b.attach(e)
			return
		}
		b.multipart(e, sub, depth, m)
	case e.ctype == "message/rfc822" || e.ctype == "message/global":
		b.attach(e)
	default:
		b.leaf(e, m)
	}
}

func (b *builder) multipart(e *entity, sub string, depth int, m mode) {
	boundary := e.params["boundary"]
	if boundary == "" {
		boundary = guessBoundary(e.body)
		if boundary == "" {
			b.warn("multipart without boundary, treated as text/plain")
			e.ctype = "text/plain"
			b.leaf(e, m)
			return
		}
		b.warn("multipart without boundary parameter, guessed " + quote(boundary))
	}
	parts, found, closed := splitMultipart(e.body, boundary, maxParts)
	if !found {
		if g := guessBoundary(e.body); g != "" && g != boundary {
			parts, found, closed = splitMultipart(e.body, g, maxParts)
			if found {
				b.warn("multipart boundary " + quote(boundary) + " not found, used " + quote(g))
			}
		}
	}
	if !found {
		b.warn("multipart boundary " + quote(boundary) + " not found, body treated as text/plain")
		e.ctype = "text/plain"
		e.params = map[string]string{}
		b.leaf(e, m)
		return
	}
	if !closed {
		b.warn("multipart close delimiter missing")
	}
	defType := "text/plain"
	if sub == "digest" {
		defType = "message/rfc822" // RFC 2046 §5.1.5
	}
	children := make([]*entity, 0, len(parts))
	for _, p := range parts {
		fields, body, warns := splitHeader(p)
		for _, w := range warns {
			if w != "no header block" {
				b.warn(w)
			}
		}
		if defType == "text/plain" && get(fields, "Content-Type") == "" {
			b.warn("part without Content-Type, assuming text/plain")
		}
		children = append(children, b.newEntity(fields, body, defType))
	}
	switch sub {
	case "alternative":
		for _, c := range children {
			if m == modeBody && c.filename() == "" && c.disp != "attachment" &&
				(c.ctype == "text/plain" && b.plain != nil || c.ctype == "text/html" && b.html != nil) {
				continue // a further rendering of a body we already have
			}
			b.walk(c, depth+1, m)
		}
	case "related":
		root := 0
		if start := e.params["start"]; start != "" {
			for i, c := range children {
				if trimBrackets(get(c.fields, "Content-Id")) == trimBrackets(start) {
					root = i
				}
			}
		}
		for i, c := range children {
			if i == root {
				b.walk(c, depth+1, m)
			} else {
				b.walk(c, depth+1, modeAttach)
			}
		}
	case "report", "signed", "encrypted":
		for i, c := range children {
			if i == 0 {
				b.walk(c, depth+1, m)
			} else {
				b.walk(c, depth+1, modeAttach)
			}
		}
	default: // mixed, digest, parallel and unknown subtypes (RFC 2046 §5.1.3: treat as mixed)
		for _, c := range children {
			cm := m
			if m == modeBody && b.haveBody() {
				cm = modeAppend
			}
			b.walk(c, depth+1, cm)
		}
	}
}

func (b *builder) haveBody() bool { return b.plain != nil || b.html != nil }

// leaf handles a non-multipart entity: body text or attachment.
func (b *builder) leaf(e *entity, m mode) {
	isText := e.ctype == "text/plain" || e.ctype == "text/html"
	if m != modeAttach && isText && e.disp != "attachment" && (e.filename() == "" || e.disp == "inline") {
		switch {
		case e.ctype == "text/plain" && m == modeBody && b.plain == nil:
			t, cs := b.decodeText(e)
			b.plain = &textPart{t, cs, normalizeCharset(e.params["charset"])}
			return
		case e.ctype == "text/html" && m == modeBody && b.html == nil:
			t, cs := b.decodeText(e)
			b.html = &textPart{t, cs, normalizeCharset(e.params["charset"])}
			return
		case e.ctype == "text/plain" && m == modeAppend && b.plain != nil:
			t, _ := b.decodeText(e)
			b.extra = append(b.extra, t)
			return
		}
	}
	b.attach(e)
}

// decodeText undoes transfer encoding and charset and normalises line endings to \n; text/plain with
// format=flowed is unwrapped (RFC 3676). It returns the text and the charset used.
func (b *builder) decodeText(e *entity) (string, string) {
	data, w := decodeTransfer(e.cte, e.body)
	if w != "" {
		b.warn(w)
	}
	label := e.params["charset"]
	if label == "" && e.ctype == "text/html" {
		label = sniffHTMLCharset(data)
	}
	text, used, w := decodeCharset(data, label)
	if w != "" {
		b.warn(w)
	}
	text = normalizeNewlines(text)
	if e.ctype == "text/plain" && strings.EqualFold(e.params["format"], "flowed") {
		text = unflow(text, strings.EqualFold(e.params["delsp"], "yes"))
	}
	return text, used
}

func (b *builder) attach(e *entity) {
	data, w := decodeTransfer(e.cte, e.body)
	if w != "" {
		b.warn(w)
	}
	b.msg.Attachments = append(b.msg.Attachments, Attachment{
		Filename:    e.filename(),
		ContentType: e.ctype,
		ContentID:   trimBrackets(get(e.fields, "Content-Id")),
		Inline:      e.disp == "inline",
		Size:        int64(len(data)),
		Data:        data,
	})
}

// finish fills the header-derived fields, Text, HTML and VisibleText.
func (b *builder) finish(fields []field, top *entity) {
	msg := b.msg
	if b.hint == "" {
		switch {
		case b.plain != nil:
			b.hint = b.plain.charset
		case b.html != nil:
			b.hint = b.html.charset
		}
	}
	msg.Header = make(map[string][]string, len(fields))
	for _, f := range fields {
		v, repaired := decodeHeader(f.value, b.hint)
		if repaired {
			b.warn("malformed encoded word in " + f.key)
		}
		msg.Header[f.key] = append(msg.Header[f.key], v)
	}
	msg.Subject = firstValue(msg.Header, "Subject")
	msg.From = b.firstAddress(get(fields, "From"), "From")
	msg.Sender = b.firstAddress(get(fields, "Sender"), "Sender")
	msg.ReplyTo = b.addresses(get(fields, "Reply-To"), "Reply-To")
	msg.To = b.addresses(get(fields, "To"), "To")
	msg.Cc = b.addresses(get(fields, "Cc"), "Cc")
	if d := get(fields, "Date"); d != "" {
		t, ok := parseDate(d)
		if !ok {
			b.warn("unparseable Date " + quote(strings.ToValidUTF8(strings.TrimSpace(d), "?")))
		}
		msg.Date = t
	}
	if id := get(fields, "Message-Id"); id != "" {
		msg.MessageID = trimBrackets(id)
	}
	msg.InReplyTo = parseMsgIDs(get(fields, "In-Reply-To"))
	msg.References = parseMsgIDs(get(fields, "References"))
	msg.ContentType = top.ctype
	msg.ContentTypeParams = top.params

	if b.html != nil {
		msg.HTML = b.html.text
		markInline(msg)
	}
	if b.plain != nil && strings.TrimSpace(b.plain.text) != "" {
		msg.Text = b.plain.text
		msg.Charset, msg.DeclaredCharset = b.plain.charset, b.plain.declared
		if len(b.extra) > 0 {
			var sb strings.Builder
			sb.WriteString(strings.TrimRight(msg.Text, "\n"))
			for _, x := range b.extra {
				sb.WriteString("\n\n")
				sb.WriteString(strings.TrimRight(x, "\n"))
			}
			sb.WriteByte('\n')
			msg.Text = sb.String()
		}
	} else if b.html != nil {
		msg.Text = HTMLToText(b.html.text)
		msg.Charset, msg.DeclaredCharset = b.html.charset, b.html.declared
		if b.plain == nil {
			b.warn("plain text rendered from HTML")
		}
	} else if b.plain != nil {
		msg.Charset, msg.DeclaredCharset = b.plain.charset, b.plain.declared
	}
	msg.VisibleText = VisibleText(msg.Text)
}

func firstValue(h map[string][]string, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func (b *builder) firstAddress(raw, key string) *mail.Address {
	list := b.addresses(raw, key)
	if len(list) == 0 {
		if strings.TrimSpace(raw) != "" {
			b.warn("no address in " + key)
		}
		return nil
	}
	return list[0]
}

func (b *builder) addresses(raw, key string) []*mail.Address {
	list, ok := parseAddressList(raw, b.hint)
	if !ok {
		b.warn("malformed address list in " + key + ", salvaged " + fmt.Sprint(len(list)))
	}
	return list
}

// markInline flags attachments referenced from the HTML as cid: URLs (RFC 2392) as inline.
func markInline(msg *Message) {
	if len(msg.Attachments) == 0 || !strings.Contains(msg.HTML, "cid:") {
		return
	}
	refs := map[string]bool{}
	for s := msg.HTML; ; {
		i := strings.Index(s, "cid:")
		if i < 0 {
			break
		}
		s = s[i+4:]
		end := strings.IndexAny(s, "\"' >)")
		if end < 0 {
			end = len(s)
		}
		refs[s[:end]] = true
	}
	for i := range msg.Attachments {
		if a := &msg.Attachments[i]; a.ContentID != "" && refs[a.ContentID] {
			a.Inline = true
		}
	}
}

// normalizeNewlines turns CRLF and lone CR into \n.
func normalizeNewlines(s string) string {
	if !strings.Contains(s, "\r") {
		return s
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.ReplaceAll(s, "\r", "\n")
}

// sniffHTMLCharset finds a <meta charset> or http-equiv charset declaration near the top of an HTML
// document (HTML Living Standard §13.2.3.2, simplified).
func sniffHTMLCharset(b []byte) string {
	if len(b) > 4096 {
		b = b[:4096]
	}
	lower := bytes.ToLower(b)
	i := bytes.Index(lower, []byte("charset="))
	if i < 0 {
		return ""
	}
	rest := bytes.TrimLeft(lower[i+8:], "\"' ")
	end := 0
	for end < len(rest) && end < 40 {
		c := rest[end]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			break
		}
		end++
	}
	return string(rest[:end])
}
