package mailstack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// snailTimeout bounds one s-nail run when ctx has no earlier deadline.
const snailTimeout = 30 * time.Second

// SendWithSNail sends a new plain-text message with s-nail over SMTP to
// smtpAddr (host:port, no TLS, no AUTH), the way a person's mail client
// would: s-nail writes Date, Message-ID (at the domain of from), MIME headers
// and the User-Agent itself. from may be "Name <addr>"; to may list several
// addresses separated by commas; each extraHeaders entry is "Name: value".
//
// It runs `s-nail -# -:/ -S v15-compat -S mta=smtp://HOST:PORT -S sendwait
// -r FROM -s SUBJECT [-C HEADER]... -- TO` with the body on stdin, in a
// temporary HOME, with LC_ALL=C.UTF-8 (non-ASCII bodies go out as UTF-8).
func SendWithSNail(ctx context.Context, smtpAddr, from, to, subject, body string, extraHeaders ...string) error {
	args, err := snailBaseArgs(smtpAddr, from, extraHeaders)
	if err != nil {
		return fmt.Errorf("send with s-nail: %w", err)
	}
	args = append(args, "-s", subject, "-.") // -. ends the options
	for _, rcpt := range strings.Split(to, ",") {
		if rcpt = strings.TrimSpace(rcpt); rcpt != "" {
			args = append(args, rcpt)
		}
	}
	if err := runSNail(ctx, args, body); err != nil {
		return fmt.Errorf("send with s-nail: %w", err)
	}
	return nil
}

// ReplyWithSNail makes s-nail reply to original (a raw RFC 5322 message) and
// send the reply over SMTP to smtpAddr. The reply is s-nail's own: "Re: "
// subject, In-Reply-To and References built from the original's Message-ID
// and References (RFC 5322 §3.6.4), the original quoted with "> " under an
// attribution line ("NAME <ADDR> wrote:"), then body below the quote.
//
// The reply goes to the sender only (s-nail's `Reply` command), honouring
// Reply-To (reply-to-honour=yes) as most mail clients do. original is written
// to a temporary mbox, and s-nail runs in batch mode as
// `s-nail -# -:/ -S v15-compat -S mta=... -S sendwait -S quote
// -S indentprefix="> " -S mbox-rfc4155 -S reply-to-honour=yes -r FROM -f MBOX`
// with "Reply 1" and then body on stdin (end of input sends the reply).
func ReplyWithSNail(ctx context.Context, smtpAddr, from string, original []byte, body string, extraHeaders ...string) error {
	args, err := snailBaseArgs(smtpAddr, from, extraHeaders)
	if err != nil {
		return fmt.Errorf("reply with s-nail: %w", err)
	}
	dir, err := os.MkdirTemp("", "snail-reply")
	if err != nil {
		return fmt.Errorf("reply with s-nail: %w", err)
	}
	defer os.RemoveAll(dir)
	mbox := filepath.Join(dir, "mbox")
	if err := os.WriteFile(mbox, mboxFile(original), 0o600); err != nil {
		return fmt.Errorf("reply with s-nail: %w", err)
	}
	args = append(args,
		"-S", "quote", // include the original
		"-S", "indentprefix=> ", // the Debian default from s-nail.rc, skipped by -:/
		"-S", "mbox-rfc4155", // strict separators: body lines "From ..." stay in the message
		"-S", "reply-to-honour=yes",
		"-S", "followup-to-honour=yes",
		"-S", "keep", // leave the temporary mbox alone
		"-f", mbox)
	if err := runSNail(ctx, args, "Reply 1\n"+body); err != nil {
		return fmt.Errorf("reply with s-nail: %w", err)
	}
	return nil
}

// snailBaseArgs are the options shared by sending and replying.
func snailBaseArgs(smtpAddr, from string, extraHeaders []string) ([]string, error) {
	host, port, err := net.SplitHostPort(smtpAddr)
	if err != nil {
		return nil, fmt.Errorf("smtp address %q: %w", smtpAddr, err)
	}
	if from == "" {
		return nil, errors.New("no from address")
	}
	args := []string{
		"-#",  // batch mode: no terminal, no prompts, errors are fatal
		"-:/", // load no resource files (no /etc/s-nail.rc, no ~/.mailrc)
		"-S", "v15-compat",
		"-S", "mta=smtp://" + net.JoinHostPort(host, port),
		"-S", "smtp-auth=none",
		"-S", "sendwait", // wait for the SMTP dialogue, report its errors
		"-S", "nosave", // no dead.letter on failure
		"-S", "hostname=" + domainOf(from), // Message-ID domain
		"-S", "ttycharset=utf-8",
		"-S", "sendcharsets=utf-8",
		"-r", from,
	}
	for _, h := range extraHeaders {
		if !strings.Contains(h, ":") || strings.ContainsAny(h, "\r\n") {
			return nil, fmt.Errorf("extra header %q: want one \"Name: value\" line", h)
		}
		args = append(args, "-C", h)
	}
	return args, nil
}

// runSNail runs s-nail with stdin and returns its output on failure.
func runSNail(ctx context.Context, args []string, stdin string) error {
	_, err := runSNailOutput(ctx, args, stdin)
	return err
}

// runSNailOutput is runSNail returning what s-nail printed.
func runSNailOutput(ctx context.Context, args []string, stdin string) (string, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, snailTimeout)
		defer cancel()
	}
	home, err := os.MkdirTemp("", "snail-home")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(home)
	cmd := exec.CommandContext(ctx, lookPath(snailBin), args...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = []string{"HOME=" + home, "LC_ALL=C.UTF-8", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "MAIL=/dev/null", "TMPDIR=" + home,
		"COLUMNS=400"}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("s-nail: %w: %s", err, strings.TrimSpace(out.String()))
	}
	// With -# s-nail may report some failures only on its output.
	if s := out.String(); strings.Contains(s, "SMTP server:") || strings.Contains(s, "send-error") ||
		strings.Contains(s, "necessary for imap") {
		return s, fmt.Errorf("s-nail: %s", strings.TrimSpace(s))
	}
	return out.String(), nil
}

// SubjectsWithSNail opens user's INBOX with s-nail over IMAP (imapAddr, no TLS, LOGIN) and returns
// the subjects of its header summary, oldest first: what a person sees on opening the folder.
func SubjectsWithSNail(ctx context.Context, imapAddr, user, password string) ([]string, error) {
	host, port, err := net.SplitHostPort(imapAddr)
	if err != nil {
		return nil, fmt.Errorf("read with s-nail: imap address %q: %w", imapAddr, err)
	}
	args := []string{"-#", "-:/", "-S", "v15-compat", "-S", "password=" + password, "-S", "imap-auth=login",
		"-S", "headline=%s", "-S", "ttycharset=utf-8",
		"-f", "imap://" + url.QueryEscape(user) + "@" + net.JoinHostPort(host, port)}
	out, err := runSNailOutput(ctx, args, "headers\n")
	if err != nil {
		return nil, fmt.Errorf("read with s-nail: %w", err)
	}
	var subjects []string
	for _, ln := range strings.Split(out, "\n") {
		// A header summary line: a marker column, then the headline (the subject alone).
		if ln = strings.TrimSpace(strings.TrimLeft(strings.TrimSpace(ln), "▸>")); ln != "" && !strings.HasPrefix(ln, "s-nail:") {
			subjects = append(subjects, ln)
		}
	}
	return subjects, nil
}

// fromLine matches what RFC 4155 §2 takes for a message separator: "From ",
// an address, and a ctime(3)-style date.
var fromLine = regexp.MustCompile(`^From \S+ +(Mon|Tue|Wed|Thu|Fri|Sat|Sun) `)

// mboxFile wraps one message in an mbox for s-nail (read with mbox-rfc4155,
// so only lines shaped like a real separator split messages): a "From "
// separator line, LF line endings, and a ">" before the lines that would be
// taken for a separator. s-nail does not remove such a ">" (mboxo), so it is
// added only where it is needed; other "From " lines stay as they are.
func mboxFile(raw []byte) []byte {
	text := strings.ReplaceAll(string(raw), "\r\n", "\n")
	var b strings.Builder
	b.WriteString("From MAILER-DAEMON Thu Jan  1 00:00:00 1970\n")
	for _, line := range strings.SplitAfter(text, "\n") {
		if fromLine.MatchString(line) {
			b.WriteByte('>')
		}
		b.WriteString(line)
	}
	if !strings.HasSuffix(text, "\n") {
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	return []byte(b.String())
}

// domainOf returns the domain of "Name <local@domain>" or "local@domain".
func domainOf(addr string) string {
	addr = strings.TrimSpace(addr)
	if i := strings.LastIndexByte(addr, '<'); i >= 0 {
		addr = strings.TrimSuffix(addr[i+1:], ">")
	}
	if at := strings.LastIndexByte(addr, '@'); at >= 0 && at < len(addr)-1 {
		return addr[at+1:]
	}
	return "localhost"
}
