package mailstack

import (
	"context"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// Stack is a Dovecot and a Postfix that delivers to it over LMTP.
type Stack struct {
	Dovecot *Dovecot
	Postfix *Postfix
}

// StartStack is the one-call form for tests: Require, then a Dovecot with
// users (address -> password) and a Postfix accepting mail for the domains of
// those addresses, both in tb.TempDir() and stopped by tb.Cleanup. When the
// test fails, the ends of both logs are written to the test log. It fails tb
// when a server does not start.
func StartStack(tb testing.TB, users map[string]string) *Stack {
	tb.Helper()
	Require(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	root := tb.TempDir()
	d, err := StartDovecot(ctx, DovecotOptions{Dir: filepath.Join(root, "dovecot"), Users: users})
	if err != nil {
		tb.Fatalf("mailstack: %v", err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("--- dovecot log (%s):\n%s", d.LogPath(), d.Log())
		}
		d.Stop()
	})
	p, err := StartPostfix(ctx, PostfixOptions{Dir: filepath.Join(root, "postfix"), LMTP: d.LMTPAddr(), Domains: domains(users)})
	if err != nil {
		tb.Fatalf("mailstack: %v", err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("--- postfix log (%s):\n%s", p.LogPath(), p.Log())
		}
		p.Stop()
	})
	return &Stack{Dovecot: d, Postfix: p}
}

// domains returns the sorted distinct domains of the addresses in users.
func domains(users map[string]string) []string {
	seen := map[string]bool{}
	var out []string
	for a := range users {
		d := strings.ToLower(domainOf(a))
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	sort.Strings(out)
	return out
}
