package parse

import (
	"bytes"
	"io"
	"strings"
	"sync"
	"unicode/utf8"

	gmcharset "github.com/emersion/go-message/charset"
	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/ianaindex"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/korean"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/traditionalchinese"
)

// charsetKind says how a charset label is decoded.
type charsetKind uint8

const (
	kindUnknown  charsetKind = iota // label not recognised
	kindUTF8                        // utf-8, us-ascii and their aliases
	kindUTF7                        // RFC 2152 UTF-7 (decoded by decodeUTF7)
	kindEncoding                    // a golang.org/x/text encoding
	kindReader                      // only go-message's charset.Reader knows it
)

type charsetInfo struct {
	kind      charsetKind
	enc       encoding.Encoding
	multiByte bool // a CJK multi-byte encoding: a wrong label shows up as decoding errors
}

// charsetAliases maps labels seen in real mail that the WHATWG and IANA indexes do not know, or
// map to something worse, to a label they do know.
var charsetAliases = map[string]string{
	"x-sjis": "shift_jis", "sjis": "shift_jis", "shift-jis": "shift_jis", "x-shift_jis": "shift_jis",
	"ms_kanji": "shift_jis", "cp932": "shift_jis", "ms932": "shift_jis", "windows-31j": "shift_jis",
	"x-euc-jp": "euc-jp", "eucjp": "euc-jp", "ujis": "euc-jp",
	"ks_c_5601-1987": "euc-kr", "ks_c_5601": "euc-kr", "ksc5601": "euc-kr", "ksc_5601": "euc-kr",
	"cp949": "euc-kr", "ms949": "euc-kr", "x-windows-949": "euc-kr", "uhc": "euc-kr", "euckr": "euc-kr",
	"gb2312": "gb18030", "gbk": "gb18030", "cp936": "gb18030", "x-gbk": "gb18030", "euc-cn": "gb18030",
	"x-euc-cn": "gb18030", "chinese": "gb18030", "csgb2312": "gb18030", "gb_2312-80": "gb18030", "hz-gb-2312": "hz-gb-2312",
	"big5-hkscs": "big5", "x-big5": "big5", "cp950": "big5", "big-5": "big5", "cn-big5": "big5",
	"latin1": "windows-1252", "latin-1": "windows-1252", "iso-8859-1": "windows-1252", "iso8859-1": "windows-1252",
	"iso_8859-1": "windows-1252", "8859-1": "windows-1252", "l1": "windows-1252", "cp819": "windows-1252",
	"ansi_x3.110-1983": "windows-1252", "x-user-defined": "windows-1252",
	"iso-8859-8-i": "iso-8859-8", "x-mac-roman": "macintosh", "mac": "macintosh", "macroman": "macintosh",
	"koi8r": "koi8-r", "koi8u": "koi8-u", "tis-620": "windows-874", "iso-8859-11": "windows-874",
}

var utf8Labels = map[string]bool{
	"utf-8": true, "utf8": true, "us-ascii": true, "ascii": true, "ansi_x3.4-1968": true, "iso646-us": true,
	"646": true, "us": true, "x-utf_8j": true, "unicode-1-1-utf-8": true, "utf-8-bom": true, "cp65001": true,
}

var utf7Labels = map[string]bool{
	"utf-7": true, "utf7": true, "unicode-1-1-utf-7": true, "x-utf-7": true, "csunicode11utf7": true, "cp65000": true,
}

var charsetCache sync.Map // normalised label -> charsetInfo

// normalizeCharset lower-cases a charset label and strips quotes, blanks and an RFC 2231 language suffix.
func normalizeCharset(label string) string {
	label = strings.TrimSpace(label)
	label = strings.Trim(label, "\"' \t")
	if i := strings.IndexByte(label, '*'); i >= 0 { // RFC 2231 §5: charset*language
		label = label[:i]
	}
	return strings.ToLower(label)
}

// lookupCharset resolves a normalised label. The result is cached: labels repeat across messages.
func lookupCharset(label string) charsetInfo {
	if v, ok := charsetCache.Load(label); ok {
		return v.(charsetInfo)
	}
	info := resolveCharset(label)
	if len(label) < 64 { // bounded: hostile labels must not grow the cache without limit
		charsetCache.Store(label, info)
	}
	return info
}

func resolveCharset(label string) charsetInfo {
	switch {
	case label == "":
		return charsetInfo{kind: kindUnknown}
	case utf8Labels[label]:
		return charsetInfo{kind: kindUTF8}
	case utf7Labels[label]:
		return charsetInfo{kind: kindUTF7}
	}
	if a, ok := charsetAliases[label]; ok {
		label = a
	}
	if strings.HasPrefix(label, "cp125") && len(label) == 6 {
		label = "windows-" + label[2:]
	}
	if strings.HasPrefix(label, "iso8859-") || strings.HasPrefix(label, "iso_8859-") || strings.HasPrefix(label, "iso8859_") {
		label = "iso-8859-" + label[strings.IndexAny(label, "-_")+1:]
	}
	var enc encoding.Encoding
	switch label {
	case "gb18030":
		enc = simplifiedchinese.GB18030
	case "macintosh":
		enc = charmap.Macintosh
	default:
		if e, err := htmlindex.Get(label); err == nil {
			enc = e
		} else if e, err := ianaindex.MIME.Encoding(label); err == nil && e != nil {
			enc = e
		} else if e, err := ianaindex.IANA.Encoding(label); err == nil && e != nil {
			enc = e
		} else if _, err := gmcharset.Reader(label, bytes.NewReader(nil)); err == nil {
			// go-message's quirks table (extended through charset.RegisterEncoding elsewhere).
			return charsetInfo{kind: kindReader}
		}
	}
	switch enc {
	case nil, encoding.Replacement:
		return charsetInfo{kind: kindUnknown}
	case simplifiedchinese.GBK:
		enc = simplifiedchinese.GB18030 // superset: mail labelled gb2312/gbk often uses GB18030 characters
	}
	info := charsetInfo{kind: kindEncoding, enc: enc}
	switch enc {
	case simplifiedchinese.GB18030, simplifiedchinese.HZGB2312, traditionalchinese.Big5, japanese.ShiftJIS,
		japanese.EUCJP, japanese.ISO2022JP, korean.EUCKR:
		info.multiByte = true
	}
	return info
}

// decodeCharset converts b, declared to be in charset label, to valid UTF-8. It returns the text, the
// charset actually used (the declared label, lower-case, unless the content contradicted it) and a
// warning ("" when the declaration held). A missing or wrong label falls back to detection: valid UTF-8,
// ISO-2022-JP escape sequences, Cyrillic and CJK byte statistics, then windows-1252.
func decodeCharset(b []byte, label string) (text, used, warn string) {
	norm := normalizeCharset(label)
	info := lookupCharset(norm)
	ascii := isASCII(b)
	switch info.kind {
	case kindUTF7:
		return decodeUTF7(b), norm, ""
	case kindUnknown:
		if ascii && !hasISO2022Escape(b) {
			if norm == "" {
				return string(b), "", ""
			}
			return string(b), "us-ascii", "unknown charset " + quote(norm) + ", content is ASCII"
		}
		t, u := detectCharset(b)
		if norm == "" {
			return t, u, ""
		}
		return t, u, "unknown charset " + quote(norm) + ", decoded as " + u
	case kindUTF8:
		if ascii {
			if hasISO2022Escape(b) {
				t, _, _ := decodeWith(japanese.ISO2022JP, b)
				return t, "iso-2022-jp", "declared charset " + quote(norm) + " but content has ISO-2022-JP escapes"
			}
			return string(b), norm, ""
		}
		if utf8.Valid(b) {
			if !strings.HasPrefix(norm, "utf") {
				return strings.TrimPrefix(string(b), "\ufeff"), "utf-8", "declared charset " + quote(norm) + " but content is UTF-8"
			}
			return strings.TrimPrefix(string(b), "\ufeff"), norm, ""
		}
		t, u := detectCharset(b)
		return t, u, "declared charset " + quote(norm) + " but content is not valid UTF-8, decoded as " + u
	}
	if info.kind == kindReader {
		if r, err := gmcharset.Reader(norm, bytes.NewReader(b)); err == nil {
			if out, err := io.ReadAll(r); err == nil && utf8.Valid(out) {
				return string(out), norm, ""
			}
		}
		t, u := detectCharset(b)
		return t, u, "charset " + quote(norm) + " did not decode, decoded as " + u
	}
	if ascii && info.enc != japanese.ISO2022JP && !isUTF16(info.enc) {
		return string(b), norm, ""
	}
	t, clean, _ := decodeWith(info.enc, b)
	if clean {
		if !info.multiByte && !ascii && looksUTF8(b) && !isUTF16(info.enc) {
			return string(b), "utf-8", "declared charset " + quote(norm) + " but content is UTF-8"
		}
		return t, norm, ""
	}
	if looksUTF8(b) {
		return string(b), "utf-8", "declared charset " + quote(norm) + " but content is UTF-8"
	}
	if dt, du := detectCharset(b); du != "windows-1252" || !info.multiByte || info.enc == japanese.ISO2022JP {
		if !strings.ContainsRune(dt, utf8.RuneError) {
			return dt, du, "declared charset " + quote(norm) + " does not fit the content, decoded as " + du
		}
	}
	return t, norm, "invalid bytes for charset " + quote(norm)
}

// decodeWith decodes b and reports whether it decoded without replacement characters.
func decodeWith(enc encoding.Encoding, b []byte) (string, bool, error) {
	out, err := enc.NewDecoder().Bytes(b)
	if err != nil {
		// The x/text decoders substitute U+FFFD rather than fail; an error here is a transformer
		// failure. Fall back to a lossless-enough rendering.
		return strings.ToValidUTF8(string(b), "\uFFFD"), false, err
	}
	clean := !bytes.ContainsRune(out, utf8.RuneError) || bytes.Contains(b, []byte("\xef\xbf\xbd"))
	if !utf8.Valid(out) {
		return strings.ToValidUTF8(string(out), "\uFFFD"), false, nil
	}
	return string(out), clean, nil
}

func isUTF16(enc encoding.Encoding) bool {
	n, _ := htmlindex.Name(enc)
	return n == "utf-16le" || n == "utf-16be"
}

func quote(s string) string { return "\"" + s + "\"" }

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// looksUTF8 reports whether b is valid UTF-8 containing at least one multi-byte sequence and no C1
// control characters: latin-1 text is practically never valid UTF-8, so such content was mislabelled.
func looksUTF8(b []byte) bool {
	if isASCII(b) || !utf8.Valid(b) {
		return false
	}
	for i := 0; i+1 < len(b); i++ {
		if b[i] == 0xc2 && b[i+1] >= 0x80 && b[i+1] <= 0x9f {
			return false // U+0080..U+009F: more likely two windows-125x characters
		}
	}
	return true
}

// hasISO2022Escape reports whether b contains an ISO-2022-JP designation escape (RFC 1468).
func hasISO2022Escape(b []byte) bool {
	for i := bytes.IndexByte(b, 0x1b); i >= 0 && i+2 < len(b); {
		if (b[i+1] == '$' && (b[i+2] == 'B' || b[i+2] == '@')) || (b[i+1] == '(' && (b[i+2] == 'J' || b[i+2] == 'I')) {
			return true
		}
		j := bytes.IndexByte(b[i+1:], 0x1b)
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return false
}

// detectCharset guesses the charset of undeclared or mislabelled content and decodes it.
func detectCharset(b []byte) (string, string) {
	if hasISO2022Escape(b) {
		if t, clean, _ := decodeWith(japanese.ISO2022JP, b); clean {
			return t, "iso-2022-jp"
		}
	}
	if utf8.Valid(b) {
		return strings.TrimPrefix(string(b), "\ufeff"), "utf-8"
	}
	var high, runs, cyrLower1251, cyrLowerKOI int
	for i, c := range b {
		if c < 0x80 {
			continue
		}
		high++
		if i == 0 || b[i-1] < 0x80 {
			runs++
		}
		if c >= 0xE0 {
			cyrLower1251++
		} else if c >= 0xC0 {
			cyrLowerKOI++
		}
	}
	// Latin text has runs of one or two high bytes (an accented letter); Cyrillic words and CJK
	// characters come in longer runs.
	if high >= 4 && high*2 >= runs*5 {
		if letters := cyrLower1251 + cyrLowerKOI; letters*10 >= high*9 {
			if cyrLower1251 >= cyrLowerKOI {
				t, _, _ := decodeWith(charmap.Windows1251, b)
				return t, "windows-1251"
			}
			t, _, _ := decodeWith(charmap.KOI8R, b)
			return t, "koi8-r"
		}
		if t, name, ok := detectCJK(b); ok {
			return t, name
		}
	}
	t, _, _ := decodeWith(charmap.Windows1252, b)
	return t, "windows-1252"
}

type cjkCandidate struct {
	name   string
	enc    encoding.Encoding
	common func(lead, trail byte) bool // a frequent character (kana, level-1 ideograph, hangul, punctuation)
}

var cjkCandidates = []cjkCandidate{
	{"big5", traditionalchinese.Big5, func(l, t byte) bool { return l >= 0xA1 && l <= 0xC6 }},
	{"gb18030", simplifiedchinese.GB18030, func(l, t byte) bool { return l >= 0xA1 && l <= 0xD7 && t >= 0xA1 }},
	{"shift_jis", japanese.ShiftJIS, func(l, t byte) bool { return (l >= 0x81 && l <= 0x83) || (l >= 0x88 && l <= 0x98) }},
	{"euc-kr", korean.EUCKR, func(l, t byte) bool { return l >= 0xA1 && l <= 0xC8 && t >= 0xA1 }},
	{"euc-jp", japanese.EUCJP, func(l, t byte) bool { return l >= 0xA1 && l <= 0xCF && t >= 0xA1 }},
}

// detectCJK picks the multi-byte encoding that decodes b without errors and whose two-byte characters
// fall most often into that encoding's frequent-character rows.
func detectCJK(b []byte) (string, string, bool) {
	best, bestScore, bestText := "", -1.0, ""
	for _, c := range cjkCandidates {
		t, clean, _ := decodeWith(c.enc, b)
		if !clean {
			continue
		}
		var pairs, common int
		for i := 0; i+1 < len(b); i++ {
			if b[i] < 0x80 {
				continue
			}
			pairs++
			if c.common(b[i], b[i+1]) {
				common++
			}
			i++
		}
		score := 0.0
		if pairs > 0 {
			score = float64(common) / float64(pairs)
		}
		if score > bestScore {
			best, bestScore, bestText = c.name, score, t
		}
	}
	return bestText, best, best != "" && bestScore >= 0.5
}

// decodeUTF7 decodes RFC 2152 UTF-7. Malformed shifts are kept literally.
func decodeUTF7(b []byte) string {
	var sb strings.Builder
	sb.Grow(len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != '+' {
			if c < 0x80 {
				sb.WriteByte(c)
			} else {
				sb.WriteRune(utf8.RuneError)
			}
			continue
		}
		j := i + 1
		for j < len(b) && b64val(b[j]) >= 0 {
			j++
		}
		if j == i+1 { // "+-" is a literal plus
			sb.WriteByte('+')
			if j < len(b) && b[j] == '-' {
				i = j
			}
			continue
		}
		var bits, nbits uint32
		var units []uint16
		for _, d := range b[i+1 : j] {
			bits = bits<<6 | uint32(b64val(d))
			nbits += 6
			if nbits >= 16 {
				nbits -= 16
				units = append(units, uint16(bits>>nbits))
				bits &= 1<<nbits - 1
			}
		}
		for k := 0; k < len(units); k++ {
			u := rune(units[k])
			if u >= 0xD800 && u < 0xDC00 && k+1 < len(units) && units[k+1] >= 0xDC00 && units[k+1] < 0xE000 {
				u = (u-0xD800)<<10 + (rune(units[k+1]) - 0xDC00) + 0x10000
				k++
			}
			if u >= 0xD800 && u < 0xE000 {
				u = utf8.RuneError
			}
			sb.WriteRune(u)
		}
		i = j - 1
		if j < len(b) && b[j] == '-' {
			i = j
		}
	}
	return sb.String()
}

func b64val(c byte) int {
	switch {
	case c >= 'A' && c <= 'Z':
		return int(c - 'A')
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 26
	case c >= '0' && c <= '9':
		return int(c-'0') + 52
	case c == '+':
		return 62
	case c == '/':
		return 63
	}
	return -1
}
