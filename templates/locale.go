package templates

import (
	"fmt"
	"time"
)

// locale holds what the template helpers say differently per language: date formats, relative
// times, labels of ticket values and the reply marker. Everything else a mail says lives in the
// language's template files.
type locale struct {
	date     func(time.Time) string
	dateTime func(time.Time) string
	// future and past wrap a span ("in %s", "%s ago"); now is said for spans under a minute.
	future, past, now string
	units             [3]string // day, hour, minute abbreviations
	labels            map[string]string
	marker            string
}

// locales are the languages the helpers speak; a template in any other language gets English
// helpers.
var locales = map[string]*locale{
	"en": {
		date:     func(t time.Time) string { return t.Format("Mon, 2 Jan 2006") },
		dateTime: func(t time.Time) string { return t.Format("Mon, 2 Jan 2006 15:04 MST") },
		future:   "in %s", past: "%s ago", now: "now",
		units: [3]string{"d", "h", "min"},
		labels: map[string]string{
			"status.new": "New", "status.open": "Open", "status.pending": "Pending",
			"status.resolved": "Resolved", "status.closed": "Closed",
			"priority.P1": "P1 (critical)", "priority.P2": "P2 (high)", "priority.P3": "P3 (normal)", "priority.P4": "P4 (low)",
			"kind.incident": "Incident", "kind.request": "Service request", "kind.problem": "Problem", "kind.change": "Change",
			"clock.response": "first response", "clock.resolution": "resolution",
		},
		marker: "-- reply above this line --",
	},
	"de": {
		date: func(t time.Time) string {
			return fmt.Sprintf("%s, %s", deWeekdays[t.Weekday()], t.Format("02.01.2006"))
		},
		dateTime: func(t time.Time) string {
			return fmt.Sprintf("%s, %s", deWeekdays[t.Weekday()], t.Format("02.01.2006, 15:04 MST"))
		},
		future: "in %s", past: "vor %s", now: "jetzt",
		units: [3]string{"Tg.", "Std.", "Min."},
		labels: map[string]string{
			"status.new": "Neu", "status.open": "Offen", "status.pending": "Wartend",
			"status.resolved": "Gelöst", "status.closed": "Geschlossen",
			"priority.P1": "P1 (kritisch)", "priority.P2": "P2 (hoch)", "priority.P3": "P3 (normal)", "priority.P4": "P4 (niedrig)",
			"kind.incident": "Störung", "kind.request": "Serviceanfrage", "kind.problem": "Problem", "kind.change": "Änderung",
			"clock.response": "Erstreaktion", "clock.resolution": "Lösung",
		},
		marker: "-- Bitte oberhalb dieser Zeile antworten --",
	},
}

var deWeekdays = [7]string{"So.", "Mo.", "Di.", "Mi.", "Do.", "Fr.", "Sa."}

// localeFor returns the helpers' locale for a language tag, falling back to its primary language
// and then to English.
func localeFor(lang string) *locale {
	lang = normalizeLang(lang)
	if l, ok := locales[lang]; ok {
		return l
	}
	if l, ok := locales[primaryLang(lang)]; ok {
		return l
	}
	return locales[DefaultLanguage]
}

// ReplyMarker returns the marker line for mail in lang. The built-in templates put it first in
// every mail that expects an answer: the reader writes above it, so inbound parsing may cut a
// reply at the first line that holds a marker, quoted ("> -- reply above ...") or not.
func ReplyMarker(lang string) string {
	return localeFor(lang).marker
}

// ReplyMarkers returns the reply marker line of every built-in language, for inbound parsing to
// recognise whichever language the mail was sent in. The caller may modify the slice.
func ReplyMarkers() []string {
	out := make([]string, 0, len(locales))
	for _, tag := range []string{"en", "de"} {
		out = append(out, locales[tag].marker)
	}
	return out
}

// span says a duration in at most two units ("2 d 4 h", "3 h 5 min", "12 min").
func (l *locale) span(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	days := int(d / (24 * time.Hour))
	hours := int(d % (24 * time.Hour) / time.Hour)
	mins := int(d % time.Hour / time.Minute)
	switch {
	case days > 0 && hours > 0:
		return fmt.Sprintf("%d %s %d %s", days, l.units[0], hours, l.units[1])
	case days > 0:
		return fmt.Sprintf("%d %s", days, l.units[0])
	case hours > 0 && mins > 0:
		return fmt.Sprintf("%d %s %d %s", hours, l.units[1], mins, l.units[2])
	case hours > 0:
		return fmt.Sprintf("%d %s", hours, l.units[1])
	}
	return fmt.Sprintf("%d %s", mins, l.units[2])
}

// relative says when t is as seen from now: "in 2 h 5 min", "15 min ago", "now".
func (l *locale) relative(now, t time.Time) string {
	d := t.Sub(now)
	switch {
	case d > -time.Minute && d < time.Minute:
		return l.now
	case d > 0:
		return fmt.Sprintf(l.future, l.span(d))
	}
	return fmt.Sprintf(l.past, l.span(d))
}

// label translates a ticket value of a kind ("status", "priority", "kind", "clock"); unknown
// values come back unchanged.
func (l *locale) label(kind, value string) string {
	if s, ok := l.labels[kind+"."+value]; ok {
		return s
	}
	return value
}
