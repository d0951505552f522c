package mailin

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// TLS modes of MailboxConfig.TLS.
const (
	TLSImplicit = "implicit" // TLS from the first byte (IMAPS, RFC 8314 §3.2)
	TLSStartTLS = "starttls" // plaintext upgraded with STARTTLS (RFC 3501 §6.2.1)
	TLSNone     = "none"     // no TLS: loopback only unless AllowInsecure
)

// Authentication mechanisms of MailboxConfig.Auth.
const (
	AuthPlain = "plain" // SASL PLAIN (RFC 4616)
	AuthLogin = "login" // SASL LOGIN when offered, else the IMAP LOGIN command (RFC 3501 §6.2.3)
)

// Failpoint names passed to PollerOptions.Failpoint.
const (
	FailAfterStore  = "after-store"  // a chunk's raw rows and checkpoint committed, not yet ingested
	FailAfterCommit = "after-commit" // the chunk's ingest committed, \Seen not yet set
	FailBeforeSeen  = "before-seen"  // right before STORE +FLAGS (\Seen) of processed messages
)

// MailboxConfig is one IMAP mailbox a Poller reads.
type MailboxConfig struct {
	// Name identifies the mailbox in raw_mails, mailbox_state, the advisory lock and logs. It must
	// stay stable: the UID checkpoint is keyed by it.
	Name string
	Host string
	Port int    // 0: 993 for implicit TLS, 143 otherwise
	TLS  string // implicit (default), starttls or none
	// AllowInsecure permits TLS none to a host that is not loopback (the password travels in clear).
	AllowInsecure      bool
	InsecureSkipVerify bool
	Auth               string // plain (default) or login
	User, Password     string
	Folder             string // default INBOX
	// ProcessedFolder, when set, receives every processed message (MOVE, RFC 6851); it is created
	// when missing. When empty, processed messages stay in Folder with \Seen.
	ProcessedFolder string
}

// PollerOptions tune a Poller. Zero values take the documented defaults.
type PollerOptions struct {
	// MaxMessageBytes caps the size of a fetched message (default 25 MiB). A larger message is not
	// fetched: it is stored quarantined without its bytes and left unseen in the mailbox.
	MaxMessageBytes int64
	// PollInterval is the delay between polls when the server lacks IDLE or DisableIdle is set
	// (default 60s).
	PollInterval time.Duration
	// IdleRefresh is how long one IDLE lasts before it is re-issued (default 25m; RFC 2177 §3 asks
	// for less than 29 minutes).
	IdleRefresh time.Duration
	// ReconnectMin and ReconnectMax bound the exponential, jittered reconnect delay (defaults 1s, 2m).
	ReconnectMin, ReconnectMax time.Duration
	// LockRetry is how often a standby poller tries to take the mailbox lock, and how often the active
	// one checks that its lock connection is alive (default 5s).
	LockRetry time.Duration
	Log       *slog.Logger
	// DisableIdle polls even when the server offers IDLE; DisableMove uses UID COPY + \Deleted +
	// EXPUNGE even when it offers MOVE. For tests and broken servers.
	DisableIdle, DisableMove bool
	// TLSConfig, when set, is the base TLS configuration (tests with self-signed certificates).
	TLSConfig *tls.Config
	// Failpoint, when set, is called at the named points: FailAfterStore and FailAfterCommit once
	// per fetched chunk, FailBeforeSeen before every STORE \Seen batch (also during recovery).
	// Tests use it to kill the process there; nil in production.
	Failpoint func(point string)

	// moveBatch overrides moveBatch (tests of the background flagging with small backlogs).
	moveBatch int
}

const (
	defaultMaxMessageBytes = 25 << 20
	// chunkMessages and chunkBytes bound one fetch-store-ingest round, so memory stays bounded
	// whatever the mailbox holds. 200 messages, the ingest's batch, make transactions of about 50
	// messages: a statement's start-up and a commit are shared by twice as many as with 100
	// (deskd bench: 2,294-2,347 msgs/s against 2,070-2,163, 0.73-0.76 ms of CPU a message against
	// 0.80-0.84; commit p50 under bulk load 125 ms against 70).
	chunkMessages = 200
	chunkBytes    = 32 << 20
	// overlapBytes caps the bytes of the chunk being ingested plus the chunk being fetched beside it.
	overlapBytes = 16 << 20
	// commandTimeout is the watchdog of one IMAP exchange: the connection is closed when a server
	// does not answer in time (go-imap waits forever for the first byte of a response).
	commandTimeout = 5 * time.Minute
	// logoutTimeout bounds the LOGOUT sent on shutdown.
	logoutTimeout = 5 * time.Second
)

// Poller copies new mail of one IMAP mailbox into raw_mails and has the Ingester process it
// (DESIGN.md data flow). Exactly-once rests on three facts: a message's raw row and the UID
// checkpoint commit in one transaction before anything else happens to it; raw rows are unique per
// (mailbox, UIDVALIDITY, UID); and everything after that commit (ingest, \Seen, MOVE) is idempotent
// and re-driven from the database after a crash. Only one Poller per mailbox is active across all
// replicas: it holds a session-level advisory lock while it polls (DESIGN.md invariant 3).
type Poller struct {
	pool *pgxpool.Pool
	ing  *Ingester
	mb   MailboxConfig
	o    PollerOptions
	log  *slog.Logger
}

// NewPoller returns a Poller for mb that stores mail through pool and ingests it with ing. It does
// no I/O; Run validates mb.
func NewPoller(pool *pgxpool.Pool, ing *Ingester, mb MailboxConfig, o PollerOptions) *Poller {
	if mb.Folder == "" {
		mb.Folder = "INBOX"
	}
	if mb.TLS == "" {
		mb.TLS = TLSImplicit
	}
	if mb.Auth == "" {
		mb.Auth = AuthPlain
	}
	if mb.Port == 0 {
		mb.Port = 143
		if mb.TLS == TLSImplicit {
			mb.Port = 993
		}
	}
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = defaultMaxMessageBytes
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 60 * time.Second
	}
	if o.IdleRefresh <= 0 {
		o.IdleRefresh = 25 * time.Minute
	}
	if o.ReconnectMin <= 0 {
		o.ReconnectMin = time.Second
	}
	if o.ReconnectMax <= 0 {
		o.ReconnectMax = 2 * time.Minute
	}
	if o.ReconnectMax < o.ReconnectMin {
		o.ReconnectMax = o.ReconnectMin
	}
	if o.LockRetry <= 0 {
		o.LockRetry = 5 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Poller{pool: pool, ing: ing, mb: mb, o: o, log: o.Log.With("mailbox", mb.Name)}
}

// validate rejects configurations that can never work; Run returns these instead of retrying.
func (p *Poller) validate() error {
	mb := p.mb
	if mb.Name == "" || mb.Host == "" || mb.User == "" {
		return errors.New("mailbox name, host and user are required")
	}
	switch mb.TLS {
	case TLSImplicit, TLSStartTLS:
	case TLSNone:
		if !mb.AllowInsecure && !isLoopback(mb.Host) {
			return fmt.Errorf("tls none to %s would send the password in clear: use implicit or starttls, or set allow_insecure", mb.Host)
		}
	default:
		return fmt.Errorf("unknown tls mode %q (implicit, starttls, none)", mb.TLS)
	}
	switch mb.Auth {
	case AuthPlain, AuthLogin:
	default:
		return fmt.Errorf("unknown auth %q (plain, login)", mb.Auth)
	}
	return nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Run polls the mailbox until ctx is cancelled, then logs out and returns nil. It returns an error
// only for a configuration that can never work; transient failures (network, server, database) are
// logged once each and retried with a capped exponential backoff. While another replica holds the
// mailbox lock, Run waits as a standby and takes over when that replica's connection ends.
func (p *Poller) Run(ctx context.Context) error {
	if err := p.validate(); err != nil {
		return fmt.Errorf("mailbox %s: %w", p.mb.Name, err)
	}
	standbyLogged := false
	lockFail := backoff{min: p.o.ReconnectMin, max: p.o.ReconnectMax}
	for {
		lock, err := p.tryLock(ctx)
		switch {
		case ctx.Err() != nil:
			if lock != nil {
				lock.release(ctx)
			}
			return nil
		case err != nil:
			d := lockFail.next()
			p.log.Warn("mailbox lock unavailable", "err", err, "retry_in", d)
			if !sleep(ctx, d) {
				return nil
			}
			continue
		case lock == nil:
			lockFail.reset()
			if !standbyLogged {
				p.log.Info("mailbox poller standby: another replica holds the mailbox lock", "retry_every", p.o.LockRetry)
				standbyLogged = true
			}
			if !sleep(ctx, p.o.LockRetry) {
				return nil
			}
			continue
		}
		lockFail.reset()
		standbyLogged = false
		p.log.Info("mailbox poller active")
		p.runActive(ctx, lock)
		lock.release(ctx)
		if ctx.Err() != nil {
			return nil
		}
	}
}

// runActive runs IMAP sessions, reconnecting with backoff, until ctx ends or the lock is lost.
func (p *Poller) runActive(ctx context.Context, lock *mailboxLock) {
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := lock.watch(actx, p.o.LockRetry); err != nil && actx.Err() == nil {
			p.log.Warn("mailbox lock lost; stopping this poller", "err", err)
			cancel()
		}
	}()
	defer wg.Wait()
	defer cancel()

	bo := backoff{min: p.o.ReconnectMin, max: p.o.ReconnectMax}
	for {
		err := p.session(actx, bo.reset)
		if actx.Err() != nil {
			return
		}
		d := bo.next()
		p.log.Warn("mailbox session failed", "err", err, "retry_in", d)
		if !sleep(actx, d) {
			return
		}
	}
}

// mailboxLock is a session-level advisory lock held on a dedicated pooled connection.
type mailboxLock struct {
	conn *pgxpool.Conn
	key  string
}

// tryLock takes the mailbox's advisory lock without waiting. It returns nil, nil when another
// session holds it.
func (p *Poller) tryLock(ctx context.Context) (*mailboxLock, error) {
	conn, err := p.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("acquire lock connection: %w", err)
	}
	key := "deskd/mailbox/" + p.mb.Name
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtext($1))`, key).Scan(&ok); err != nil {
		conn.Release()
		return nil, fmt.Errorf("try mailbox lock: %w", err)
	}
	if !ok {
		conn.Release()
		return nil, nil
	}
	return &mailboxLock{conn: conn, key: key}, nil
}

// watch pings the lock's connection every interval until ctx ends; an error means the session, and
// with it the lock, may be gone.
func (l *mailboxLock) watch(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if _, err := l.conn.Exec(ctx, `SELECT 1`); err != nil {
			return fmt.Errorf("ping lock connection: %w", err)
		}
	}
}

// release unlocks and returns the connection; if unlocking fails the connection is closed, which
// ends the session and so the lock.
func (l *mailboxLock) release(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := l.conn.Exec(ctx, `SELECT pg_advisory_unlock(hashtext($1))`, l.key); err != nil {
		l.conn.Conn().Close(ctx) //nolint:errcheck // closing ends the session and its locks either way
	}
	l.conn.Release()
}

// backoff is a capped exponential delay with jitter: each delay is drawn from [d/2, d] where d
// doubles from min up to max.
type backoff struct {
	min, max time.Duration
	n        int
}

func (b *backoff) next() time.Duration {
	d := b.min
	for i := 0; i < b.n && d < b.max; i++ {
		d *= 2
	}
	d = min(d, b.max)
	if b.n < 32 {
		b.n++
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

func (b *backoff) reset() { b.n = 0 }

// sleep waits d or until ctx ends; it reports whether the full delay elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// failpoint calls the test hook, if any.
func (p *Poller) failpoint(point string) {
	if p.o.Failpoint != nil {
		p.o.Failpoint(point)
	}
}
