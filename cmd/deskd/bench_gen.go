package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"mime"
	"mime/quotedprintable"
	"strings"
	"time"

	"golang.org/x/text/encoding/charmap"
)

// The bench's desk: one mailbox, one queue, two agents. Requesters live elsewhere.
const (
	benchDomain     = "bench.test"
	benchDesk       = "support@" + benchDomain
	benchPassword   = "bench"
	benchSeed       = 20260124
	largeAttachment = 25_000_000 // bytes of one large attachment, before base64
)

// benchRequester is one person mailing the desk.
type benchRequester struct {
	name, addr, charset string // charset: preferred body charset
}

// benchRequesters are a dozen frequent requesters (half the mail) and benchColleagues more
// people who write now and then or are copied.
var benchRequesters = append([]benchRequester{
	{"Alice Martin", "alice.martin@example.org", "utf-8"},
	{"Bob Fischer", "bob.fischer@example.org", "utf-8"},
	{"Carol Nguyen", "carol.nguyen@example.net", "utf-8"},
	{"Jürgen Groß", "juergen.gross@example.de", "iso-8859-1"},
	{"José Núñez", "jose.nunez@example.es", "iso-8859-1"},
	{"Zoë Lefèvre", "zoe.lefevre@example.fr", "iso-8859-1"},
	{"田中 太郎", "taro.tanaka@example.jp", "utf-8"},
	{"Dmitri Ivanov", "dmitri.ivanov@example.com", "utf-8"},
	{"Priya Raman", "priya.raman@example.com", "utf-8"},
	{"Sam O'Brien", "sam.obrien@example.ie", "utf-8"},
	{"Ana Sousa", "ana.sousa@example.pt", "utf-8"},
	{"Mette Hansen", "mette.hansen@example.dk", "iso-8859-1"},
}, benchColleagues(188)...)

// frequentRequesters is how many of benchRequesters write half of the mail.
const frequentRequesters = 12

func benchColleagues(n int) []benchRequester {
	first := []string{"Lena", "Tom", "Mia", "Jonas", "Sara", "Ali", "Emma", "Noah", "Lea", "Finn", "Nora", "Omar", "Ida", "Paul"}
	last := []string{"Berger", "Kowalski", "Rossi", "Smith", "Dubois", "Jansen", "Novak", "Silva", "Khan", "Weber", "Moreau", "Lund", "Costa"}
	out := make([]benchRequester, n)
	for i := range out {
		f, l := first[i%len(first)], last[(i/len(first))%len(last)]
		out[i] = benchRequester{name: f + " " + l, charset: "utf-8",
			addr: fmt.Sprintf("%s.%s%d@corp%d.example", strings.ToLower(f), strings.ToLower(l), i, i%7)}
	}
	return out
}

var benchSubjects = []string{
	"VPN drops every few minutes", "Laptop will not boot after update", "Need access to the finance share",
	"Printer on 3rd floor jams", "Outlook keeps asking for my password", "New starter on Monday needs an account",
	"Wi-Fi in meeting room B is slow", "Cannot install the VPN client on macOS", "Phone extension not working",
	"Request: second monitor", "Teams calls drop audio", "Password reset for the HR portal",
	"Drucker im 2. Stock druckt nicht – dringend", "Problème de connexion au VPN depuis ce matin",
	"Contraseña caducada, no puedo entrar", "Bildschirm flackert nach Windows-Update", "Ønsker adgang til økonomi-mappen",
	"パスワードのリセットをお願いします", "Не работает почта на телефоне", "Café-Automat zeigt Fehler 42 (ja, wirklich)",
}

var benchWords = strings.Fields(`the a my our since this morning again after update error message screen shows cannot
connect server network printer laptop password account access folder share please help urgent colleague office meeting
room issue problem restart tried already works sometimes never yesterday today client version install license request
approve manager team project deadline report file open save slow fast disk memory battery charger cable dock monitor
keyboard mouse headset camera audio video call drops reconnect login expired locked reset token phone mobile app sync
calendar invite mailbox quota full archive backup restore deleted recover thanks regards best`)

var benchAttachments = []struct{ name, ctype string }{
	{"screenshot.png", "image/png"}, {"error-log.txt", "text/plain; charset=utf-8"}, {"report.pdf", "application/pdf"},
	{"config.xml", "application/xml"}, {"photo.jpg", "image/jpeg"}, {"export.csv", "text/csv; charset=utf-8"},
}

// genMeta is what later messages need to know about an earlier one to reply to it.
type genMeta struct {
	id      string // Message-ID without brackets
	subject string // decoded
	from    int    // index into benchRequesters
	refs    []string
}

// benchGenerator makes the bench's messages deterministically from a seed: message i is the same
// bytes in every run with the same flags. Only the few fields replies need are kept per message,
// so memory stays small whatever the count.
type benchGenerator struct {
	rng   *rand.Rand
	large map[int]bool // indexes of messages carrying a large attachment
	sent  []genMeta
	base  time.Time
	stats genStats
}

// genStats counts the shapes generated, for the report.
type genStats struct {
	Plain       int   `json:"plain"`
	Alternative int   `json:"alternative_html"`
	Attachments int   `json:"with_attachments"`
	Replies     int   `json:"replies"`
	Latin1      int   `json:"iso_8859_1"`
	Large       int   `json:"large_attachments"`
	Bytes       int64 `json:"bytes"`
}

func newBenchGenerator(n, large int) *benchGenerator {
	g := &benchGenerator{rng: rand.New(rand.NewPCG(benchSeed, uint64(n))), large: map[int]bool{},
		base: time.Date(2026, 1, 12, 8, 0, 0, 0, time.UTC)}
	for k := range min(large, n) {
		g.large[(k+1)*n/(min(large, n)+1)] = true
	}
	return g
}

// next returns message i of the bulk load (i counts from 0 and must increase by one per call).
func (g *benchGenerator) next(i int) []byte {
	r := g.rng
	var m genMeta
	reply := len(g.sent) > 0 && r.IntN(100) < 20
	if reply {
		orig := g.sent[r.IntN(len(g.sent))]
		m.from, m.subject = orig.from, orig.subject
		if !strings.HasPrefix(m.subject, "Re: ") {
			m.subject = "Re: " + m.subject
		}
		m.refs = append(append(m.refs, orig.refs...), orig.id)
		if len(m.refs) > 10 {
			m.refs = m.refs[len(m.refs)-10:]
		}
		g.stats.Replies++
	} else {
		m.from = r.IntN(frequentRequesters)
		if r.IntN(2) == 0 {
			m.from = frequentRequesters + r.IntN(len(benchRequesters)-frequentRequesters)
		}
		m.subject = benchSubjects[r.IntN(len(benchSubjects))]
		if r.IntN(3) == 0 {
			m.subject += fmt.Sprintf(" (#%d)", i)
		}
	}
	m.id = fmt.Sprintf("bench.%d.%08x@%s", i, r.Uint32(), domainOf(benchRequesters[m.from].addr))
	raw := g.render(m, g.base.Add(time.Duration(i)*time.Minute), g.large[i])
	g.sent = append(g.sent, genMeta{id: m.id, subject: m.subject, from: m.from, refs: m.refs})
	g.stats.Bytes += int64(len(raw))
	return raw
}

// sample returns the i-th message of the IDLE phase: a new request, so that it gets an
// acknowledgement, with its Message-ID and requester.
func (g *benchGenerator) sample(i int) (raw []byte, id, requester string) {
	m := genMeta{from: i % len(benchRequesters), subject: fmt.Sprintf("Latency probe %d: screen stays black", i)}
	m.id = fmt.Sprintf("bench-idle.%d.%08x@%s", i, g.rng.Uint32(), domainOf(benchRequesters[m.from].addr))
	return g.render(m, time.Now(), false), m.id, benchRequesters[m.from].addr
}

func domainOf(addr string) string { return addr[strings.LastIndexByte(addr, '@')+1:] }

// render writes one message with CRLF line endings (RFC 5322 §2.1).
func (g *benchGenerator) render(m genMeta, date time.Time, large bool) []byte {
	r := g.rng
	who := benchRequesters[m.from]
	charset := "utf-8"
	if who.charset == "iso-8859-1" && r.IntN(2) == 0 {
		charset = "iso-8859-1"
		g.stats.Latin1++
	}
	var b bytes.Buffer
	if large {
		b.Grow((largeAttachment+56)/57*78 + 64<<10) // base64: 57 bytes a 78-byte line
	}
	h := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	h("Return-Path", "<"+who.addr+">")
	h("From", encodeWord(who.name, charset)+" <"+who.addr+">")
	h("To", "IT Support <"+benchDesk+">")
	if r.IntN(8) == 0 {
		other := benchRequesters[(m.from+1+r.IntN(len(benchRequesters)-1))%len(benchRequesters)]
		h("Cc", encodeWord(other.name, "utf-8")+" <"+other.addr+">")
	}
	h("Subject", encodeWord(m.subject, charset))
	h("Date", date.Format(time.RFC1123Z))
	h("Message-ID", "<"+m.id+">")
	if len(m.refs) > 0 {
		h("In-Reply-To", "<"+m.refs[len(m.refs)-1]+">")
		h("References", "<"+strings.Join(m.refs, ">\r\n <")+">")
	}
	h("MIME-Version", "1.0")
	h("User-Agent", []string{"Mozilla Thunderbird 128.5", "Microsoft Outlook 16.0", "Apple Mail (2.3826)", "K-9 Mail 6.8"}[r.IntN(4)])
	text := g.body(m, who)
	nAttach := 0
	switch {
	case large:
		nAttach = 1
	case r.IntN(100) < 15:
		nAttach = 1 + r.IntN(3)
	}
	html := r.IntN(100) < 45
	if nAttach == 0 && !html {
		g.stats.Plain++
		writeTextPart(&b, text, charset)
		return b.Bytes()
	}
	outer := fmt.Sprintf("=_bench_%08x", r.Uint32())
	if nAttach > 0 {
		g.stats.Attachments++
		h("Content-Type", `multipart/mixed; boundary="`+outer+`"`)
		b.WriteString("\r\nThis is a multi-part message in MIME format.\r\n--" + outer + "\r\n")
	}
	if html {
		g.stats.Alternative++
		alt := fmt.Sprintf("=_alt_%08x", r.Uint32())
		b.WriteString(`Content-Type: multipart/alternative; boundary="` + alt + "\"\r\n\r\n--" + alt + "\r\n")
		writeTextPart(&b, text, charset)
		b.WriteString("\r\n--" + alt + "\r\n")
		writeHTMLPart(&b, text, charset)
		b.WriteString("\r\n--" + alt + "--\r\n")
	} else {
		writeTextPart(&b, text, charset)
	}
	if nAttach == 0 {
		return b.Bytes()
	}
	for k := range nAttach {
		a := benchAttachments[r.IntN(len(benchAttachments))]
		size := 2<<10 + r.IntN(60<<10)
		name := fmt.Sprintf("%d-%s", k+1, a.name)
		if large {
			size, name, a.ctype = largeAttachment, "disk-image.bin", "application/octet-stream"
			g.stats.Large++
		}
		b.WriteString("\r\n--" + outer + "\r\n")
		b.WriteString("Content-Type: " + a.ctype + "; name=\"" + name + "\"\r\n")
		b.WriteString("Content-Disposition: attachment; filename=\"" + name + "\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
		writeBase64Random(&b, r, size)
	}
	b.WriteString("\r\n--" + outer + "--\r\n")
	return b.Bytes()
}

// body is the plain text of a message: a few sentences, a signature and, for replies, a quote.
func (g *benchGenerator) body(m genMeta, who benchRequester) string {
	r := g.rng
	var b strings.Builder
	b.WriteString("Hello,\n\n")
	paragraphs := 1 + r.IntN(3)
	if r.IntN(20) == 0 {
		paragraphs = 20 + r.IntN(40) // the occasional long story
	}
	for range paragraphs {
		for range 2 + r.IntN(5) {
			n := 6 + r.IntN(14)
			for w := range n {
				word := benchWords[r.IntN(len(benchWords))]
				if w == 0 {
					word = strings.ToUpper(word[:1]) + word[1:]
				}
				b.WriteString(word)
				if w < n-1 {
					b.WriteByte(' ')
				}
			}
			b.WriteString(". ")
		}
		b.WriteString("\n\n")
	}
	b.WriteString("Regards,\n" + who.name + "\n")
	if len(m.refs) > 0 {
		b.WriteString("\nOn Mon, 12 Jan 2026 at 09:14, IT Support <" + benchDesk + "> wrote:\n")
		for range 3 + r.IntN(10) {
			b.WriteString("> " + benchWords[r.IntN(len(benchWords))] + " " + benchWords[r.IntN(len(benchWords))] + " and so on\n")
		}
	}
	return b.String()
}

// encodeWord returns s as is when it is ASCII, else as an RFC 2047 encoded-word in charset.
func encodeWord(s, charset string) string {
	ascii := true
	for i := range len(s) {
		if s[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return s
	}
	if charset == "iso-8859-1" {
		if l1, err := charmap.ISO8859_1.NewEncoder().String(s); err == nil {
			return mime.QEncoding.Encode(charset, l1)
		}
	}
	return mime.BEncoding.Encode("utf-8", s)
}

// writeTextPart writes a text/plain part: quoted-printable in charset (falling back to UTF-8 when
// the text does not fit Latin-1).
func writeTextPart(b *bytes.Buffer, text, charset string) {
	writeQPPart(b, "text/plain", text, charset)
}

func writeHTMLPart(b *bytes.Buffer, text, charset string) {
	var h strings.Builder
	h.WriteString("<!DOCTYPE html><html><head><meta charset=\"" + charset + "\"></head><body style=\"font-family:Calibri,sans-serif\">")
	for _, p := range strings.Split(strings.TrimSpace(text), "\n\n") {
		h.WriteString("<p>" + strings.ReplaceAll(mimeEscape(p), "\n", "<br>\n") + "</p>\n")
	}
	h.WriteString("</body></html>\n")
	writeQPPart(b, "text/html", h.String(), charset)
}

func mimeEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

func writeQPPart(b *bytes.Buffer, ctype, text, charset string) {
	body := []byte(strings.ReplaceAll(text, "\n", "\r\n"))
	if charset == "iso-8859-1" {
		l1, err := charmap.ISO8859_1.NewEncoder().Bytes(body)
		if err != nil {
			charset = "utf-8"
		} else {
			body = l1
		}
	}
	b.WriteString("Content-Type: " + ctype + "; charset=" + charset + "\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	w := quotedprintable.NewWriter(b)
	w.Write(body) //nolint:errcheck // bytes.Buffer does not fail
	w.Close()     //nolint:errcheck // bytes.Buffer does not fail
}

// writeBase64Random writes size pseudo-random bytes base64-encoded in 76-character lines
// (RFC 2045 §6.8).
func writeBase64Random(b *bytes.Buffer, r *rand.Rand, size int) {
	var raw [57 * 64]byte
	line := make([]byte, base64.StdEncoding.EncodedLen(57))
	for size > 0 {
		n := min(size, len(raw))
		for i := 0; i < n; i += 8 {
			v := r.Uint64()
			for j := 0; j < 8 && i+j < n; j++ {
				raw[i+j] = byte(v >> (8 * j))
			}
		}
		for off := 0; off < n; off += 57 {
			chunk := raw[off:min(off+57, n)]
			enc := line[:base64.StdEncoding.EncodedLen(len(chunk))]
			base64.StdEncoding.Encode(enc, chunk)
			b.Write(enc)
			b.WriteString("\r\n")
		}
		size -= n
	}
}
