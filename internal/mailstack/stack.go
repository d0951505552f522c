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
	TLS     *TestCert // Postfix's certificate; nil unless StartStackTLS
}

// StartStack is the one-call form for tests: Require, then a Dovecot with
// users (address -> password) and a Postfix accepting mail for the domains of
// those addresses, both in tb.TempDir() and stopped by tb.Cleanup. When the
// test fails, the ends of both logs are written to the test log. It fails tb
// when a server does not start.
func StartStack(tb testing.TB, users map[string]string) *Stack {
	tb.Helper()
	return startStack(tb, users, false)
}

// StartStackTLS is StartStack with Postfix offering STARTTLS on its SMTP port and implicit TLS on
// its SMTPS port, with a fresh self-signed certificate (Stack.TLS).
func StartStackTLS(tb testing.TB, users map[string]string) *Stack {
	tb.Helper()
	return startStack(tb, users, true)
}

func startStack(tb testing.TB, users map[string]string, withTLS bool) *Stack {
	tb.Helper()
	Require(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	root := tb.TempDir()
	d, err := StartDovecot(ctx, DovecotOptions{Dir: filepath.Join(root, "dovecot"), Users: users})
	if err != nil {
		tb.Fatalf("mailstack: %v", err)
	}
	stopOnCleanup(tb, "dovecot", d)
	var cert *TestCert
	if withTLS {
		if cert, err = NewTestCert(root); err != nil {
			tb.Fatalf("mailstack: %v", err)
		}
	}
	p, err := StartPostfix(ctx, PostfixOptions{Dir: filepath.Join(root, "postfix"), LMTP: d.LMTPAddr(), Domains: domains(users), TLS: cert})
	if err != nil {
		tb.Fatalf("mailstack: %v", err)
	}
	stopOnCleanup(tb, "postfix", p)
	return &Stack{Dovecot: d, Postfix: p, TLS: cert}
}

// server is what Dovecot and Postfix have in common.
type server interface {
	LogPath() string
	Log() string
	Stop() error
}

// stopOnCleanup stops srv when the test ends, after logging the end of its
// log if the test failed.
func stopOnCleanup(tb testing.TB, name string, srv server) {
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("--- %s log (%s):\n%s", name, srv.LogPath(), srv.Log())
		}
		if err := srv.Stop(); err != nil {
			tb.Logf("mailstack: %v", err)
		}
	})
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
