package classify

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/deskd/deskd/internal/corpustest"
	"github.com/deskd/deskd/mailin/parse"
)

// parseRaw is the parser under the corpus test.
var parseRaw = parse.Parse

// corpusDir and readManifest come from internal/corpustest, shared by every corpus test.
func corpusDir(t testing.TB) string { return corpustest.Dir(t) }

type manifestRow = corpustest.Row

func readManifest(t testing.TB, dir string) []manifestRow { return corpustest.Manifest(t, dir) }

// Messages outside bounces/ and autoreplies/ that are not mail written by a person to the desk.
// Every other message in replies/, structure/, charsets/ and malformed/ must classify as normal.
var nonHuman = map[string]Class{
	"malformed/enmime__multipart-wo-boundary.raw": ClassBounce,    // From Mailer-Daemon, "Delivery Status Notification (Failure)"
	"malformed/mailgem__bad_date_header.eml":      ClassAutoreply, // spam with Precedence: junk
	"malformed/mailgem__empty_in_reply_to.eml":    ClassList,      // List-Id
	"structure/mailparser__large_text.eml":        ClassList,      // Launchpad bug mail via Mailman
}

// divergences are expectations carried over from other projects that this package deliberately
// does not meet, keyed by "path: check". The test reports them instead of failing.
var divergences = map[string]string{
	// sisimai's McAfee module reports this as "filtered"; the diagnostic is "550 Unknown user",
	// which this package treats as an unknown address like every other MTA's.
	"bounces/sisimai__lhost-mcafee-01.eml: #1 hardbounce": "550 Unknown user is hard here",
}

var (
	sisimaiRecipientRe = regexp.MustCompile(`#(\d+) reason=(\S+)(?: status=(\S+))?(?: replycode=(\S+))? hardbounce=(true|false)`)
	sisimaiCountRe     = regexp.MustCompile(`recipients=(\d+):`)
	quotedRe           = regexp.MustCompile(`(\w+)=='([^']*)'`)
	pseudoStatusRe     = regexp.MustCompile(`^\d\.0\.9\d\d$`) // sisimai's own codes, not in the mail
)

// tally counts checks per category.
type tally struct{ pass, fail, diverge int }

// TestCorpus classifies every corpus message and checks every expectation of the manifest
// about classification: class, bounce recipients, actions, status codes, hardness, retryability.
func TestCorpus(t *testing.T) {
	dir := corpusDir(t)
	rows := readManifest(t, dir)
	tallies := map[string]*tally{}
	classTallies := map[string]*tally{}
	for _, row := range rows {
		raw, err := os.ReadFile(filepath.Join(dir, row.Path))
		if err != nil {
			t.Errorf("%s: read: %v", row.Path, err)
			continue
		}
		m, err := parseRaw(raw)
		if err != nil || m == nil {
			t.Errorf("%s: parse: %v", row.Path, err)
			continue
		}
		res := Classify(m, Options{DeskAddresses: []string{"support@desk.example"}, DeskDomain: "desk.example"})
		c := &corpusCheck{t: t, row: row, res: res}
		c.run()
		for _, k := range []struct {
			m   map[string]*tally
			key string
		}{{tallies, row.Category}, {classTallies, row.Category}} {
			if k.m[k.key] == nil {
				k.m[k.key] = &tally{}
			}
		}
		tallies[row.Category].pass += c.pass
		tallies[row.Category].fail += c.fail
		tallies[row.Category].diverge += c.diverge
		ct := classTallies[row.Category]
		switch {
		case c.classFail:
			ct.fail++
		case c.classDiverge:
			ct.diverge++
		default:
			ct.pass++
		}
	}
	cats := make([]string, 0, len(tallies))
	for k := range tallies {
		cats = append(cats, k)
	}
	sort.Strings(cats)
	for _, k := range cats {
		a, ct := tallies[k], classTallies[k]
		t.Logf("%-12s class %3d/%3d  checks %3d/%3d (%.1f%%)  documented divergences %d",
			k, ct.pass, ct.pass+ct.fail+ct.diverge, a.pass, a.pass+a.fail+a.diverge,
			100*float64(a.pass)/float64(max(1, a.pass+a.fail+a.diverge)), a.diverge)
	}
}

// corpusCheck checks one message against its manifest expectations.
type corpusCheck struct {
	t                       *testing.T
	row                     manifestRow
	res                     Result
	pass, fail, diverge     int
	classFail, classDiverge bool
}

func (c *corpusCheck) check(name string, ok bool, format string, args ...any) {
	c.t.Helper()
	if ok {
		c.pass++
		return
	}
	key := c.row.Path + ": " + name
	if why, found := divergences[key]; found {
		c.diverge++
		if name == "class" {
			c.classDiverge = true
		}
		c.t.Logf("documented divergence %s (%s): "+format, append([]any{key, why}, args...)...)
		return
	}
	c.fail++
	if name == "class" {
		c.classFail = true
	}
	c.t.Errorf("%s: %s: "+format+" [result %s: %s]", append(append([]any{c.row.Path, name}, args...), c.res.Class, c.res.Reason)...)
}

func (c *corpusCheck) run() {
	exp, res := c.row.Expected, c.res
	want := Class("")
	switch {
	case strings.Contains(exp, "is_bounce=yes"), strings.Contains(exp, "bounced?==true"):
		want = ClassBounce
	case strings.Contains(exp, "is_autoreply=yes"):
		want = ClassAutoreply
	case strings.Contains(exp, "is_mdn=yes"):
		want = ClassMDN
	case strings.Contains(exp, "is_bounce=no-final"), strings.Contains(exp, "bounced?==false"),
		strings.Contains(exp, "successful-delivery DSN"), strings.Contains(exp, "ARF"):
		want = ClassReport
	case strings.Contains(exp, "is_bounce=no"):
		want = ClassNormal
	}
	if cl, ok := nonHuman[c.row.Path]; ok {
		want = cl
	}
	if want == "" && c.row.Category != "bounces" && c.row.Category != "autoreplies" {
		want = ClassNormal // human mail or a reply body
	}
	if want == "" {
		c.t.Errorf("%s: manifest row has no class expectation: %q", c.row.Path, exp)
		return
	}
	c.check("class", res.Class == want, "class %s, want %s", res.Class, want)
	if want == ClassBounce && res.Class == ClassBounce && !res.Bounce.Failed() && len(res.Bounce.Recipients) > 0 {
		// a bounce either failed for someone, or is a soft (delay) bounce that marks nobody hard
		soft := true
		for _, r := range res.Bounce.Recipients {
			soft = soft && r.Action == ActionDelayed && !r.Hard
		}
		c.check("failed", soft, "bounce without a failed recipient that is not a soft delay bounce")
	}
	if strings.Contains(exp, "is_bounce=no-final") {
		c.check("delayed", res.Bounce != nil && len(res.Bounce.Recipients) > 0 &&
			res.Bounce.Recipients[0].Action == ActionDelayed && !res.Bounce.Recipients[0].Hard,
			"want a delayed, not hard recipient, got %+v", res.Bounce)
	}
	if strings.Contains(exp, "multiple recipients") {
		c.check("recipients", res.Bounce != nil && len(res.Bounce.Recipients) > 1, "want several recipients, got %+v", res.Bounce)
	}
	c.runMailGem()
	c.runSisimai()
}

// runMailGem checks the mail gem expectations: action, final_recipient, error_status,
// diagnostic_code, retryable.
func (c *corpusCheck) runMailGem() {
	exp := c.row.Expected
	if !strings.Contains(exp, "mail gem: bounced?") {
		return
	}
	var r BounceRecipient
	if c.res.Bounce != nil && len(c.res.Bounce.Recipients) > 0 {
		r = c.res.Bounce.Recipients[0]
	}
	for _, q := range quotedRe.FindAllStringSubmatch(exp, -1) {
		switch q[1] {
		case "action":
			c.check("action", r.Action == q[2], "action %q, want %q", r.Action, q[2])
		case "final_recipient":
			c.check("final_recipient", r.Address == cleanAddress(q[2]), "address %q, want %q", r.Address, q[2])
		case "error_status":
			c.check("status", r.Status == q[2], "status %q, want %q", r.Status, q[2])
		case "diagnostic_code":
			c.check("diagnostic", r.Diagnostic == q[2], "diagnostic %q, want %q", r.Diagnostic, q[2])
		}
	}
	switch {
	case strings.Contains(exp, "not retryable"):
		c.check("retryable", !r.Retryable, "retryable, want not retryable")
	case strings.Contains(exp, "retryable"):
		c.check("retryable", r.Retryable, "not retryable, want retryable")
	}
}

// runSisimai checks the go-sisimai fact-test expectations: the class its non-bounce reasons
// imply, and per recipient the hard bounce flag, the reply code in the diagnostic and, where
// sisimai read it from the message, the status code. Status codes of the form X.0.9NN are
// sisimai's own pseudo codes and are not in the message. Recipient counts are informational:
// sisimai lists one recipient twice in rfc3464-01.
func (c *corpusCheck) runSisimai() {
	exp := c.row.Expected
	if !strings.Contains(exp, "sisimai(") {
		return
	}
	// sisimai's non-bounce reasons name our classes.
	for reason, class := range map[string]Class{"vacation": ClassAutoreply, "feedback": ClassReport, "delivered": ClassReport} {
		if strings.Contains(exp, "#1 reason="+reason+" ") {
			c.check("sisimai reason", c.res.Class == class, "class %s, sisimai reason %s wants %s", c.res.Class, reason, class)
		}
	}
	if c.res.Class != ClassBounce {
		return
	}
	if n := sisimaiCountRe.FindStringSubmatch(exp); n != nil && c.res.Bounce != nil && fmt.Sprint(len(c.res.Bounce.Recipients)) != n[1] {
		c.t.Logf("%s: %d recipients, sisimai lists %s: %+v", c.row.Path, len(c.res.Bounce.Recipients), n[1], c.res.Bounce.Recipients)
	}
	for i, f := range sisimaiRecipientRe.FindAllStringSubmatch(exp, -1) {
		if c.res.Bounce == nil || i >= len(c.res.Bounce.Recipients) {
			if i == 0 || f[1] != "1" {
				c.check("recipients", false, "missing recipient #%d (%s)", i+1, f[0])
			}
			continue
		}
		r := c.res.Bounce.Recipients[i]
		name := fmt.Sprintf("#%d", i+1)
		c.check(name+" hardbounce", fmt.Sprint(r.Hard) == f[5], "%s hard=%v, want hardbounce=%s (sisimai reason %s; diag %q)", r.Address, r.Hard, f[5], f[2], r.Diagnostic)
		if st := f[3]; st != "" && !pseudoStatusRe.MatchString(st) {
			c.check(name+" status", r.Status == st, "%s status %q, want %s", r.Address, r.Status, st)
		}
		if code := f[4]; code != "" {
			c.check(name+" replycode", strings.Contains(r.Diagnostic, code), "%s diagnostic %q lacks reply code %s", r.Address, r.Diagnostic, code)
		}
	}
}

// Ensure the parser under test has the parse.Parse signature.
var _ func([]byte) (*parse.Message, error) = parseRaw
