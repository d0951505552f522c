package mailout

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"regexp"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"

	"github.com/deskd/deskd/internal/config"
)

// transport holds the SMTP connections of a Sender: at most max at once (a semaphore), idle ones kept
// for reuse. go-mail's Client dials, negotiates TLS and authenticates; transport then drives the
// transaction itself so that the stored bytes are sent unchanged.
type transport struct {
	dialer  *gomail.Client
	timeout time.Duration
	sem     chan struct{}
	idle    chan *smtp.Client
}

// newTransport checks cfg's security rules and prepares a go-mail Client for it:
//
//   - tls implicit: TLS from the first byte (RFC 8314 §3); starttls: STARTTLS required (RFC 3207);
//     opportunistic: STARTTLS when offered; none: plaintext.
//   - Plaintext (none), and passwords sent without guaranteed TLS (plain/login with none or
//     opportunistic), are refused unless the host is loopback or cfg.AllowInsecure is set.
//   - auth plain (RFC 4616), login, cram-md5 (RFC 2195), or none.
func newTransport(cfg config.SMTP, helo string, tlsConf *tls.Config) (*transport, error) {
	if cfg.Host == "" {
		return nil, errors.New("configure smtp: no host")
	}
	insecureOK := cfg.AllowInsecure || isLoopback(cfg.Host)
	guaranteedTLS := cfg.TLS == config.TLSImplicit || cfg.TLS == config.TLSStartTLS || cfg.TLS == ""
	if cfg.TLS == config.TLSNone && !insecureOK {
		return nil, fmt.Errorf("configure smtp: tls none to non-loopback host %s needs allow_insecure", cfg.Host)
	}
	if tlsConf == nil {
		tlsConf = &tls.Config{MinVersion: tls.VersionTLS12}
	} else {
		tlsConf = tlsConf.Clone()
	}
	if tlsConf.ServerName == "" {
		tlsConf.ServerName = cfg.Host
	}
	tlsConf.InsecureSkipVerify = tlsConf.InsecureSkipVerify || cfg.InsecureSkipVerify //nolint:gosec // operator's explicit choice
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	if helo == "" {
		helo = "localhost"
	}
	opts := []gomail.Option{gomail.WithTimeout(timeout), gomail.WithHELO(helo), gomail.WithTLSConfig(tlsConf)}
	switch cfg.TLS {
	case config.TLSImplicit:
		opts = append(opts, gomail.WithSSL())
	case config.TLSStartTLS, "":
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case config.TLSOpportunistic:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	case config.TLSNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	default:
		return nil, fmt.Errorf("configure smtp: unknown tls mode %q", cfg.TLS)
	}
	if cfg.Port > 0 {
		opts = append(opts, gomail.WithPort(cfg.Port))
	}
	var auth gomail.SMTPAuthType
	switch cfg.Auth {
	case config.AuthNone, "":
		auth = gomail.SMTPAuthNoAuth
	case config.AuthPlain, config.AuthLogin:
		if !guaranteedTLS && !insecureOK {
			return nil, fmt.Errorf("configure smtp: auth %s without guaranteed TLS to %s needs allow_insecure", cfg.Auth, cfg.Host)
		}
		switch {
		case cfg.Auth == config.AuthPlain && guaranteedTLS:
			auth = gomail.SMTPAuthPlain
		case cfg.Auth == config.AuthPlain:
			auth = gomail.SMTPAuthPlainNoEnc
		case guaranteedTLS:
			auth = gomail.SMTPAuthLogin
		default:
			auth = gomail.SMTPAuthLoginNoEnc
		}
	case config.AuthCRAMMD5:
		auth = gomail.SMTPAuthCramMD5
	default:
		return nil, fmt.Errorf("configure smtp: unknown auth %q", cfg.Auth)
	}
	if auth != gomail.SMTPAuthNoAuth {
		opts = append(opts, gomail.WithSMTPAuth(auth), gomail.WithUsername(cfg.User), gomail.WithPassword(cfg.Password))
	}
	c, err := gomail.NewClient(cfg.Host, opts...)
	if err != nil {
		return nil, fmt.Errorf("configure smtp: %w", err)
	}
	n := cfg.MaxConnections
	if n <= 0 {
		n = 4
	}
	return &transport{dialer: c, timeout: timeout, sem: make(chan struct{}, n), idle: make(chan *smtp.Client, n)}, nil
}

// isLoopback reports whether host names the local machine.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// get returns a connection ready for a mail transaction, waiting while max connections are in use.
// An idle connection is checked with RSET (RFC 5321 §4.1.1.5) and replaced when dead. The caller must
// hand it back with put.
func (t *transport) get(ctx context.Context) (*smtp.Client, error) {
	select {
	case t.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	for {
		select {
		case c := <-t.idle:
			if err := c.UpdateDeadline(t.timeout); err == nil {
				if err := c.Reset(); err == nil {
					return c, nil
				}
			}
			_ = c.Close()
			continue
		default:
		}
		c, err := t.dialer.DialToSMTPClientWithContext(ctx)
		if err != nil {
			<-t.sem
			return nil, fmt.Errorf("dial smtp: %w", err)
		}
		return c, nil
	}
}

// put returns c for reuse, or closes it when reuse is false (after a network error).
func (t *transport) put(c *smtp.Client, reuse bool) {
	defer func() { <-t.sem }()
	if reuse {
		select {
		case t.idle <- c:
			return
		default:
		}
	}
	_ = c.Close()
}

// close ends every idle connection politely (QUIT).
func (t *transport) close() {
	for {
		select {
		case c := <-t.idle:
			_ = c.Quit()
		default:
			return
		}
	}
}

// rcptFailure is a recipient the server refused.
type rcptFailure struct {
	email string
	err   error
}

// delivery is the result of one SMTP transaction.
type delivery struct {
	accepted  bool          // the server accepted DATA (250 after the final dot)
	temporary error         // retry later (4xx, network, TLS)
	permanent error         // give up on the whole mail (5xx on MAIL, DATA, or every RCPT)
	refused   []rcptFailure // recipients refused with 5xx
	broken    bool          // the connection must not be reused
}

// deliver runs one mail transaction (RFC 5321 §3.3) on c: MAIL FROM, one RCPT TO per recipient,
// DATA with raw. Recipients refused permanently are reported in refused and the mail goes to the
// others; any temporary refusal aborts the transaction with RSET so that the whole mail is retried.
// The transaction is bounded by the transport timeout.
func (t *transport) deliver(c *smtp.Client, from string, rcpts []string, raw []byte) delivery {
	var d delivery
	if err := c.UpdateDeadline(t.timeout); err != nil {
		return delivery{temporary: fmt.Errorf("set deadline: %w", err), broken: true}
	}
	fail := func(stage string, err error) delivery {
		err = fmt.Errorf("%s: %w", stage, err)
		code, _ := replyCode(err)
		switch {
		case code >= 500:
			d.permanent = err
			_ = c.Reset()
		case code >= 400:
			d.temporary = err
			_ = c.Reset()
		default:
			d.temporary, d.broken = err, true
		}
		return d
	}
	if err := c.Mail(from); err != nil {
		return fail("mail from", err)
	}
	var accepted []string
	var tempErr error
	for _, r := range rcpts {
		err := c.Rcpt(r)
		if err == nil {
			accepted = append(accepted, r)
			continue
		}
		code, _ := replyCode(err)
		switch {
		case code >= 500:
			d.refused = append(d.refused, rcptFailure{email: r, err: fmt.Errorf("rcpt to %s: %w", r, err)})
		case code >= 400:
			tempErr = fmt.Errorf("rcpt to %s: %w", r, err)
		default:
			return fail("rcpt to "+r, err)
		}
	}
	if tempErr != nil {
		d.temporary = tempErr
		if err := c.Reset(); err != nil {
			d.broken = true
		}
		return d
	}
	if len(accepted) == 0 {
		d.permanent = errors.New("every recipient refused")
		if err := c.Reset(); err != nil {
			d.broken = true
		}
		return d
	}
	w, err := c.Data()
	if err != nil {
		return fail("data", err)
	}
	if _, err := w.Write(raw); err != nil {
		_ = w.Close()
		d.temporary, d.broken = fmt.Errorf("write message: %w", err), true
		return d
	}
	if err := w.Close(); err != nil {
		return fail("end of data", err)
	}
	d.accepted = true
	return d
}

// replyCode returns the SMTP reply code (RFC 5321 §4.2) and enhanced status code (RFC 3463, "" when
// none) carried by err, or 0 when err is not an SMTP reply (network, TLS, timeout).
func replyCode(err error) (int, string) {
	var te *textproto.Error
	if !errors.As(err, &te) {
		return 0, ""
	}
	return te.Code, enhancedCode.FindString(te.Msg)
}

var enhancedCode = regexp.MustCompile(`^[245]\.\d{1,3}\.\d{1,3}\b`)

// mailboxGone reports whether a permanent refusal says the mailbox does not exist or cannot take
// mail (RFC 3463 §3.2, X.1.x "addressing status"; or a bare 550/551/553 at RCPT with no enhanced
// code), which makes the contact undeliverable.
func mailboxGone(err error) bool {
	code, enh := replyCode(err)
	if enh != "" {
		return strings.HasPrefix(enh, "5.1.")
	}
	return code == 550 || code == 551 || code == 553
}
