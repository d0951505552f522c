// Package config loads deskd's configuration: one YAML file plus DESKD_*
// environment variables, decoded into a typed [Config] and validated.
//
// It is the only package of deskd that imports viper. Every other package
// receives the parts of a [Config] it needs from cmd/deskd; nothing reads
// configuration globally.
//
// # Sources and precedence
//
// From lowest to highest priority:
//
//  1. the defaults of [Default] (and, for list items, [Config.ApplyDefaults]);
//  2. the YAML file;
//  3. DESKD_<SECTION>_<KEY> environment variables, one per scalar key, for
//     example DESKD_DATABASE_URL, DESKD_SMTP_PORT, DESKD_DESK_SECRET;
//  4. indexed DESKD_<LIST>_<INDEX>_<KEY> variables for the items of the lists
//     mailboxes, queues and agents, for example DESKD_MAILBOXES_0_PASSWORD
//     or DESKD_QUEUES_1_KEY_PREFIX.
//
// Every password and secret has a sibling *_file key naming a file that holds
// it (a trailing newline is trimmed), so secrets can come from container
// secret mounts: DESKD_DESK_SECRET_FILE=/run/secrets/deskd.
//
// # Value syntax
//
// Durations use Go syntax ("30s", "1h30m"); a bare number is rejected so
// that "timeout: 30" cannot silently mean 30ns. Sizes are bytes, given as a
// number or with a unit (see [ByteSize]).
package config

import (
	"log/slog"
	"time"
)

// TLS modes for [Mailbox.TLS] and [SMTP.TLS].
const (
	// TLSImplicit starts TLS on connect (IMAPS port 993, SMTPS port 465);
	// RFC 8314 §3 recommends it over STARTTLS.
	TLSImplicit = "implicit"
	// TLSStartTLS upgrades a plaintext connection with STARTTLS and fails
	// when the server does not offer it (RFC 3501 §6.2.1, RFC 3207).
	TLSStartTLS = "starttls"
	// TLSOpportunistic uses STARTTLS when the SMTP server offers it and
	// continues in plaintext otherwise. SMTP only.
	TLSOpportunistic = "opportunistic"
	// TLSNone never uses TLS.
	TLSNone = "none"
)

// Authentication mechanisms for [Mailbox.Auth] and [SMTP.Auth].
const (
	// AuthNone sends no credentials. SMTP only.
	AuthNone = "none"
	// AuthPlain is SASL PLAIN (RFC 4616).
	AuthPlain = "plain"
	// AuthLogin is the non-standard but widespread SASL LOGIN mechanism.
	AuthLogin = "login"
	// AuthCRAMMD5 is SASL CRAM-MD5 (RFC 2195). SMTP only.
	AuthCRAMMD5 = "cram-md5"
)

// Log output formats for [Log.Format].
const (
	// LogFormatAuto writes text to a terminal and JSON otherwise.
	LogFormatAuto = "auto"
	// LogFormatText writes slog's key=value text format.
	LogFormatText = "text"
	// LogFormatJSON writes one JSON object per line.
	LogFormatJSON = "json"
)

// Agent roles for [Agent.Role]. What each role may do is decided by the
// packages that enforce it; configuration only names them.
const (
	// RoleAgent is an ordinary agent.
	RoleAgent = "agent"
	// RoleLead is a team lead.
	RoleLead = "lead"
	// RoleManager is a manager.
	RoleManager = "manager"
	// RoleAdmin is an administrator.
	RoleAdmin = "admin"
)

// Config is deskd's complete configuration. Load returns it decoded and
// validated; [Default] returns it with every default set. The yaml tags name
// the keys of the configuration file.
//
// A Config is plain data: it is safe for concurrent reads and its methods
// never modify it, except [Config.ApplyDefaults].
type Config struct {
	Database  Database  `yaml:"database"`
	HTTP      HTTP      `yaml:"http"`
	Log       Log       `yaml:"log"`
	Desk      Desk      `yaml:"desk"`
	MailIn    MailIn    `yaml:"mailin"`
	Mailboxes []Mailbox `yaml:"mailboxes"`
	SMTP      SMTP      `yaml:"smtp"`
	MailOut   MailOut   `yaml:"mailout"`
	Queues    []Queue   `yaml:"queues"`
	Agents    []Agent   `yaml:"agents"`

	// SLA is reserved for the SLA policies (calendars, targets, escalation
	// ladders) that a later change defines. It is decoded but not validated.
	SLA map[string]any `yaml:"sla"`
	// Rules is reserved for the rule definitions (conditions and actions)
	// that a later change defines. It is decoded but not validated.
	Rules []map[string]any `yaml:"rules"`
	// Templates configures mail template overrides.
	Templates Templates `yaml:"templates"`
	// Digests is reserved for the scheduled digest reports that a later
	// change defines. It is decoded but not validated.
	Digests []map[string]any `yaml:"digests"`

	// Source is the path of the file Load read, or "" when it found none
	// and used defaults and the environment only. It is not a file key.
	Source string `yaml:"-"`
}

// Database configures the PostgreSQL connection pool.
type Database struct {
	// URL is a libpq connection URL or keyword/value string, as accepted by
	// pgx. Default: postgres://postgres@127.0.0.1:5432/deskd?sslmode=disable.
	URL string `yaml:"url"`
	// MaxConns caps the pool size. Default: 10.
	MaxConns int `yaml:"max_conns"`
}

// HTTP configures the listener serving /metrics and /healthz.
type HTTP struct {
	// Listen is the host:port to listen on. Default: 127.0.0.1:8080.
	Listen string `yaml:"listen"`
}

// Log configures the slog handler built by cmd/deskd.
type Log struct {
	// Format is one of auto, text, json. Default: auto.
	Format string `yaml:"format"`
	// Level is one of debug, info, warn, error. Default: info.
	Level string `yaml:"level"`
}

// SlogLevel returns Level as a slog.Level. It returns slog.LevelInfo for a
// level that [Config.Validate] would reject.
func (l Log) SlogLevel() slog.Level {
	switch l.Level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

// Desk holds the identity of the service desk.
type Desk struct {
	// Name is the display name used in outgoing mail. Default: "Service Desk".
	Name string `yaml:"name"`
	// Domain is the right-hand side of every Message-ID the desk generates
	// (RFC 5322 §3.6.4). Required.
	Domain string `yaml:"domain"`
	// Secret is the HMAC key that signs reply tokens; at least 16 bytes.
	// Required, here or through SecretFile. Changing it invalidates every
	// token already sent.
	Secret string `yaml:"secret"`
	// SecretFile names a file holding Secret. Load reads it into Secret and
	// clears SecretFile; giving both is a validation error.
	SecretFile string `yaml:"secret_file"`
	// AcceptRequesterDomain, when true, lets a reply that threads by subject
	// key alone come from any address in the ticket requester's domain, not
	// only from the ticket's participants. Default: false.
	AcceptRequesterDomain bool `yaml:"accept_requester_domain"`
}

// MailIn holds the budgets and timings shared by all mailbox pollers.
type MailIn struct {
	// MaxMessageBytes is the largest message fetched; larger ones are
	// quarantined unread. Default: 25 MiB.
	MaxMessageBytes ByteSize `yaml:"max_message_bytes"`
	// MessageTimeout bounds the processing of one message. Default: 30s.
	MessageTimeout time.Duration `yaml:"message_timeout"`
	// PollInterval is the delay between polls of a server without IDLE
	// (RFC 2177). Default: 60s.
	PollInterval time.Duration `yaml:"poll_interval"`
	// IdleRefresh is how long one IDLE command lasts before it is re-issued.
	// RFC 2177 §3 asks clients to re-issue IDLE at least every 29 minutes.
	// Default: 25m.
	IdleRefresh time.Duration `yaml:"idle_refresh"`
	// ReconnectMin is the first delay before reconnecting after a failure.
	// Default: 1s.
	ReconnectMin time.Duration `yaml:"reconnect_min"`
	// ReconnectMax caps the exponential reconnect delay. Default: 2m.
	ReconnectMax time.Duration `yaml:"reconnect_max"`
}

// Mailbox is one IMAP mailbox that deskd ingests.
type Mailbox struct {
	// Name identifies the mailbox in logs, metrics and the database. It must
	// be unique and stay stable: the UID checkpoint is keyed by it.
	Name string `yaml:"name"`
	// Host is the IMAP server's host name or IP address. Required.
	Host string `yaml:"host"`
	// Port defaults to 993 for implicit TLS and 143 otherwise.
	Port int `yaml:"port"`
	// TLS is one of implicit, starttls, none. Default: implicit.
	TLS string `yaml:"tls"`
	// AllowInsecure permits TLS none to a host that is not loopback, which
	// sends the password in plaintext. Default: false.
	AllowInsecure bool `yaml:"allow_insecure"`
	// InsecureSkipVerify disables certificate verification. Default: false.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
	// Auth is one of plain (RFC 4616) or login. Default: plain.
	Auth string `yaml:"auth"`
	// User is the login name. Required.
	User string `yaml:"user"`
	// Password is the login password. Required, here or through
	// PasswordFile.
	Password string `yaml:"password"`
	// PasswordFile names a file holding Password. Load reads it into
	// Password and clears PasswordFile; giving both is a validation error.
	PasswordFile string `yaml:"password_file"`
	// Folder is the folder read for new mail. Default: INBOX.
	Folder string `yaml:"folder"`
	// ProcessedFolder, when set, is where messages are moved once stored.
	// When empty they stay in Folder.
	ProcessedFolder string `yaml:"processed_folder"`
	// Queue names the queue that tickets created from this mailbox's mail
	// belong to. Required.
	Queue string `yaml:"queue"`
}

// SMTP configures the submission server that outgoing mail is relayed to.
type SMTP struct {
	// Host is the SMTP server's host name or IP address. Required.
	Host string `yaml:"host"`
	// Port defaults to 587 for starttls, 465 for implicit and 25 for
	// opportunistic and none (RFC 8314 §3.3, RFC 6409 §3.1).
	Port int `yaml:"port"`
	// TLS is one of implicit, starttls, opportunistic, none.
	// Default: starttls.
	TLS string `yaml:"tls"`
	// Auth is one of none, plain, login, cram-md5. Default: plain when User
	// is set, none otherwise.
	Auth string `yaml:"auth"`
	// User is the login name; required unless Auth is none.
	User string `yaml:"user"`
	// Password is required unless Auth is none, here or through
	// PasswordFile.
	Password string `yaml:"password"`
	// PasswordFile names a file holding Password. Load reads it into
	// Password and clears PasswordFile; giving both is a validation error.
	PasswordFile string `yaml:"password_file"`
	// HELO is the name sent in EHLO/HELO (RFC 5321 §4.1.1.1). When empty
	// the sender uses Desk.Domain.
	HELO string `yaml:"helo"`
	// InsecureSkipVerify disables certificate verification. Default: false.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
	// AllowInsecure permits plain or login authentication without
	// guaranteed TLS (tls none or opportunistic) to a host that is not
	// loopback. Default: false.
	AllowInsecure bool `yaml:"allow_insecure"`
	// MaxConnections caps concurrent SMTP connections. Default: 4.
	MaxConnections int `yaml:"max_connections"`
	// Timeout bounds one SMTP transaction. Default: 30s.
	Timeout time.Duration `yaml:"timeout"`
}

// MailOut configures the outbox: retries and rate limits.
type MailOut struct {
	// RetryDeadline is how long a temporarily failing mail is retried
	// before it is given up. Default: 24h.
	RetryDeadline time.Duration `yaml:"retry_deadline"`
	// BackoffMin is the first retry delay. Default: 30s.
	BackoffMin time.Duration `yaml:"backoff_min"`
	// BackoffMax caps the exponential retry delay. Default: 1h.
	BackoffMax time.Duration `yaml:"backoff_max"`
	// PerRecipientPerHour caps automated mail to one address. Default: 10.
	PerRecipientPerHour int `yaml:"per_recipient_per_hour"`
	// PerTicketPerHour caps automated mail about one ticket. Default: 20.
	PerTicketPerHour int `yaml:"per_ticket_per_hour"`
	// GlobalPerHour caps all automated outgoing mail per hour: a flood guard against runaway loops,
	// approximate under concurrency (see mailout). Default: 20000.
	GlobalPerHour int `yaml:"global_per_hour"`
	// BatchSize is how many outbox rows one worker claims at once.
	// Default: 50.
	BatchSize int `yaml:"batch_size"`
	// Workers is the number of concurrent sending workers. Default: 4.
	Workers int `yaml:"workers"`
}

// Queue is one service desk queue: a set of addresses whose tickets share a
// key prefix, defaults and a team.
type Queue struct {
	// Name identifies the queue; unique, matching [a-z0-9-]+.
	Name string `yaml:"name"`
	// Addresses are the bare addresses (support@example.com) that belong to
	// this queue; at least one, unique across all queues.
	Addresses []string `yaml:"addresses"`
	// KeyPrefix starts the queue's ticket keys ("SD" in SD-1042): 2 to 10
	// uppercase letters, unique.
	KeyPrefix string `yaml:"key_prefix"`
	// DefaultPriority is one of P1, P2, P3, P4. Default: P3.
	DefaultPriority string `yaml:"default_priority"`
	// DefaultKind is one of incident, request, problem, change.
	// Default: incident.
	DefaultKind string `yaml:"default_kind"`
	// Language is the BCP 47 tag of the queue's mail. Default:
	// templates.default_language.
	Language string `yaml:"language"`
	// Agents names the agents working this queue.
	Agents []string `yaml:"agents"`
	// TeamLead optionally names the agent leading this queue.
	TeamLead string `yaml:"team_lead"`
}

// Agent is a person working tickets by mail.
type Agent struct {
	// Name identifies the agent in commands (#assign ana); unique, matching
	// [a-z0-9._-]+.
	Name string `yaml:"name"`
	// Email is the agent's bare address; unique. Mail from it is treated as
	// an agent's only with proof (DESIGN.md invariant 6).
	Email string `yaml:"email"`
	// DisplayName is the agent's full name; optional.
	DisplayName string `yaml:"display_name"`
	// Role is one of agent, lead, manager, admin. Default: agent.
	Role string `yaml:"role"`
	// Language is the BCP 47 tag of mail sent to the agent. Default:
	// templates.default_language.
	Language string `yaml:"language"`
}

// Templates configures mail templates.
type Templates struct {
	// Dir optionally names a directory whose files override the embedded
	// templates.
	Dir string `yaml:"dir"`
	// DefaultLanguage is the BCP 47 tag used when nothing more specific
	// applies. Default: en.
	DefaultLanguage string `yaml:"default_language"`
}

// Default returns a Config holding every default. Its lists are empty and
// Desk.Domain and Desk.Secret are unset, so it does not validate as is.
func Default() *Config {
	return &Config{
		Database: Database{
			URL:      "postgres://postgres@127.0.0.1:5432/deskd?sslmode=disable",
			MaxConns: 10,
		},
		HTTP: HTTP{Listen: "127.0.0.1:8080"},
		Log:  Log{Format: LogFormatAuto, Level: "info"},
		Desk: Desk{Name: "Service Desk"},
		MailIn: MailIn{
			MaxMessageBytes: 25 * MiB,
			MessageTimeout:  30 * time.Second,
			PollInterval:    60 * time.Second,
			IdleRefresh:     25 * time.Minute,
			ReconnectMin:    time.Second,
			ReconnectMax:    2 * time.Minute,
		},
		SMTP: SMTP{
			TLS:            TLSStartTLS,
			MaxConnections: 4,
			Timeout:        30 * time.Second,
		},
		MailOut: MailOut{
			RetryDeadline:       24 * time.Hour,
			BackoffMin:          30 * time.Second,
			BackoffMax:          time.Hour,
			PerRecipientPerHour: 10,
			PerTicketPerHour:    20,
			GlobalPerHour:       20000,
			BatchSize:           50,
			Workers:             4,
		},
		Templates: Templates{DefaultLanguage: "en"},
	}
}

// ApplyDefaults fills the zero-valued fields whose defaults live in list
// items or depend on other fields: mailbox and SMTP ports, TLS modes and
// authentication, mailbox folders, queue priority, kind and language, agent
// role and language. Load calls it; a Config built in code should call it
// before [Config.Validate]. It is idempotent and never overwrites a value
// already set.
func (c *Config) ApplyDefaults() {
	if c.Templates.DefaultLanguage == "" {
		c.Templates.DefaultLanguage = "en"
	}
	lang := c.Templates.DefaultLanguage

	for i := range c.Mailboxes {
		m := &c.Mailboxes[i]
		if m.TLS == "" {
			m.TLS = TLSImplicit
		}
		if m.Port == 0 {
			m.Port = 143
			if m.TLS == TLSImplicit {
				m.Port = 993
			}
		}
		if m.Auth == "" {
			m.Auth = AuthPlain
		}
		if m.Folder == "" {
			m.Folder = "INBOX"
		}
	}

	s := &c.SMTP
	if s.TLS == "" {
		s.TLS = TLSStartTLS
	}
	if s.Port == 0 {
		switch s.TLS {
		case TLSImplicit:
			s.Port = 465
		case TLSStartTLS:
			s.Port = 587
		default:
			s.Port = 25
		}
	}
	if s.Auth == "" {
		s.Auth = AuthNone
		if s.User != "" {
			s.Auth = AuthPlain
		}
	}

	for i := range c.Queues {
		q := &c.Queues[i]
		if q.DefaultPriority == "" {
			q.DefaultPriority = "P3"
		}
		if q.DefaultKind == "" {
			q.DefaultKind = "incident"
		}
		if q.Language == "" {
			q.Language = lang
		}
	}

	for i := range c.Agents {
		a := &c.Agents[i]
		if a.Role == "" {
			a.Role = RoleAgent
		}
		if a.Language == "" {
			a.Language = lang
		}
	}
}
