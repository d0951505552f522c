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
	"unicode/utf8"

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
	idle    chan idleConn
}

// idleConn is a connection waiting for its next mail, and when it was handed back.
type idleConn struct {
	c     *smtp.Client
	since time.Time
}

// recheckAfter is how long a connection may sit idle and still be reused without an RSET first. A
// server drops idle clients after minutes (RFC 5321 §4.5.3.2.7: at least 5); while the sender is busy
// every connection comes back within milliseconds, and the check would cost a round trip per mail.
const recheckAfter = 2 * time.Second

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
	return &transport{dialer: c, timeout: timeout, sem: make(chan struct{}, n), idle: make(chan idleConn, n)}, nil
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
// A connection idle for longer than recheckAfter is checked with RSET (RFC 5321 §4.1.1.5) and
// replaced when dead. The caller must hand it back with put.
func (t *transport) get(ctx context.Context) (c *smtp.Client, reused bool, err error) {
	select {
	case t.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
	for {
		select {
		case ic := <-t.idle:
			if err := ic.c.UpdateDeadline(t.timeout); err == nil {
				if time.Since(ic.since) < recheckAfter {
					return ic.c, true, nil
				}
				if err := ic.c.Reset(); err == nil {
					return ic.c, true, nil
				}
			}
			_ = ic.c.Close()
			continue
		default:
		}
		c, err := t.dialer.DialToSMTPClientWithContext(ctx)
		if err != nil {
			<-t.sem
			return nil, false, fmt.Errorf("dial smtp: %w", err)
		}
		return c, false, nil
	}
}

// send delivers one mail on a pooled connection. ready is asked once a connection is at hand; when it
// says no, nothing is sent (attempted false). A reused connection that fails before the relay has
// answered anything (it dropped the connection while it sat idle) is replaced by a new one and the
// mail tried once more at once, if ready still agrees: the relay took nothing, so this cannot
// duplicate it.
func (t *transport) send(ctx context.Context, from string, rcpts []string, raw []byte, ready func() bool) (d delivery, attempted bool, err error) {
	c, reused, err := t.get(ctx)
	if err != nil {
		return delivery{}, false, err
	}
	if ready != nil && !ready() {
		t.put(c, true)
		return delivery{}, false, nil
	}
	d = t.deliver(c, from, rcpts, raw)
	if reused && d.broken && d.unanswered && (ready == nil || ready()) {
		_ = c.Close()
		if c, err = t.dialer.DialToSMTPClientWithContext(ctx); err != nil {
			<-t.sem
			return delivery{temporary: fmt.Errorf("dial smtp: %w", err), broken: true}, true, nil
		}
		d = t.deliver(c, from, rcpts, raw)
	}
	t.put(c, !d.broken)
	return d, true, nil
}

// put returns c for reuse, or closes it when reuse is false (after a network error).
func (t *transport) put(c *smtp.Client, reuse bool) {
	defer func() { <-t.sem }()
	if reuse {
		select {
		case t.idle <- idleConn{c: c, since: time.Now()}:
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
		case ic := <-t.idle:
			_ = ic.c.Quit()
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
	// unanswered: the connection failed before the server replied to anything of this transaction
	unanswered bool
}

// deliver runs one mail transaction (RFC 5321 §3.3) on c: MAIL FROM, one RCPT TO per recipient,
// DATA with raw. Recipients refused permanently are reported in refused and the mail goes to the
// others; any temporary refusal aborts the transaction so that the whole mail is retried. The
// transaction is bounded by the transport timeout.
func (t *transport) deliver(c *smtp.Client, from string, rcpts []string, raw []byte) delivery {
	if err := c.UpdateDeadline(t.timeout); err != nil {
		return delivery{temporary: fmt.Errorf("set deadline: %w", err), broken: true}
	}
	for _, a := range append([]string{from}, rcpts...) {
		if strings.ContainsAny(a, "\r\n<>") {
			return delivery{permanent: fmt.Errorf("envelope address %q: contains CR, LF or angle brackets", a)}
		}
	}
	r, err := exchangeEnvelope(c, from, rcpts)
	if err != nil {
		return delivery{temporary: err, broken: true, unanswered: r.unanswered}
	}
	var d delivery
	// After a 354 the server waits for the message; closing the connection is the only way left to
	// abandon the transaction (RFC 5321 §3.3), and it delivers nothing.
	waiting := r.dataSent && r.data == nil
	if r.mail != nil { // no transaction was opened: nothing to reset
		d = d.fail(nil, "mail from", r.mail)
		d.broken = d.broken || waiting
		return d
	}
	var tempErr error
	for i, rcpt := range rcpts {
		d.rcpt(rcpt, r.rcpt[i], &tempErr)
	}
	if tempErr != nil || len(d.refused) == len(rcpts) {
		return d.abort(c, tempErr, waiting)
	}
	if r.data != nil {
		return d.fail(c, "data", r.data)
	}
	dw := c.Text.DotWriter()
	if _, err := dw.Write(raw); err != nil {
		d.temporary, d.broken = fmt.Errorf("write message: %w", err), true
		return d
	}
	if err := dw.Close(); err != nil {
		d.temporary, d.broken = fmt.Errorf("write message: %w", err), true
		return d
	}
	if _, _, err := c.Text.ReadResponse(250); err != nil {
		return d.fail(c, "end of data", err)
	}
	d.accepted = true
	return d
}

// envelopeReplies are the server's replies to MAIL, each RCPT and DATA (nil: accepted).
type envelopeReplies struct {
	mail       error
	rcpt       []error
	data       error
	dataSent   bool // DATA went out (data is its reply)
	unanswered bool // the connection failed before any reply
}

// exchangeEnvelope sends the envelope and DATA and collects the replies. When the server offers
// PIPELINING (RFC 2920 §3.1) every command goes out in one write and the replies are read after it,
// every one of them, so the connection stays in step whatever the server refused: the transaction
// then takes two round trips instead of three plus one per recipient. Otherwise each command waits
// for its reply, and DATA is sent only when every recipient was accepted or refused for good with at
// least one accepted. The error is a failure of the connection, not a reply.
func exchangeEnvelope(c *smtp.Client, from string, rcpts []string) (envelopeReplies, error) {
	r := envelopeReplies{rcpt: make([]error, len(rcpts))}
	pipelining, _ := c.Extension("PIPELINING")
	w := c.Text.W
	// read returns the reply to stage's command (nil when it is code) or the connection's failure.
	read := func(stage string, code int) (reply, failed error) {
		_, _, err := c.Text.ReadResponse(code)
		if isNetErr(err) {
			return nil, fmt.Errorf("%s: %w", stage, err)
		}
		return err, nil
	}
	write := func(line string) { w.WriteString(line + "\r\n") }
	flush := func(stage string) error {
		if err := w.Flush(); err != nil {
			return fmt.Errorf("%s: %w", stage, err)
		}
		return nil
	}
	var err error
	mail := "MAIL FROM:<" + from + ">" + mailParams(c, from, rcpts)
	if pipelining {
		write(mail)
		for _, rcpt := range rcpts {
			write("RCPT TO:<" + rcpt + ">")
		}
		write("DATA")
		r.dataSent = true
		if err = flush("send envelope"); err == nil {
			r.mail, err = read("mail from", 250)
		}
		if err != nil {
			r.unanswered = true
			return r, err
		}
		for i, rcpt := range rcpts {
			if r.rcpt[i], err = read("rcpt to "+rcpt, 25); err != nil {
				return r, err
			}
		}
		r.data, err = read("data", 354)
		return r, err
	}
	write(mail)
	if err = flush("mail from"); err == nil {
		r.mail, err = read("mail from", 250)
	}
	if err != nil || r.mail != nil {
		r.unanswered = err != nil
		return r, err
	}
	accepted, deferred := false, false
	for i, rcpt := range rcpts {
		write("RCPT TO:<" + rcpt + ">")
		if err = flush("rcpt to " + rcpt); err == nil {
			r.rcpt[i], err = read("rcpt to "+rcpt, 25)
		}
		if err != nil {
			return r, err
		}
		code, _ := replyCode(r.rcpt[i])
		accepted, deferred = accepted || r.rcpt[i] == nil, deferred || code >= 400 && code < 500
	}
	if !accepted || deferred {
		return r, nil
	}
	write("DATA")
	r.dataSent = true
	if err = flush("data"); err == nil {
		r.data, err = read("data", 354)
	}
	return r, err
}

// mailParams are the MAIL FROM parameters for this server: BODY=8BITMIME when offered (RFC 6152),
// as go-mail's Client.Mail adds it, and SMTPUTF8 (RFC 6531) when an address needs it.
func mailParams(c *smtp.Client, from string, rcpts []string) string {
	p := ""
	if ok, _ := c.Extension("8BITMIME"); ok {
		p += " BODY=8BITMIME"
	}
	nonASCII := func(r rune) bool { return r >= utf8.RuneSelf }
	if ok, _ := c.Extension("SMTPUTF8"); ok && strings.IndexFunc(from+strings.Join(rcpts, ""), nonASCII) >= 0 {
		p += " SMTPUTF8"
	}
	return p
}

// isNetErr reports whether err is a failure of the connection rather than an SMTP reply.
func isNetErr(err error) bool {
	if err == nil {
		return false
	}
	var te *textproto.Error
	return !errors.As(err, &te)
}

// fail records a failed command: a 5xx reply makes the mail permanently failed, a 4xx temporarily,
// anything else (network, TLS, timeout) temporarily with the connection broken. After a reply the
// transaction is reset with RSET (when c is not nil) so the connection can carry the next mail.
func (d delivery) fail(c *smtp.Client, stage string, err error) delivery {
	err = fmt.Errorf("%s: %w", stage, err)
	code, _ := replyCode(err)
	switch {
	case code >= 500:
		d.permanent = err
	case code >= 400:
		d.temporary = err
	default:
		d.temporary, d.broken = err, true
		return d
	}
	if c != nil && c.Reset() != nil {
		d.broken = true
	}
	return d
}

// rcpt files one RCPT reply: a 5xx refusal (or any reply other than 2xx and 4xx) goes to refused,
// the first 4xx to tempErr.
func (d *delivery) rcpt(r string, err error, tempErr *error) {
	if err == nil {
		return
	}
	if code, _ := replyCode(err); code >= 400 && code < 500 {
		if *tempErr == nil {
			*tempErr = fmt.Errorf("rcpt to %s: %w", r, err)
		}
		return
	}
	d.refused = append(d.refused, rcptFailure{email: r, err: fmt.Errorf("rcpt to %s: %w", r, err)})
}

// abort gives up a transaction whose recipients were all refused (permanent) or one of them deferred
// (temporary: the whole mail is retried). A server already waiting for the message (after 354) can
// only be left by closing the connection; otherwise RSET ends the transaction.
func (d delivery) abort(c *smtp.Client, tempErr error, waiting bool) delivery {
	if tempErr != nil {
		d.temporary = tempErr
	} else {
		d.permanent = errors.New("every recipient refused")
	}
	if waiting || c.Reset() != nil {
		d.broken = true
	}
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
