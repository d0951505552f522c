package mailstack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"

	"github.com/emersion/go-smtp"
)

// DovecotOptions configures StartDovecot.
type DovecotOptions struct {
	// Dir holds everything of this instance: dovecot.conf, users (passwd
	// file), run/ (base_dir), state/, mail/<address>/Maildir and
	// dovecot.log. Required; t.TempDir() is the usual choice. Its
	// ancestors get o+x so the mail user can reach it.
	Dir string
	// Users maps an email address (the IMAP login and LMTP recipient) to
	// its plaintext password. At least one is required.
	Users map[string]string
	// MailUser is the system user that owns and accesses the mail files
	// when running as root. Empty means "nobody". When not root, the
	// current user is used.
	MailUser string
}

// Dovecot is a running private Dovecot: IMAP and LMTP on 127.0.0.1,
// plaintext logins allowed, "+detail" stripped from LMTP recipients, IDLE
// checking for new mail every second.
type Dovecot struct {
	dir      string
	conf     string
	logPath  string
	baseDir  string
	tmpBase  bool // baseDir was made outside dir and is removed on Stop
	imapAddr string
	lmtpAddr string

	cmd    *exec.Cmd
	exited chan struct{}

	stopOnce sync.Once
	stopErr  error
}

var dovecotConf = template.Must(template.New("dovecot.conf").Parse(`# Written by deskd internal/mailstack; private test instance.
base_dir = {{.BaseDir}}
state_dir = {{.Dir}}/state
instance_name = deskd-mailstack-{{.IMAPPort}}
log_path = {{.Dir}}/dovecot.log
info_log_path = {{.Dir}}/dovecot.log
hostname = mail.mailstack.test
protocols = imap lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
mail_uid = {{.UID}}
mail_gid = {{.GID}}
first_valid_uid = 1
first_valid_gid = 1
default_login_user = {{.LoginUser}}
default_internal_user = {{.InternalUser}}
recipient_delimiter = +
lmtp_save_to_detail_mailbox = no
imap_idle_notify_interval = 1 secs
mailbox_idle_check_interval = 1 secs
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%Lu {{.Dir}}/users
}
userdb {
  driver = passwd-file
  args = username_format=%Lu {{.Dir}}/users
}
namespace inbox {
  inbox = yes
  separator = /
  mailbox Sent {
    special_use = \Sent
    auto = create
  }
  mailbox Trash {
    special_use = \Trash
    auto = create
  }
  mailbox Junk {
    special_use = \Junk
    auto = create
  }
  mailbox Archive {
    special_use = \Archive
    auto = create
  }
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = {{.IMAPPort}}
  }
  inet_listener imaps {
    port = 0
  }
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = {{.LMTPPort}}
  }
  unix_listener lmtp {
    mode = 0600
  }
}
service pop3-login {
  inet_listener pop3 {
    port = 0
  }
  inet_listener pop3s {
    port = 0
  }
}
service submission-login {
  inet_listener submission {
    port = 0
  }
}
`))

// StartDovecot writes a private configuration into opts.Dir, starts
// `dovecot -F -c DIR/dovecot.conf` and waits until IMAP and LMTP greet
// (usually well under a second). ctx bounds start-up only. The caller must
// call Stop (t.Cleanup(func() { d.Stop() })); the process also gets SIGKILL
// if the calling process dies.
func StartDovecot(ctx context.Context, opts DovecotOptions) (*Dovecot, error) {
	if opts.Dir == "" {
		return nil, errors.New("start dovecot: no Dir")
	}
	if len(opts.Users) == 0 {
		return nil, errors.New("start dovecot: no Users")
	}
	return retryOnPortClash(ctx, func() (*Dovecot, error) { return startDovecotOnce(ctx, opts) })
}

func startDovecotOnce(ctx context.Context, opts DovecotOptions) (*Dovecot, error) {
	dir, err := prepareDir(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("start dovecot: %w", err)
	}
	d := &Dovecot{dir: dir, conf: filepath.Join(dir, "dovecot.conf"), logPath: filepath.Join(dir, "dovecot.log"), exited: make(chan struct{})}

	mailUser, loginUser, internalUser := opts.MailUser, "dovenull", "dovecot"
	if mailUser == "" {
		mailUser = "nobody"
	}
	if os.Geteuid() != 0 {
		if u := os.Getenv("USER"); u != "" {
			mailUser = u
		}
		loginUser, internalUser = mailUser, mailUser
	}
	uid, gid, err := ids(mailUser)
	if err != nil {
		return nil, fmt.Errorf("start dovecot: %w", err)
	}
	mailDir := filepath.Join(dir, "mail")
	for _, sub := range []string{mailDir, filepath.Join(dir, "state")} {
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return nil, fmt.Errorf("start dovecot: %w", err)
		}
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(mailDir, uid, gid); err != nil {
			return nil, fmt.Errorf("start dovecot: chown mail dir: %w", err)
		}
	}

	// Unix socket paths are limited to 108 bytes; keep base_dir short.
	d.baseDir = filepath.Join(dir, "run")
	if len(d.baseDir) > 60 {
		tmp, err := os.MkdirTemp("", "dcrun")
		if err != nil {
			return nil, fmt.Errorf("start dovecot: %w", err)
		}
		d.baseDir, d.tmpBase = tmp, true
	}

	usersFile := filepath.Join(dir, "users")
	if err := writeUsers(usersFile, mailDir, opts.Users); err != nil {
		d.cleanupBase()
		return nil, fmt.Errorf("start dovecot: %w", err)
	}
	if os.Geteuid() == 0 {
		// The auth worker runs as default_internal_user.
		_, igid, err := ids(internalUser)
		if err == nil {
			err = os.Chown(usersFile, 0, igid)
		}
		if err != nil {
			d.cleanupBase()
			return nil, fmt.Errorf("start dovecot: give users file to %s: %w", internalUser, err)
		}
	}
	ports, err := freePorts(2)
	if err != nil {
		d.cleanupBase()
		return nil, fmt.Errorf("start dovecot: %w", err)
	}
	d.imapAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	d.lmtpAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))
	var conf bytes.Buffer
	if err := dovecotConf.Execute(&conf, map[string]any{
		"Dir": dir, "BaseDir": d.baseDir, "IMAPPort": ports[0], "LMTPPort": ports[1],
		"UID": uid, "GID": gid, "LoginUser": loginUser, "InternalUser": internalUser,
	}); err != nil {
		d.cleanupBase()
		return nil, fmt.Errorf("start dovecot: render config: %w", err)
	}
	if err := os.WriteFile(d.conf, conf.Bytes(), 0o644); err != nil {
		d.cleanupBase()
		return nil, fmt.Errorf("start dovecot: %w", err)
	}

	out, err := os.OpenFile(filepath.Join(dir, "dovecot.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		d.cleanupBase()
		return nil, fmt.Errorf("start dovecot: %w", err)
	}
	defer out.Close()
	d.cmd = exec.Command(lookPath(dovecotBin), "-F", "-c", d.conf)
	d.cmd.Stdout, d.cmd.Stderr = out, out
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		d.cleanupBase()
		return nil, fmt.Errorf("start dovecot: %w", err)
	}
	go func() {
		_ = d.cmd.Wait() // the exit status is read from the log on failure
		close(d.exited)
	}()

	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, w := range []struct{ addr, prefix string }{{d.imapAddr, "* OK"}, {d.lmtpAddr, "220"}} {
		if err := waitGreeting(wctx, w.addr, w.prefix, d.exited); err != nil {
			d.Stop()
			return nil, fmt.Errorf("start dovecot: %w\n--- dovecot.out:\n%s\n--- dovecot.log:\n%s",
				err, tail(filepath.Join(dir, "dovecot.out"), 2000), tail(d.logPath, 4000))
		}
	}
	return d, nil
}

// writeUsers writes a passwd-file: user:{PLAIN}password:uid:gid::home.
// Empty uid/gid fields fall back to mail_uid/mail_gid.
func writeUsers(path, mailDir string, users map[string]string) error {
	addrs := make([]string, 0, len(users))
	for a := range users {
		addrs = append(addrs, a)
	}
	sort.Strings(addrs)
	var b strings.Builder
	for _, a := range addrs {
		pw := users[a]
		if strings.ContainsAny(a, ":\n") || strings.ContainsAny(pw, ":\n") {
			return fmt.Errorf("write users: %q or its password contains ':' or a newline", a)
		}
		key := strings.ToLower(a)
		fmt.Fprintf(&b, "%s:{PLAIN}%s::::%s\n", key, pw, filepath.Join(mailDir, key))
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o640); err != nil {
		return fmt.Errorf("write users: %w", err)
	}
	return nil
}

// IMAPAddr is the host:port of the IMAP listener (plaintext, LOGIN and
// AUTHENTICATE PLAIN allowed).
func (d *Dovecot) IMAPAddr() string { return d.imapAddr }

// LMTPAddr is the host:port of the LMTP listener (RFC 2033), the target of
// Postfix's virtual_transport.
func (d *Dovecot) LMTPAddr() string { return d.lmtpAddr }

// LogPath is the file Dovecot logs to.
func (d *Dovecot) LogPath() string { return d.logPath }

// Log returns the end of the Dovecot log, for failure messages.
func (d *Dovecot) Log() string { return tail(d.logPath, 8000) }

// MailDir is the maildir of a user (it exists once mail was delivered or the
// user logged in).
func (d *Dovecot) MailDir(user string) string {
	return filepath.Join(d.dir, "mail", strings.ToLower(user), "Maildir")
}

// Deliver hands raw to Dovecot over LMTP (RFC 2033) for one recipient, as
// Postfix would, with MAIL FROM <sender@mailstack.test>. Dovecot adds
// Return-Path, Delivered-To and Received. The raw message should use CRLF line
// endings.
func (d *Dovecot) Deliver(ctx context.Context, rcpt string, raw []byte) error {
	dl := net.Dialer{Timeout: 5 * time.Second}
	conn, err := dl.DialContext(ctx, "tcp", d.lmtpAddr)
	if err != nil {
		return fmt.Errorf("deliver over lmtp: %w", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	if err := conn.SetDeadline(deadline); err != nil {
		conn.Close()
		return fmt.Errorf("deliver over lmtp: %w", err)
	}
	c := smtp.NewClientLMTP(conn)
	defer c.Close()
	if err := c.Hello("mailstack.test"); err != nil {
		return fmt.Errorf("deliver over lmtp: %w", err)
	}
	if err := c.SendMail("sender@mailstack.test", []string{rcpt}, bytes.NewReader(raw)); err != nil {
		return fmt.Errorf("deliver over lmtp to %s: %w", rcpt, err)
	}
	if err := c.Quit(); err != nil {
		return fmt.Errorf("deliver over lmtp: quit: %w", err)
	}
	return nil
}

// Stop terminates Dovecot and waits for it: SIGTERM, and SIGKILL to its
// process group if it has not exited after stopGrace (a clean Dovecot
// shutdown takes about a second, mostly waiting for its log process; the
// instance is disposable). It is safe to call more than once and after a
// failed start.
func (d *Dovecot) Stop() error {
	d.stopOnce.Do(func() {
		defer d.cleanupBase()
		if d.cmd == nil || d.cmd.Process == nil {
			return
		}
		pgid := d.cmd.Process.Pid
		_ = syscall.Kill(pgid, syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(stopGrace):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			select {
			case <-d.exited:
			case <-time.After(5 * time.Second):
				d.stopErr = errors.New("stop dovecot: still running 5 s after SIGKILL")
			}
		}
		// Workers that outlived the master.
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	})
	return d.stopErr
}

func (d *Dovecot) cleanupBase() {
	if d.tmpBase {
		os.RemoveAll(d.baseDir)
	}
}
