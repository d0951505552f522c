package subject

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxKeyDigits bounds the number part of a key so it always fits an int64.
const maxKeyDigits = 18

// FormatKey returns the ticket key for number under prefix: FormatKey("SD", 1042) is "SD-1042".
// The prefix is used as given; ParseKey and FindKey read keys back in any letter case.
func FormatKey(prefix string, number int64) string {
	return prefix + "-" + strconv.FormatInt(number, 10)
}

// ParseKey splits a key of the form PREFIX-NUMBER, ignoring surrounding whitespace and one pair of
// surrounding square brackets ("[SD-1042]"). The prefix must start with an ASCII letter and contain
// only ASCII letters, digits and hyphens; it is returned as written. The number is the decimal part
// after the last hyphen, positive and at most 18 digits (leading zeros are accepted and dropped).
func ParseKey(s string) (prefix string, number int64, ok bool) {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && s[0] == '[' && s[len(s)-1] == ']' {
		s = strings.TrimSpace(s[1 : len(s)-1])
	}
	dash := strings.LastIndexByte(s, '-')
	if dash <= 0 {
		return "", 0, false
	}
	prefix = s[:dash]
	if !isASCIILetter(prefix[0]) {
		return "", 0, false
	}
	for i := 0; i < len(prefix); i++ {
		if c := prefix[i]; !isASCIILetter(c) && !isDigit(c) && c != '-' {
			return "", 0, false
		}
	}
	n, size := parseNumber(s[dash+1:])
	if size == 0 || size != len(s)-dash-1 {
		return "", 0, false
	}
	return prefix, n, true
}

// FindKey returns the first ticket key of one of prefixes in subject, formatted with the configured
// prefix (so "[sd-1042]" with prefix "SD" yields "SD-1042"). Prefixes match case-insensitively; an
// empty prefix is ignored. It accepts
//   - a bracketed key anywhere: "Re: VPN down [SD-1042]", "[ SD-1042 ]";
//   - a bare key at the start once reply prefixes and leading tags are stripped: "Re: SD-1042 VPN down",
//     "AW: [External] SD-1042: VPN". The key must end at a non-alphanumeric character, so "SD-10423"
//     is not "SD-1042" and "SD-1042abc" is no key.
//
// A bare key elsewhere ("see SD-1042") does not count: it is too easily quoted by people.
func FindKey(subject string, prefixes []string) (key string, ok bool) {
	for i := 0; i < len(subject); i++ {
		if subject[i] != '[' {
			continue
		}
		j := skipSpace(subject, i+1)
		p, n, end := matchKey(subject, j, prefixes)
		if p == "" {
			continue
		}
		end = skipSpace(subject, end)
		if end < len(subject) && subject[end] == ']' {
			return FormatKey(p, n), true
		}
	}
	s := collapse(subject)
	for {
		prev := s
		s = StripReplyPrefixes(s)
		s = cutLeadingBlobs(s)
		if s == prev {
			break
		}
	}
	if p, n, end := matchKey(s, 0, prefixes); p != "" && atWordEnd(s, end) {
		return FormatKey(p, n), true
	}
	return "", false
}

// matchKey matches PREFIX-DIGITS at s[i:] for one of prefixes and returns that configured prefix, the
// number and the index after the digits; p is "" when nothing matches. The digits must not run on
// into more digits.
func matchKey(s string, i int, prefixes []string) (p string, n int64, end int) {
	for _, pre := range prefixes {
		if pre == "" || len(s)-i < len(pre)+2 || !strings.EqualFold(s[i:i+len(pre)], pre) || s[i+len(pre)] != '-' {
			continue
		}
		start := i + len(pre) + 1
		num, size := parseNumber(s[start:])
		if size == 0 || (start+size < len(s) && isDigit(s[start+size])) {
			continue
		}
		return pre, num, start + size
	}
	return "", 0, 0
}

// parseNumber reads the leading decimal digits of s: a positive number of at most maxKeyDigits digits.
// size is the count of digits read, 0 when there is no such number.
func parseNumber(s string) (n int64, size int) {
	for size < len(s) && isDigit(s[size]) {
		size++
	}
	if size == 0 || size > maxKeyDigits {
		return 0, 0
	}
	n, err := strconv.ParseInt(s[:size], 10, 64)
	if err != nil || n <= 0 {
		return 0, 0
	}
	return n, size
}

// atWordEnd reports whether s[i:] starts with no letter or digit (or is empty).
func atWordEnd(s string, i int) bool {
	if i >= len(s) {
		return true
	}
	r, _ := utf8.DecodeRuneInString(s[i:])
	return !unicode.IsLetter(r) && !unicode.IsDigit(r)
}

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}

func isASCIILetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
