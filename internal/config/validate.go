package config

import (
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"time"

	"golang.org/x/text/language"
)

// Problem is one thing wrong with a Config.
type Problem struct {
	// Key is the path of the offending key: dotted, with list items as
	// name[index], such as "mailboxes[1].port". A problem with a whole
	// list item names the item, such as "mailboxes[1]".
	Key string
	// Message says what is wrong, in lower case without a final period.
	Message string
}

// String renders p as "key: message", such as
// "mailboxes[1].port: must be 1-65535".
func (p Problem) String() string {
	return p.Key + ": " + p.Message
}

// ValidationError lists every problem found in a configuration. Load
// returns it; callers that want the individual problems use errors.As.
type ValidationError []Problem

// Error renders all problems on one line, separated by semicolons.
func (e ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("invalid configuration: ")
	for i, p := range e {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// Minimum length of Desk.Secret, and the longest IDLE RFC 2177 §3 allows.
const (
	minSecretBytes = 16
	maxIdleRefresh = 29 * time.Minute
)

var (
	queueNameRE = regexp.MustCompile(`^[a-z0-9-]+$`)
	agentNameRE = regexp.MustCompile(`^[a-z0-9._-]+$`)
	keyPrefixRE = regexp.MustCompile(`^[A-Z]{2,10}$`)
)

// Validate checks every field of c and the references between them, and
// returns all problems found, in the order of the fields; nil means c is
// valid. It is pure: secret files are not read, and a *_file key stands in
// for its secret. Call [Config.ApplyDefaults] first on a Config built in
// code, or ports and modes left at zero are reported.
func (c *Config) Validate() []Problem {
	var v validator
	c.validateBasics(&v)
	c.validateMailIn(&v)
	c.validateMailboxes(&v)
	c.validateSMTP(&v)
	c.validateMailOut(&v)
	c.validateQueues(&v)
	c.validateAgents(&v)
	v.language("templates.default_language", c.Templates.DefaultLanguage)
	return v.problems
}

// validateBasics checks database, http, log and desk.
func (c *Config) validateBasics(v *validator) {
	if v.required("database.url", c.Database.URL) && strings.Contains(c.Database.URL, "://") {
		// The URL may hold a password, so neither it nor url.Parse's
		// error (which quotes it) goes into the message.
		u, err := url.Parse(c.Database.URL)
		switch {
		case err != nil:
			v.add("database.url", "is not a valid URL")
		case u.Scheme != "postgres" && u.Scheme != "postgresql":
			v.add("database.url", "scheme must be postgres or postgresql")
		}
	}
	atLeast(v, "database.max_conns", c.Database.MaxConns, 1)

	if _, port, err := net.SplitHostPort(c.HTTP.Listen); err != nil || port == "" {
		v.add("http.listen", "must be host:port, such as 127.0.0.1:8080")
	}

	v.oneOf("log.format", c.Log.Format, LogFormatAuto, LogFormatText, LogFormatJSON)
	v.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")

	d := c.Desk
	v.required("desk.name", d.Name)
	if v.required("desk.domain", d.Domain) && !validDomain(d.Domain) {
		v.add("desk.domain", "must be a domain name such as example.com")
	}
	if v.secret("desk.secret", d.Secret, d.SecretFile) && len(d.Secret) < minSecretBytes {
		v.add("desk.secret", "must be at least %d bytes", minSecretBytes)
	}
}

func (c *Config) validateMailIn(v *validator) {
	m := c.MailIn
	positive(v, "mailin.max_message_bytes", m.MaxMessageBytes)
	positive(v, "mailin.message_timeout", m.MessageTimeout)
	positive(v, "mailin.poll_interval", m.PollInterval)
	if positive(v, "mailin.idle_refresh", m.IdleRefresh) && m.IdleRefresh > maxIdleRefresh {
		v.add("mailin.idle_refresh", "must be at most %s (RFC 2177 §3)", maxIdleRefresh)
	}
	positive(v, "mailin.reconnect_min", m.ReconnectMin)
	if positive(v, "mailin.reconnect_max", m.ReconnectMax) && m.ReconnectMax < m.ReconnectMin {
		v.add("mailin.reconnect_max", "must not be less than reconnect_min (%s)", m.ReconnectMin)
	}
}

func (c *Config) validateMailboxes(v *validator) {
	names := seen{}
	accounts := seen{}
	for i, m := range c.Mailboxes {
		p := fmt.Sprintf("mailboxes[%d]", i)
		if v.required(p+".name", m.Name) {
			v.unique(names, p+".name", m.Name)
		}
		v.required(p+".host", m.Host)
		v.port(p+".port", m.Port)
		v.oneOf(p+".tls", m.TLS, TLSImplicit, TLSStartTLS, TLSNone)
		v.oneOf(p+".auth", m.Auth, AuthPlain, AuthLogin)
		v.required(p+".user", m.User)
		v.secret(p+".password", m.Password, m.PasswordFile)
		if m.TLS == TLSNone && m.Host != "" && !m.AllowInsecure && !isLoopback(m.Host) {
			v.add(p+".tls", "%s", plaintextRisk(m.TLS, m.Host))
		}
		if v.required(p+".folder", m.Folder) && m.ProcessedFolder == m.Folder {
			v.add(p+".processed_folder", "must differ from folder")
		}
		if v.required(p+".queue", m.Queue) {
			if _, ok := c.QueueByName(m.Queue); !ok {
				v.add(p+".queue", "no queue named %q", m.Queue)
			}
		}
		// Two names for one folder would ingest every message twice.
		if m.Host != "" && m.User != "" && m.Folder != "" {
			account := strings.ToLower(m.Host) + "\x00" + m.User + "\x00" + m.Folder
			if first, dup := accounts[account]; dup {
				v.add(p, "reads the same host, user and folder as %s", first)
			} else {
				accounts[account] = p
			}
		}
	}
}

func (c *Config) validateSMTP(v *validator) {
	s := c.SMTP
	v.required("smtp.host", s.Host)
	v.port("smtp.port", s.Port)
	v.oneOf("smtp.tls", s.TLS, TLSImplicit, TLSStartTLS, TLSOpportunistic, TLSNone)
	v.oneOf("smtp.auth", s.Auth, AuthNone, AuthPlain, AuthLogin, AuthCRAMMD5)
	switch {
	case s.Auth == AuthNone && s.User != "":
		v.add("smtp.user", "is set but auth is none")
	case s.Auth != AuthNone:
		if s.User == "" {
			v.add("smtp.user", "required when auth is %s", s.Auth)
		}
		v.secret("smtp.password", s.Password, s.PasswordFile)
	}
	cleartextAuth := s.Auth == AuthPlain || s.Auth == AuthLogin
	cleartextConn := s.TLS == TLSNone || s.TLS == TLSOpportunistic
	if cleartextAuth && cleartextConn && s.Host != "" && !s.AllowInsecure && !isLoopback(s.Host) {
		v.add("smtp.tls", "%s", plaintextRisk(s.TLS, s.Host))
	}
	if s.HELO != "" && !validDomain(s.HELO) && !validAddressLiteral(s.HELO) {
		v.add("smtp.helo", "must be a domain name or an address literal such as [192.0.2.1]")
	}
	atLeast(v, "smtp.max_connections", s.MaxConnections, 1)
	positive(v, "smtp.timeout", s.Timeout)
}

func (c *Config) validateMailOut(v *validator) {
	m := c.MailOut
	positive(v, "mailout.retry_deadline", m.RetryDeadline)
	positive(v, "mailout.backoff_min", m.BackoffMin)
	if positive(v, "mailout.backoff_max", m.BackoffMax) && m.BackoffMax < m.BackoffMin {
		v.add("mailout.backoff_max", "must not be less than backoff_min (%s)", m.BackoffMin)
	}
	atLeast(v, "mailout.per_recipient_per_hour", m.PerRecipientPerHour, 1)
	atLeast(v, "mailout.per_ticket_per_hour", m.PerTicketPerHour, 1)
	atLeast(v, "mailout.global_per_hour", m.GlobalPerHour, 1)
	atLeast(v, "mailout.batch_size", m.BatchSize, 1)
	atLeast(v, "mailout.workers", m.Workers, 1)
}

func (c *Config) validateQueues(v *validator) {
	if len(c.Queues) == 0 {
		v.add("queues", "at least one queue is required")
	}
	names, addresses, prefixes := seen{}, seen{}, seen{}
	for i, q := range c.Queues {
		p := fmt.Sprintf("queues[%d]", i)
		if v.required(p+".name", q.Name) && v.match(p+".name", q.Name, queueNameRE) {
			v.unique(names, p+".name", q.Name)
		}
		if len(q.Addresses) == 0 {
			v.add(p+".addresses", "at least one address is required")
		}
		for j, a := range q.Addresses {
			key := fmt.Sprintf("%s.addresses[%d]", p, j)
			if v.address(key, a) {
				v.unique(addresses, key, strings.ToLower(a))
			}
		}
		if v.required(p+".key_prefix", q.KeyPrefix) {
			if keyPrefixRE.MatchString(q.KeyPrefix) {
				v.unique(prefixes, p+".key_prefix", q.KeyPrefix)
			} else {
				v.add(p+".key_prefix", "must be 2 to 10 uppercase letters A-Z")
			}
		}
		v.oneOf(p+".default_priority", q.DefaultPriority, "P1", "P2", "P3", "P4")
		v.oneOf(p+".default_kind", q.DefaultKind, "incident", "request", "problem", "change")
		v.language(p+".language", q.Language)
		for j, name := range q.Agents {
			if _, ok := c.AgentByName(name); !ok {
				v.add(fmt.Sprintf("%s.agents[%d]", p, j), "no agent named %q", name)
			}
		}
		if q.TeamLead != "" {
			if _, ok := c.AgentByName(q.TeamLead); !ok {
				v.add(p+".team_lead", "no agent named %q", q.TeamLead)
			}
		}
	}
}

func (c *Config) validateAgents(v *validator) {
	names, emails := seen{}, seen{}
	for i, a := range c.Agents {
		p := fmt.Sprintf("agents[%d]", i)
		if v.required(p+".name", a.Name) && v.match(p+".name", a.Name, agentNameRE) {
			v.unique(names, p+".name", a.Name)
		}
		if v.required(p+".email", a.Email) && v.address(p+".email", a.Email) {
			if _, ok := c.QueueByAddress(a.Email); ok {
				v.add(p+".email", "is a queue address; agents need their own address")
			} else {
				v.unique(emails, p+".email", strings.ToLower(a.Email))
			}
		}
		v.oneOf(p+".role", a.Role, RoleAgent, RoleLead, RoleManager, RoleAdmin)
		v.language(p+".language", a.Language)
	}
}

// validator collects problems.
type validator struct {
	problems []Problem
}

// seen maps a value to the key where it first occurred, to find duplicates.
type seen map[string]string

func (v *validator) add(key, format string, args ...any) {
	v.problems = append(v.problems, Problem{Key: key, Message: fmt.Sprintf(format, args...)})
}

// required reports an empty value and returns whether value is set.
func (v *validator) required(key, value string) bool {
	if value == "" {
		v.add(key, "required")
		return false
	}
	return true
}

// secret checks a secret and its *_file sibling: exactly one must be set.
// It returns whether value itself is set, so that callers can check it.
func (v *validator) secret(key, value, file string) bool {
	switch {
	case value != "" && file != "":
		v.add(key, "give either %s or %s_file, not both", lastKey(key), lastKey(key))
		return false
	case value == "" && file == "":
		v.add(key, "required: set %s or %s_file", lastKey(key), lastKey(key))
	}
	return value != ""
}

// lastKey returns the last element of a dotted key.
func lastKey(key string) string {
	return key[strings.LastIndexByte(key, '.')+1:]
}

func (v *validator) oneOf(key, value string, allowed ...string) {
	for _, a := range allowed {
		if value == a {
			return
		}
	}
	v.add(key, "must be one of %s (got %q)", strings.Join(allowed, ", "), value)
}

func (v *validator) match(key, value string, re *regexp.Regexp) bool {
	if !re.MatchString(value) {
		pattern := strings.TrimSuffix(strings.TrimPrefix(re.String(), "^"), "$")
		v.add(key, "must match %s (got %q)", pattern, value)
		return false
	}
	return true
}

func (v *validator) unique(s seen, key, value string) {
	if first, dup := s[value]; dup {
		v.add(key, "duplicates %s", first)
		return
	}
	s[value] = key
}

func (v *validator) port(key string, port int) {
	if port < 1 || port > 65535 {
		v.add(key, "must be 1-65535")
	}
}

// address checks that a is a bare RFC 5322 addr-spec such as
// support@example.com, without display name or angle brackets.
func (v *validator) address(key, a string) bool {
	parsed, err := mail.ParseAddress(a)
	if err != nil {
		v.add(key, "%q is not a valid email address", a)
		return false
	}
	if parsed.Name != "" || parsed.Address != a {
		v.add(key, "must be a bare address such as %s, without name or brackets", parsed.Address)
		return false
	}
	return true
}

// language checks a BCP 47 language tag.
func (v *validator) language(key, tag string) {
	if !v.required(key, tag) {
		return
	}
	if _, err := language.Parse(tag); err != nil {
		v.add(key, "%q is not a BCP 47 language tag such as en or pt-BR", tag)
	}
}

// positive reports a value below 1 and returns whether n is positive.
func positive[T ~int64](v *validator, key string, n T) bool {
	if n <= 0 {
		v.add(key, "must be positive")
		return false
	}
	return true
}

func atLeast(v *validator, key string, n, minimum int) {
	if n < minimum {
		v.add(key, "must be at least %d", minimum)
	}
}

// plaintextRisk explains why a TLS mode to host needs allow_insecure.
func plaintextRisk(mode, host string) string {
	verb := "sends"
	if mode != TLSNone {
		verb = "may send"
	}
	return fmt.Sprintf("%s %s the password in plaintext to non-loopback host %s; set allow_insecure to permit it", mode, verb, host)
}

// isLoopback reports whether host is a loopback IP address or localhost
// (RFC 6761 §6.3). It does not resolve names.
func isLoopback(host string) bool {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"))
	return err == nil && ip.IsLoopback()
}

// validDomain reports whether s is a fully qualified domain name in the
// preferred name syntax of RFC 1035 §2.3.1 (letters, digits and hyphens;
// labels of at most 63 octets) with at least two labels and a top-level
// label that is not all digits.
func validDomain(s string) bool {
	if len(s) > 253 {
		return false
	}
	labels := strings.Split(s, ".")
	if len(labels) < 2 || strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return false
	}
	for _, l := range labels {
		if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// validAddressLiteral reports whether s is an RFC 5321 §4.1.3 address
// literal: [192.0.2.1] or [IPv6:2001:db8::1].
func validAddressLiteral(s string) bool {
	inner, ok := strings.CutPrefix(s, "[")
	if !ok {
		return false
	}
	if inner, ok = strings.CutSuffix(inner, "]"); !ok {
		return false
	}
	if v6, isV6 := strings.CutPrefix(inner, "IPv6:"); isV6 {
		ip, err := netip.ParseAddr(v6)
		return err == nil && ip.Is6()
	}
	ip, err := netip.ParseAddr(inner)
	return err == nil && ip.Is4()
}
