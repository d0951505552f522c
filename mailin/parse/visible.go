package parse

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// VisibleText returns the new part of a reply: text without quoted history, reply headers and
// signature. It recognises
//   - "On <date>, <name> wrote:" headers in many languages (also wrapped over up to three lines) and
//     "<date>, <name> <addr>:" headers (Gmail, Apple Mail, Thunderbird, mobile clients);
//   - Outlook "From: … Sent: … To: … Subject:" blocks in many languages, "-----Original Message-----"
//     and forwarded-message separators and their translations, and underscore separator lines;
//   - "> " quoting: quoted lines are dropped; unquoted text after a quote block (inline or
//     bottom-posted replies) is kept;
//   - the "-- " signature delimiter (RFC 3676 §4.3), "Sent from my iPhone"-style mobile signatures,
//     a trailing "-Name" line and a short trailing "Regards,"-style sign-off block.
//
// If stripping would leave nothing (a top-quoted forward, say), the whole text is returned trimmed.
// It runs in time linear in the length of text.
func VisibleText(text string) string {
	text = normalizeNewlines(text)
	lines := strings.Split(text, "\n")
	kept := make([]string, 0, len(lines))
	skipped := false // a quote was just dropped: do not let its surrounding blank lines pile up
	for i := 0; i < len(lines); {
		line := lines[i]
		if isQuoted(line) {
			skipped = true
			i++
			continue
		}
		if isSignatureStart(line) {
			break
		}
		if k := replyHeaderLen(lines, i); k > 0 {
			end, quoted := skipQuoteBlock(lines, i+k)
			if quoted && substantiveAt(lines, end) {
				i = end // inline or bottom-posted reply: keep the text after the quote
				skipped = true
				continue
			}
			break
		}
		if isBlank(line) {
			if skipped && len(kept) > 0 && isBlank(kept[len(kept)-1]) {
				i++
				continue
			}
		} else {
			skipped = false
		}
		kept = append(kept, line)
		i++
	}
	kept = trimSignOff(kept)
	out := strings.TrimSpace(strings.Join(kept, "\n"))
	if out == "" {
		return strings.TrimSpace(text)
	}
	return out
}

func isQuoted(line string) bool {
	return strings.HasPrefix(strings.TrimLeft(line, " \t"), ">")
}

func isBlank(line string) bool { return strings.TrimSpace(line) == "" }

// skipQuoteBlock skips blank lines and a block of quoted lines starting at i, including unquoted
// lines wrapped by a careless mailer between two quoted lines. It returns the index after the block
// and whether any quoted line was seen.
func skipQuoteBlock(lines []string, i int) (int, bool) {
	quoted := false
	n := len(lines)
	for i < n {
		switch {
		case isQuoted(lines[i]):
			quoted = true
			i++
		case isBlank(lines[i]):
			j := i
			for j < n && isBlank(lines[j]) {
				j++
			}
			if j < n && isQuoted(lines[j]) {
				i = j
				continue
			}
			return i, quoted
		case quoted && i > 0 && isQuoted(lines[i-1]):
			// a lazy continuation: unquoted lines directly followed by a quoted line
			j := i
			for j < n && !isQuoted(lines[j]) && !isBlank(lines[j]) && j-i < 3 {
				j++
			}
			if j < n && isQuoted(lines[j]) {
				i = j
				continue
			}
			return i, quoted
		default:
			return i, quoted
		}
	}
	return i, quoted
}

// substantiveAt reports whether the first non-blank line at or after i is new text rather than a
// signature or another reply header.
func substantiveAt(lines []string, i int) bool {
	for i < len(lines) && isBlank(lines[i]) {
		i++
	}
	return i < len(lines) && !isSignatureStart(lines[i]) && replyHeaderLen(lines, i) == 0 && !isQuoted(lines[i])
}

// isSignatureStart reports a line after which everything is signature or footer.
func isSignatureStart(line string) bool {
	t := strings.TrimRight(line, " \t")
	if t == "--" {
		return true // RFC 3676 §4.3 "-- ", and the common variant without the space
	}
	s := strings.TrimSpace(line)
	if len(s) >= 3 && strings.Trim(s, "_") == "" {
		return true // mailing-list footer or Outlook separator
	}
	if isReplyMarker(s) {
		return true // the "reply above this line" marker of our own mail: what follows is quoted
	}
	return isMobileSignature(s)
}

var mobilePrefixes = []string{
	"sent from my ", "sent from ", "sent with ", "sent via ", "sent using ", "get outlook for ",
	"envoyé de mon ", "envoyé depuis mon ", "envoyé à partir de ", "envoyé avec ", "von meinem ",
	"gesendet von meinem ", "gesendet von ", "gesendet mit ", "enviado desde mi ", "enviado desde ",
	"enviado do meu ", "enviado de meu ", "enviado do ", "inviato da ", "inviato dal mio ", "verzonden met ",
	"verzonden vanaf mijn ", "verstuurd vanaf mijn ", "verstuurd met ", "skickat från min ", "skickat från ",
	"sendt fra min ", "sendt fra ", "wysłane z mojego ", "wysłano z ", "отправлено с ", "отправлено из ",
	"发自我的", "从我的", "來自我的", "傳送自我的",
}

// isMobileSignature matches "Sent from my iPhone" and its relatives: a known prefix followed by a
// few words (a device or app name, optionally a <link>), without sentence punctuation.
func isMobileSignature(s string) bool {
	if len(s) > 120 || s == "" {
		return false
	}
	lower := strings.ToLower(s)
	if strings.HasSuffix(lower, "から送信") {
		return true
	}
	for _, p := range mobilePrefixes {
		if !strings.HasPrefix(lower, p) {
			continue
		}
		rest := lower[len(p):]
		if i := strings.IndexAny(rest, "<("); i >= 0 {
			rest = rest[:i]
		}
		rest = strings.TrimRight(rest, " .!")
		if strings.ContainsAny(rest, ",;:?") {
			return false
		}
		words := strings.Fields(rest)
		return len(words) <= 6
	}
	return false
}

// replyHeaderLen returns how many lines starting at i form a reply or forward header, or 0.
func replyHeaderLen(lines []string, i int) int {
	s := strings.TrimSpace(lines[i])
	if s == "" {
		return 0
	}
	if isSeparatorLine(s) {
		return 1
	}
	if k := outlookBlockLen(lines, i); k > 0 {
		return k
	}
	for k := 1; k <= 3 && i+k <= len(lines); k++ {
		last := strings.TrimSpace(lines[i+k-1])
		if k > 1 && last == "" {
			break
		}
		if !(strings.HasSuffix(last, ":") || strings.HasSuffix(last, "：")) {
			continue
		}
		joined := s
		if k > 1 {
			joined = strings.Join(trimAll(lines[i:i+k]), " ")
		}
		if len(joined) > 400 {
			break
		}
		if isAttributionLine(joined, k > 1) {
			return k
		}
	}
	return 0
}

func trimAll(ls []string) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = strings.TrimSpace(l)
	}
	return out
}

var separatorPhrases = map[string]bool{
	"original message": true, "ursprüngliche nachricht": true, "originalnachricht": true,
	"message d'origine": true, "message original": true, "mensaje original": true, "messaggio originale": true,
	"oorspronkelijk bericht": true, "origineel bericht": true, "originalmeddelande": true,
	"ursprungligt meddelande": true, "mensagem original": true, "oryginalna wiadomość": true,
	"wiadomość oryginalna": true, "исходное сообщение": true, "пересылаемое сообщение": true,
	"forwarded message": true, "weitergeleitete nachricht": true, "message transféré": true,
	"mensaje reenviado": true, "messaggio inoltrato": true, "doorgestuurd bericht": true,
	"vidarebefordrat meddelande": true, "mensagem encaminhada": true, "原始邮件": true, "原始郵件": true,
	"元のメッセージ": true, "転送メッセージ": true, "원본 메시지": true, "alkuperäinen viesti": true,
	"original meddelelse": true, "opprinnelig melding": true, "původní zpráva": true, "eredeti üzenet": true,
}

// isSeparatorLine matches "-----Original Message-----", "---------- Forwarded message ---------",
// their translations, "Begin forwarded message:" and "---- On … wrote ----".
func isSeparatorLine(s string) bool {
	if len(s) > 120 {
		return false
	}
	if !strings.HasPrefix(s, "--") && !strings.HasPrefix(s, "__") {
		switch strings.ToLower(s) {
		case "begin forwarded message:", "anfang der weitergeleiteten nachricht:",
			"début du message réexpédié :", "début du message réexpédié:":
			return true
		}
		return false
	}
	lower := strings.ToLower(s)
	core := strings.TrimSpace(strings.Trim(lower, "-_ "))
	if separatorPhrases[core] {
		return true
	}
	return strings.HasSuffix(core, " wrote") && strings.HasPrefix(core, "on ") && strings.HasSuffix(lower, "--")
}

// fieldKind classifies Outlook reply-block labels.
type fieldKind uint8

const (
	fieldNone fieldKind = iota
	fieldFrom
	fieldOther
)

var outlookLabels = map[string]fieldKind{
	"from": fieldFrom, "von": fieldFrom, "de": fieldFrom, "da": fieldFrom, "van": fieldFrom,
	"från": fieldFrom, "fra": fieldFrom, "od": fieldFrom, "от": fieldFrom, "发件人": fieldFrom,
	"寄件者": fieldFrom, "差出人": fieldFrom, "lähettäjä": fieldFrom, "feladó": fieldFrom, "kimden": fieldFrom,
	"από": fieldFrom, "보낸 사람": fieldFrom, "afzender": fieldFrom, "absender": fieldFrom, "remitente": fieldFrom,
	"sent": fieldOther, "date": fieldOther, "to": fieldOther, "subject": fieldOther, "cc": fieldOther,
	"gesendet": fieldOther, "an": fieldOther, "betreff": fieldOther, "datum": fieldOther,
	"envoyé": fieldOther, "envoyé le": fieldOther, "à": fieldOther, "objet": fieldOther, "date d'envoi": fieldOther,
	"enviado": fieldOther, "enviado el": fieldOther, "para": fieldOther, "asunto": fieldOther, "fecha": fieldOther,
	"assunto": fieldOther, "data": fieldOther, "inviato": fieldOther, "a": fieldOther, "oggetto": fieldOther,
	"verzonden": fieldOther, "aan": fieldOther, "onderwerp": fieldOther, "skickat": fieldOther,
	"till": fieldOther, "ämne": fieldOther, "sendt": fieldOther, "til": fieldOther, "emne": fieldOther,
	"wysłano": fieldOther, "do": fieldOther, "temat": fieldOther, "data wysłania": fieldOther,
	"отправлено": fieldOther, "кому": fieldOther, "тема": fieldOther, "дата": fieldOther, "копия": fieldOther,
	"发送时间": fieldOther, "收件人": fieldOther, "主题": fieldOther, "日期": fieldOther, "抄送": fieldOther,
	"寄件日期": fieldOther, "收件者": fieldOther, "主旨": fieldOther, "送信日時": fieldOther, "宛先": fieldOther,
	"件名": fieldOther, "日付": fieldOther, "lähetetty": fieldOther, "vastaanottaja": fieldOther,
	"aihe": fieldOther, "elküldve": fieldOther, "címzett": fieldOther, "tárgy": fieldOther,
	"gönderildi": fieldOther, "kime": fieldOther, "konu": fieldOther, "보낸 날짜": fieldOther,
	"받는 사람": fieldOther, "제목": fieldOther, "reply-to": fieldOther, "antwort an": fieldOther,
	// Czech, Slovak, Ukrainian, Croatian/Serbian/Bosnian, Slovenian, Romanian, Bulgarian, Lithuanian
	"odesílatel": fieldFrom, "odosielateľ": fieldFrom, "від": fieldFrom, "šalje": fieldFrom, "pošiljatelj": fieldFrom,
	"pošiljalec": fieldFrom, "de la": fieldFrom, "expeditor": fieldFrom, "nuo": fieldFrom, "siuntėjas": fieldFrom,
	"odesláno": fieldOther, "komu": fieldOther, "předmět": fieldOther, "kopie": fieldOther, "datum odeslání": fieldOther,
	"odoslané": fieldOther, "predmet": fieldOther, "kópia": fieldOther, "надіслано": fieldOther,
	"копія": fieldOther, "poslano": fieldOther, "prima": fieldOther, "za": fieldOther, "kopija": fieldOther,
	"zadeva": fieldOther, "trimis": fieldOther, "către": fieldOther, "subiect": fieldOther,
	"изпратено": fieldOther, "до": fieldOther, "относно": fieldOther, "išsiųsta": fieldOther, "kam": fieldOther,
}

// outlookLabel returns the kind of a "Label: value" line (Outlook bolds labels as "*From:*").
func outlookLabel(line string) fieldKind {
	s := strings.TrimLeft(line, " \t*>")
	if len(s) > 48 {
		s = s[:48]
	}
	if len(s) > 0 && s[0] >= 0x80 || len(s) > 0 && unicode.IsLetter(rune(s[0])) {
		end := strings.IndexAny(s, ":：")
		if end <= 0 || end > 40 {
			return fieldNone
		}
		label := strings.ToLower(strings.Trim(s[:end], " *\u00a0\t"))
		return outlookLabels[label]
	}
	return fieldNone
}

// outlookBlockLen detects a header block of an Outlook-style reply: at least two label lines within
// the next few lines, one of them a From-like label, starting at i.
func outlookBlockLen(lines []string, i int) int {
	first := outlookLabel(lines[i])
	if first == fieldNone {
		return 0
	}
	from := first == fieldFrom
	labels := 1
	end := i + 1
	for j := i + 1; j < len(lines) && j < i+8; j++ {
		k := outlookLabel(lines[j])
		if k == fieldNone {
			if isBlank(lines[j]) {
				break
			}
			continue // a wrapped value
		}
		labels++
		end = j + 1
		if k == fieldFrom {
			from = true
		}
	}
	if from && labels >= 2 {
		return end - i
	}
	return 0
}

var attributionEndings = []string{
	"wrote:", "writes:", "schrieb:", "a écrit :", "a écrit:", "escribió:", "schreef:", "ha scritto:",
	"escreveu:", "skrev:", "skrev följande:", "napisał:", "napisała:", "napisał(a):", "написал:",
	"написала:", "написал(а):", "写道：", "写道:", "寫道：", "寫道:", "kirjoitti:", "írta:", "yazdı:",
	"napsal:", "napsala:", "έγραψε:", "書きました:", "書きました：", "wrote：", "het volgende geschreven:",
}

var attributionLeads = []string{
	"on ", "am ", "le ", "el ", "op ", "il ", "em ", "den ", "på ", "w dniu ", "dnia ", "в ",
	"在 ", "在", "於 ", "at ", "i ", "o ", "el día ", "el dia ", "citando ", "quoting ", "zitat von ",
}

// isAttributionLine matches a reply attribution such as "On Tue, 1 Mar 2011, Bob <b@x> wrote:" or
// "30.09.2017, 18.30, "Bob" <b@x>:". multi is true when the candidate spans several lines; then it
// must start like an attribution so that the end of a body paragraph is not swallowed.
func isAttributionLine(s string, multi bool) bool {
	lower := strings.ToLower(s)
	lead := false
	for _, l := range attributionLeads {
		if strings.HasPrefix(lower, l) {
			lead = true
			break
		}
	}
	r, _ := utf8.DecodeRuneInString(s)
	startsDate := unicode.IsDigit(r) || weekdayStart(s)
	// Real attributions carry a date (digits) or an address.
	dated := hasDigit(s) || strings.Contains(s, "@")
	for _, e := range attributionEndings {
		if strings.HasSuffix(lower, e) {
			if multi {
				return (lead || unicode.IsDigit(r)) && dated
			}
			return dated
		}
	}
	// "<date>, <name> <address>:" (Gmail in several locales, Yandex, Mail.ru, Russian clients): the
	// address in angle brackets ends the line.
	return (lead || startsDate) && hasDigit(s) && endsWithAddress(s)
}

// endsWithAddress reports whether s ends with "<addr@host>:" or "addr@host:".
func endsWithAddress(s string) bool {
	s = strings.TrimRight(strings.TrimSpace(s), ":：")
	s = strings.TrimSpace(strings.TrimSuffix(s, ")"))
	if strings.HasSuffix(s, ">") {
		lt := strings.LastIndexByte(s, '<')
		return lt >= 0 && strings.Contains(s[lt:], "@")
	}
	fields := strings.Fields(s)
	return len(fields) > 0 && strings.Contains(fields[len(fields)-1], "@")
}

// weekdayStart reports whether s starts with a short word, a comma and a number, like
// "Wednesday, 17", "Вт, 30" or "Mo., 3" (a weekday and a day in any language).
func weekdayStart(s string) bool {
	i := strings.IndexByte(s, ',')
	if i <= 0 || i > 12 {
		return false
	}
	for _, r := range s[:i] {
		if !unicode.IsLetter(r) && r != '.' {
			return false
		}
	}
	r, _ := utf8.DecodeRuneInString(strings.TrimLeft(s[i+1:], " "))
	return unicode.IsDigit(r)
}

func hasDigit(s string) bool {
	return strings.ContainsAny(s, "0123456789")
}

var signOffs = map[string]bool{
	"regards": true, "best regards": true, "kind regards": true, "warm regards": true, "with regards": true,
	"best wishes": true, "sincerely": true, "yours sincerely": true, "yours truly": true, "rgds": true,
	"cordialement": true, "bien cordialement": true, "bien à vous": true, "mit freundlichen grüßen": true,
	"mit freundlichen grüssen": true, "mit freundlichen gruessen": true, "freundliche grüße": true,
	"viele grüße": true, "beste grüße": true, "liebe grüße": true, "saludos": true, "saludos cordiales": true,
	"un saludo": true, "atentamente": true, "cordiali saluti": true, "distinti saluti": true,
	"met vriendelijke groet": true, "met vriendelijke groeten": true, "vriendelijke groet": true,
	"med vänliga hälsningar": true, "vänliga hälsningar": true, "pozdrawiam": true, "z poważaniem": true,
	"с уважением": true, "atenciosamente": true, "cumprimentos": true,
	"s pozdravem": true, "s pozdravom": true, "srdečně": true, "з повагою": true, "srdačan pozdrav": true,
	"lp": true, "lep pozdrav": true, "cu stimă": true, "cu respect": true, "с поздрав": true, "pagarbiai": true,
	"üdvözlettel": true, "saygılarımla": true, "ystävällisin terveisin": true, "med venlig hilsen": true,
	"med vennlig hilsen": true, "venlig hilsen": true, "vennlig hilsen": true,
}

// trimSignOff drops trailing blank lines, a trailing "-Name" line and a short closing block that
// starts with a sign-off such as "Regards," (at most six short lines after it).
func trimSignOff(kept []string) []string {
	trimBlank := func() {
		for len(kept) > 0 && isBlank(kept[len(kept)-1]) {
			kept = kept[:len(kept)-1]
		}
	}
	trimBlank()
	for len(kept) > 1 && isRuleLine(kept[len(kept)-1]) {
		kept = kept[:len(kept)-1] // the separator above a reply header
		trimBlank()
	}
	if n := len(kept); n > 1 {
		last := strings.TrimSpace(kept[n-1])
		if len(last) > 1 && len(last) < 40 && last[0] == '-' && unicode.IsLetter(rune(last[1])) && len(strings.Fields(last)) <= 4 {
			kept = kept[:n-1]
			trimBlank()
		}
	}
	after := 0
	for j := len(kept) - 1; j > 0 && after <= 6; j-- {
		s := strings.TrimSpace(kept[j])
		if s == "" {
			continue
		}
		if signOffs[strings.ToLower(strings.TrimRight(s, ",.!"))] {
			kept = kept[:j]
			trimBlank()
			break
		}
		if len(s) > 60 {
			break
		}
		after++
	}
	return kept
}

// isRuleLine reports a line drawn only with -, _, = or * (at least three).
func isRuleLine(line string) bool {
	s := strings.TrimSpace(line)
	return len(s) >= 3 && strings.Trim(s, "-_=*") == ""
}

// replyMarkers are the "reply above this line" lines that deskd's templates put at the top of mail
// that expects an answer (templates.ReplyMarkers); a reply is cut there even when the client's own
// reply header was not recognised. They are matched lower-cased, with any quoting, anywhere in a line.
var replyMarkers = []string{
	"-- reply above this line --",
	"-- bitte oberhalb dieser zeile antworten --",
}

func isReplyMarker(s string) bool {
	if !strings.Contains(s, "--") {
		return false
	}
	l := strings.ToLower(strings.TrimLeft(s, "> "))
	for _, m := range replyMarkers {
		if strings.Contains(l, m) {
			return true
		}
	}
	return false
}
