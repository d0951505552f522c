package templates

import "strings"

// DefaultLanguage is the language used when neither the requester's nor the queue's is available.
const DefaultLanguage = "en"

// PickLanguage chooses the language of a mail: requesterLang when it is known and available, else
// queueLang when available, else DefaultLanguage. Tags compare case-insensitively with "_" read as
// "-" (BCP 47, RFC 5646 §2.1.1), and a regional tag falls back to its primary language ("de-CH"
// picks "de"; "de" picks "de-ch" when that is the only German one). The result is an element of
// available as written, or DefaultLanguage.
func PickLanguage(requesterLang, queueLang string, available []string) string {
	for _, want := range []string{requesterLang, queueLang} {
		if got, ok := matchLanguage(want, available); ok {
			return got
		}
	}
	return DefaultLanguage
}

// matchLanguage finds want in available: exact tag first, then want's primary language, then any
// tag sharing the primary language.
func matchLanguage(want string, available []string) (string, bool) {
	want = normalizeLang(want)
	if want == "" {
		return "", false
	}
	base := primaryLang(want)
	for _, pass := range []func(a string) bool{
		func(a string) bool { return a == want },
		func(a string) bool { return a == base },
		func(a string) bool { return primaryLang(a) == base },
	} {
		for _, a := range available {
			if pass(normalizeLang(a)) {
				return a, true
			}
		}
	}
	return "", false
}

// normalizeLang lower-cases a language tag, trims it and writes "_" as "-".
func normalizeLang(s string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), "_", "-")
}

// primaryLang returns the primary language subtag of a normalised tag ("de" for "de-ch").
func primaryLang(s string) string {
	if i := strings.IndexByte(s, '-'); i >= 0 {
		return s[:i]
	}
	return s
}
