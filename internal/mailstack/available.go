// Package mailstack runs real mail servers for interop tests: a private
// Dovecot (IMAP + LMTP, passwd-file users, maildir) and a private Postfix
// (SMTP in, LMTP out to that Dovecot) on free 127.0.0.1 ports, plus s-nail as
// a real mail client that sends and replies.
//
// Every instance lives in a directory of the caller's (usually t.TempDir())
// with its own configuration, queue, state and log, so tests can run side by
// side and never touch the system-wide services or their ports.
//
// The binaries come from Debian packages installed by
// scripts/install-mailstack.sh. Tests call Require, which skips when they are
// missing, except under CI=true where it fails.
package mailstack

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// InstallHint tells how to install what Available looks for.
const InstallHint = "run scripts/install-mailstack.sh as root " +
	"(apt-get install dovecot-imapd dovecot-lmtpd postfix s-nail)"

// ErrUnavailable is returned (wrapped) by Available when a binary is missing.
var ErrUnavailable = errors.New("mail stack not installed")

// Paths of the programs, as installed by Debian's packages.
var (
	dovecotBin       = "/usr/sbin/dovecot"
	dovecotLMTPBin   = "/usr/lib/dovecot/lmtp"
	dovecotIMAPBin   = "/usr/lib/dovecot/imap"
	postfixBin       = "/usr/sbin/postfix"
	postfixMasterBin = "/usr/lib/postfix/sbin/master"
	snailBin         = "/usr/bin/s-nail"
)

// Available reports whether Dovecot (with imap and lmtp), Postfix and s-nail
// are installed. The error names what is missing and includes InstallHint.
func Available() error {
	var missing []string
	for _, p := range []string{dovecotBin, dovecotIMAPBin, dovecotLMTPBin, postfixBin, postfixMasterBin, snailBin} {
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: missing %s; %s", ErrUnavailable, strings.Join(missing, ", "), InstallHint)
	}
	return nil
}

// Require skips tb when the mail stack is not installed, or fails it when the
// environment has CI=true: CI must run the interop tests.
func Require(tb testing.TB) {
	tb.Helper()
	err := Available()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		tb.Fatalf("CI=true and %v", err)
	}
	tb.Skipf("skipping interop test: %v", err)
}

// lookPath prefers the Debian path and falls back to $PATH.
func lookPath(p string) string {
	if _, err := os.Stat(p); err == nil {
		return p
	}
	name := p[strings.LastIndexByte(p, '/')+1:]
	if found, err := exec.LookPath(name); err == nil {
		return found
	}
	return p
}
