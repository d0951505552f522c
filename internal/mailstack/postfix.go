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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"
)

// PostfixOptions configures StartPostfix.
type PostfixOptions struct {
	// Dir holds everything of this instance: conf/ (main.cf, master.cf),
	// queue/, data/ and postfix.log. Required; t.TempDir() is the usual
	// choice. Its ancestors get o+x so the postfix user can reach it.
	Dir string
	// LMTP is the host:port of the LMTP server that receives all mail for
	// Domains (Dovecot.LMTPAddr()). Required.
	LMTP string
	// Domains are delivered to LMTP (virtual_mailbox_domains). Mail to any
	// other domain is refused at RCPT time (relay access denied), so the
	// instance never sends mail off the machine. Required.
	Domains []string
	// Hostname is myhostname (Received fields, Message-IDs Postfix adds).
	// Empty means "mx.mailstack.test".
	Hostname string
	// TLS, when set, makes smtpd offer STARTTLS on the SMTP port and listen
	// on a second port with TLS from the first byte (SMTPS, RFC 8314 §3),
	// both with this certificate (NewTestCert).
	TLS *TestCert
}

// Postfix is a running private Postfix instance: smtpd on a free 127.0.0.1
// port, no DNS, every message for Domains delivered over LMTP.
type Postfix struct {
	dir       string
	confDir   string
	logPath   string
	smtpAddr  string
	smtpsAddr string

	cmd    *exec.Cmd
	exited chan struct{}

	stopOnce sync.Once
	stopErr  error
}

var postfixMainCf = template.Must(template.New("main.cf").Parse(`# Written by deskd internal/mailstack; private test instance.
compatibility_level = 3.6
queue_directory = {{.Dir}}/queue
data_directory = {{.Dir}}/data
daemon_directory = {{.DaemonDir}}
command_directory = {{.CommandDir}}
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file_prefixes = {{.Dir}}
maillog_file = {{.Dir}}/postfix.log
myhostname = {{.Hostname}}
mydomain = mailstack.test
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions = reject_unauth_destination
virtual_mailbox_domains = {{.Domains}}
virtual_transport = lmtp:inet:{{.LMTP}}
recipient_delimiter = +
relayhost =
default_transport = error:mailstack sends no mail off this machine
smtp_dns_support_level = disabled
smtp_host_lookup = native
lmtp_host_lookup = native
smtpd_peername_lookup = no
alias_maps =
alias_database =
local_recipient_maps =
biff = no
append_dot_mydomain = no
smtputf8_enable = yes
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
{{- if .TLS}}
smtpd_tls_cert_file = {{.TLS.CertFile}}
smtpd_tls_key_file = {{.TLS.KeyFile}}
smtpd_tls_security_level = may
smtpd_tls_received_header = yes
{{- end}}
`))

// master.cf: every service unchained (chroot n), smtpd only on our port.
var postfixMasterCf = template.Must(template.New("master.cf").Parse(`# Written by deskd internal/mailstack; private test instance.
{{.Listen}} inet n - n - - smtpd
{{- if .TLS}}
{{.ListenTLS}} inet n - n - - smtpd
  -o smtpd_tls_wrappermode=yes
  -o smtpd_tls_security_level=encrypt
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
{{- end}}
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`))

// StartPostfix writes a private configuration into opts.Dir, runs
// `postfix -c DIR/conf check` (creates the queue; its complaints and the log
// are returned on failure), then runs the master daemon in the foreground
// (`master -c DIR/conf`, what `postfix start` runs in the background) and
// waits until smtpd greets. ctx bounds start-up only. The caller must call
// Stop; the master also gets SIGTERM if the calling process dies.
func StartPostfix(ctx context.Context, opts PostfixOptions) (*Postfix, error) {
	if opts.Dir == "" || opts.LMTP == "" || len(opts.Domains) == 0 {
		return nil, errors.New("start postfix: Dir, LMTP and Domains are required")
	}
	if _, _, err := net.SplitHostPort(opts.LMTP); err != nil {
		return nil, fmt.Errorf("start postfix: LMTP %q: %w", opts.LMTP, err)
	}
	return retryOnPortClash(ctx, func() (*Postfix, error) { return startPostfixOnce(ctx, opts) })
}

func startPostfixOnce(ctx context.Context, opts PostfixOptions) (*Postfix, error) {
	dir, err := prepareDir(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("start postfix: %w", err)
	}
	p := &Postfix{dir: dir, confDir: filepath.Join(dir, "conf"), logPath: filepath.Join(dir, "postfix.log"), exited: make(chan struct{})}
	for _, sub := range []string{p.confDir, filepath.Join(dir, "queue"), filepath.Join(dir, "data")} {
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return nil, fmt.Errorf("start postfix: %w", err)
		}
	}
	if os.Geteuid() == 0 {
		uid, gid, err := ids("postfix")
		if err != nil {
			return nil, fmt.Errorf("start postfix: %w", err)
		}
		if err := os.Chown(filepath.Join(dir, "data"), uid, gid); err != nil {
			return nil, fmt.Errorf("start postfix: chown data dir: %w", err)
		}
	}

	ports, err := freePorts(2)
	if err != nil {
		return nil, fmt.Errorf("start postfix: %w", err)
	}
	p.smtpAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	if opts.TLS != nil {
		p.smtpsAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))
	}
	hostname := opts.Hostname
	if hostname == "" {
		hostname = "mx.mailstack.test"
	}
	postfix := lookPath(postfixBin)
	vars := map[string]any{
		"Dir":        dir,
		"DaemonDir":  filepath.Dir(lookPath(postfixMasterBin)),
		"CommandDir": filepath.Dir(postfix),
		"Hostname":   hostname,
		"Domains":    strings.Join(opts.Domains, ", "),
		"LMTP":       opts.LMTP,
		"Listen":     p.smtpAddr,
		"ListenTLS":  p.smtpsAddr,
		"TLS":        opts.TLS,
	}
	for name, tmpl := range map[string]*template.Template{"main.cf": postfixMainCf, "master.cf": postfixMasterCf} {
		var b bytes.Buffer
		if err := tmpl.Execute(&b, vars); err != nil {
			return nil, fmt.Errorf("start postfix: render %s: %w", name, err)
		}
		path := filepath.Join(p.confDir, name)
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			return nil, fmt.Errorf("start postfix: %w", err)
		}
		// Postfix rereads a table file changed within the current second
		// every 300 ms until it is older (dict_load_file), which costs
		// about 2 s per command on a fresh file; backdate it.
		old := time.Now().Add(-time.Minute)
		if err := os.Chtimes(path, old, old); err != nil {
			return nil, fmt.Errorf("start postfix: %w", err)
		}
	}

	// postfix(1) reports on stderr only when it is a terminal; otherwise
	// its complaints are in maillog_file.
	check := exec.CommandContext(ctx, postfix, "-c", p.confDir, "check")
	if out, err := check.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("start postfix: postfix check: %w\n%s\n--- postfix.log:\n%s", err, out, tail(p.logPath, 4000))
	}

	p.cmd = exec.Command(lookPath(postfixMasterBin), "-c", p.confDir)
	p.cmd.Env = append(os.Environ(), "MAIL_CONFIG="+p.confDir)
	// No Setpgid: the master makes itself a session leader (setsid fails
	// for a process group leader).
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	var out bytes.Buffer
	p.cmd.Stdout, p.cmd.Stderr = &out, &out
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start postfix: master: %w", err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.exited)
	}()

	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := waitGreeting(wctx, p.smtpAddr, "220", p.exited); err != nil {
		p.Stop()
		return nil, fmt.Errorf("start postfix: %w\n--- postfix.log:\n%s", err, tail(p.logPath, 4000))
	}
	if opts.TLS != nil {
		if err := waitGreetingTLS(wctx, p.smtpsAddr, "220", p.exited, opts.TLS.ClientConfig()); err != nil {
			p.Stop()
			return nil, fmt.Errorf("start postfix: smtps: %w\n--- postfix.log:\n%s", err, tail(p.logPath, 4000))
		}
	}
	return p, nil
}

// SMTPSAddr is the host:port of the SMTPS (implicit TLS) smtpd, "" without
// PostfixOptions.TLS.
func (p *Postfix) SMTPSAddr() string { return p.smtpsAddr }

// SMTPAddr is the host:port of smtpd. Clients on 127.0.0.1 may send to
// Domains without authentication.
func (p *Postfix) SMTPAddr() string { return p.smtpAddr }

// LogPath is Postfix's maillog_file.
func (p *Postfix) LogPath() string { return p.logPath }

// Log returns the end of the Postfix log, for failure messages.
func (p *Postfix) Log() string { return tail(p.logPath, 8000) }

// ConfigDir is the instance's config_directory, for `postfix -c DIR ...` or
// `postqueue -c DIR -p`.
func (p *Postfix) ConfigDir() string { return p.confDir }

// Stop runs `postfix -c DIR stop`, waits up to 3 s for the master to end and
// then kills its session's process group. Safe to call more than once.
func (p *Postfix) Stop() error {
	p.stopOnce.Do(func() {
		if p.cmd == nil || p.cmd.Process == nil {
			return
		}
		pid := p.cmd.Process.Pid
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		stopErr := exec.CommandContext(ctx, lookPath(postfixBin), "-c", p.confDir, "stop").Run()
		select {
		case <-p.exited:
		case <-time.After(3 * time.Second):
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			_ = syscall.Kill(pid, syscall.SIGKILL)
			<-p.exited
			p.stopErr = fmt.Errorf("stop postfix: killed after 3 s (postfix stop: %v)", stopErr)
		}
		// Daemons still finishing a request belong to the master's session.
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	})
	return p.stopErr
}
