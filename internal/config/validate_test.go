package config

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// validConfig returns a Config built in code that validates with no
// problems: two queues, two mailboxes, two agents.
func validConfig() *Config {
	c := Default()
	c.Desk.Domain = "desk.example.com"
	c.Desk.Secret = "0123456789abcdef"
	c.Mailboxes = []Mailbox{
		{Name: "support", Host: "imap.example.com", User: "support", Password: "pw", Queue: "support"},
		{Name: "changes", Host: "imap.example.com", User: "changes", Password: "pw", Queue: "changes"},
	}
	c.SMTP.Host = "smtp.example.com"
	c.SMTP.User = "desk"
	c.SMTP.Password = "pw"
	c.Queues = []Queue{
		{Name: "support", Addresses: []string{"support@example.com", "help@example.com"}, KeyPrefix: "SD", Agents: []string{"ana", "bo"}, TeamLead: "ana"},
		{Name: "changes", Addresses: []string{"changes@example.com"}, KeyPrefix: "CHG", DefaultKind: "change", Agents: []string{"bo"}},
	}
	c.Agents = []Agent{
		{Name: "ana", Email: "ana@example.com", DisplayName: "Ana Lima", Role: RoleLead},
		{Name: "bo", Email: "bo@example.com"},
	}
	c.ApplyDefaults()
	return c
}

// addAgent appends a valid third agent, agents[2], changed by edit.
func addAgent(c *Config, edit func(*Agent)) {
	a := Agent{Name: "cy", Email: "cy@example.com", Role: RoleAgent, Language: "en"}
	edit(&a)
	c.Agents = append(c.Agents, a)
}

func TestValidateValidConfig(t *testing.T) {
	if problems := validConfig().Validate(); problems != nil {
		t.Fatalf("validConfig has problems: %v", problems)
	}
}

// TestValidateProblems changes one thing of a valid Config per row and
// asserts the exact problems rendered; want nil rows pin down what is
// allowed.
func TestValidateProblems(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(c *Config)
		want []string
	}{
		// database, http, log
		{"database url required", func(c *Config) { c.Database.URL = "" }, []string{"database.url: required"}},
		{"database url invalid", func(c *Config) { c.Database.URL = "postgres://u:pw@db:port/deskd" }, []string{"database.url: is not a valid URL"}},
		{"database url scheme", func(c *Config) { c.Database.URL = "mysql://db/deskd" }, []string{"database.url: scheme must be postgres or postgresql"}},
		{"database keyword/value", func(c *Config) { c.Database.URL = "host=db user=deskd" }, nil},
		{"database max conns", func(c *Config) { c.Database.MaxConns = 0 }, []string{"database.max_conns: must be at least 1"}},
		{"http listen", func(c *Config) { c.HTTP.Listen = "8080" }, []string{"http.listen: must be host:port, such as 127.0.0.1:8080"}},
		{"http listen all interfaces", func(c *Config) { c.HTTP.Listen = ":8080" }, nil},
		{"log format", func(c *Config) { c.Log.Format = "xml" }, []string{`log.format: must be one of auto, text, json (got "xml")`}},
		{"log level", func(c *Config) { c.Log.Level = "trace" }, []string{`log.level: must be one of debug, info, warn, error (got "trace")`}},

		// desk
		{"desk name", func(c *Config) { c.Desk.Name = "" }, []string{"desk.name: required"}},
		{"desk domain required", func(c *Config) { c.Desk.Domain = "" }, []string{"desk.domain: required"}},
		{"desk domain single label", func(c *Config) { c.Desk.Domain = "localhost" }, []string{"desk.domain: must be a domain name such as example.com"}},
		{"desk domain ip", func(c *Config) { c.Desk.Domain = "192.0.2.1" }, []string{"desk.domain: must be a domain name such as example.com"}},
		{"desk domain underscore", func(c *Config) { c.Desk.Domain = "desk_1.example.com" }, []string{"desk.domain: must be a domain name such as example.com"}},
		{"desk secret required", func(c *Config) { c.Desk.Secret = "" }, []string{"desk.secret: required: set secret or secret_file"}},
		{"desk secret and file", func(c *Config) { c.Desk.SecretFile = "/run/secrets/deskd" }, []string{"desk.secret: give either secret or secret_file, not both"}},
		{"desk secret file only", func(c *Config) { c.Desk.Secret, c.Desk.SecretFile = "", "/run/secrets/deskd" }, nil},
		{"desk secret short", func(c *Config) { c.Desk.Secret = "0123456789abcde" }, []string{"desk.secret: must be at least 16 bytes"}},

		// mailin
		{"mailin max message bytes", func(c *Config) { c.MailIn.MaxMessageBytes = 0 }, []string{"mailin.max_message_bytes: must be positive"}},
		{"mailin message timeout", func(c *Config) { c.MailIn.MessageTimeout = -time.Second }, []string{"mailin.message_timeout: must be positive"}},
		{"mailin poll interval", func(c *Config) { c.MailIn.PollInterval = 0 }, []string{"mailin.poll_interval: must be positive"}},
		{"mailin idle refresh zero", func(c *Config) { c.MailIn.IdleRefresh = 0 }, []string{"mailin.idle_refresh: must be positive"}},
		{"mailin idle refresh long", func(c *Config) { c.MailIn.IdleRefresh = 30 * time.Minute }, []string{"mailin.idle_refresh: must be at most 29m0s (RFC 2177 §3)"}},
		{"mailin reconnect min", func(c *Config) { c.MailIn.ReconnectMin = 0 }, []string{"mailin.reconnect_min: must be positive"}},
		{"mailin reconnect max zero", func(c *Config) { c.MailIn.ReconnectMax = 0 }, []string{"mailin.reconnect_max: must be positive"}},
		{"mailin reconnect max below min", func(c *Config) { c.MailIn.ReconnectMax = 500 * time.Millisecond }, []string{"mailin.reconnect_max: must not be less than reconnect_min (1s)"}},

		// mailboxes
		{"mailbox name required", func(c *Config) { c.Mailboxes[1].Name = "" }, []string{"mailboxes[1].name: required"}},
		{"mailbox name duplicate", func(c *Config) { c.Mailboxes[1].Name = "support" }, []string{"mailboxes[1].name: duplicates mailboxes[0].name"}},
		{"mailbox host", func(c *Config) { c.Mailboxes[1].Host = "" }, []string{"mailboxes[1].host: required"}},
		{"mailbox port high", func(c *Config) { c.Mailboxes[1].Port = 65536 }, []string{"mailboxes[1].port: must be 1-65535"}},
		{"mailbox port zero", func(c *Config) { c.Mailboxes[1].Port = 0 }, []string{"mailboxes[1].port: must be 1-65535"}},
		{"mailbox tls", func(c *Config) { c.Mailboxes[1].TLS = "ssl" }, []string{`mailboxes[1].tls: must be one of implicit, starttls, none (got "ssl")`}},
		{"mailbox auth", func(c *Config) { c.Mailboxes[1].Auth = "cram-md5" }, []string{`mailboxes[1].auth: must be one of plain, login (got "cram-md5")`}},
		{"mailbox user", func(c *Config) { c.Mailboxes[1].User = "" }, []string{"mailboxes[1].user: required"}},
		{"mailbox password required", func(c *Config) { c.Mailboxes[1].Password = "" }, []string{"mailboxes[1].password: required: set password or password_file"}},
		{"mailbox password and file", func(c *Config) { c.Mailboxes[1].PasswordFile = "/run/secrets/imap" }, []string{"mailboxes[1].password: give either password or password_file, not both"}},
		{"mailbox plaintext remote", func(c *Config) { c.Mailboxes[1].TLS = TLSNone },
			[]string{"mailboxes[1].tls: none sends the password in plaintext to non-loopback host imap.example.com; set allow_insecure to permit it"}},
		{"mailbox plaintext allowed", func(c *Config) { c.Mailboxes[1].TLS, c.Mailboxes[1].AllowInsecure = TLSNone, true }, nil},
		{"mailbox plaintext loopback v4", func(c *Config) { c.Mailboxes[1].TLS, c.Mailboxes[1].Host = TLSNone, "127.0.0.2" }, nil},
		{"mailbox plaintext loopback v6", func(c *Config) { c.Mailboxes[1].TLS, c.Mailboxes[1].Host = TLSNone, "::1" }, nil},
		{"mailbox plaintext localhost", func(c *Config) { c.Mailboxes[1].TLS, c.Mailboxes[1].Host = TLSNone, "localhost" }, nil},
		{"mailbox folder", func(c *Config) { c.Mailboxes[1].Folder = "" }, []string{"mailboxes[1].folder: required"}},
		{"mailbox processed folder", func(c *Config) { c.Mailboxes[1].ProcessedFolder = "INBOX" }, []string{"mailboxes[1].processed_folder: must differ from folder"}},
		{"mailbox queue required", func(c *Config) { c.Mailboxes[1].Queue = "" }, []string{"mailboxes[1].queue: required"}},
		{"mailbox queue unknown", func(c *Config) { c.Mailboxes[1].Queue = "sales" }, []string{`mailboxes[1].queue: no queue named "sales"`}},
		{"mailbox same account", func(c *Config) { c.Mailboxes[1].User = "support" }, []string{"mailboxes[1]: reads the same host, user and folder as mailboxes[0]"}},
		{"mailbox same account other folder", func(c *Config) { c.Mailboxes[1].User, c.Mailboxes[1].Folder = "support", "Changes" }, nil},
		{"no mailboxes", func(c *Config) { c.Mailboxes = nil }, nil},

		// smtp
		{"smtp host", func(c *Config) { c.SMTP.Host = "" }, []string{"smtp.host: required"}},
		{"smtp port", func(c *Config) { c.SMTP.Port = -1 }, []string{"smtp.port: must be 1-65535"}},
		{"smtp tls", func(c *Config) { c.SMTP.TLS = "ssl" }, []string{`smtp.tls: must be one of implicit, starttls, opportunistic, none (got "ssl")`}},
		{"smtp auth", func(c *Config) { c.SMTP.Auth = "xoauth2" }, []string{`smtp.auth: must be one of none, plain, login, cram-md5 (got "xoauth2")`}},
		{"smtp user without auth", func(c *Config) { c.SMTP.Auth = AuthNone }, []string{"smtp.user: is set but auth is none"}},
		{"smtp no auth", func(c *Config) { c.SMTP.Auth, c.SMTP.User, c.SMTP.Password = AuthNone, "", "" }, nil},
		{"smtp user required", func(c *Config) { c.SMTP.User = "" }, []string{"smtp.user: required when auth is plain"}},
		{"smtp password required", func(c *Config) { c.SMTP.Password = "" }, []string{"smtp.password: required: set password or password_file"}},
		{"smtp password and file", func(c *Config) { c.SMTP.PasswordFile = "/run/secrets/smtp" }, []string{"smtp.password: give either password or password_file, not both"}},
		{"smtp plaintext remote", func(c *Config) { c.SMTP.TLS = TLSNone },
			[]string{"smtp.tls: none sends the password in plaintext to non-loopback host smtp.example.com; set allow_insecure to permit it"}},
		{"smtp opportunistic remote", func(c *Config) { c.SMTP.TLS, c.SMTP.Auth = TLSOpportunistic, AuthLogin },
			[]string{"smtp.tls: opportunistic may send the password in plaintext to non-loopback host smtp.example.com; set allow_insecure to permit it"}},
		{"smtp opportunistic cram-md5", func(c *Config) { c.SMTP.TLS, c.SMTP.Auth = TLSOpportunistic, AuthCRAMMD5 }, nil},
		{"smtp plaintext allowed", func(c *Config) { c.SMTP.TLS, c.SMTP.AllowInsecure = TLSNone, true }, nil},
		{"smtp plaintext loopback", func(c *Config) { c.SMTP.TLS, c.SMTP.Host = TLSNone, "[::1]" }, nil},
		{"smtp helo", func(c *Config) { c.SMTP.HELO = "mx_1" }, []string{"smtp.helo: must be a domain name or an address literal such as [192.0.2.1]"}},
		{"smtp helo bad literal", func(c *Config) { c.SMTP.HELO = "[IPv6:192.0.2.1]" }, []string{"smtp.helo: must be a domain name or an address literal such as [192.0.2.1]"}},
		{"smtp helo domain", func(c *Config) { c.SMTP.HELO = "mx1.example.com" }, nil},
		{"smtp helo ipv4 literal", func(c *Config) { c.SMTP.HELO = "[192.0.2.1]" }, nil},
		{"smtp helo ipv6 literal", func(c *Config) { c.SMTP.HELO = "[IPv6:2001:db8::1]" }, nil},
		{"smtp max connections", func(c *Config) { c.SMTP.MaxConnections = 0 }, []string{"smtp.max_connections: must be at least 1"}},
		{"smtp timeout", func(c *Config) { c.SMTP.Timeout = 0 }, []string{"smtp.timeout: must be positive"}},

		// mailout
		{"mailout retry deadline", func(c *Config) { c.MailOut.RetryDeadline = 0 }, []string{"mailout.retry_deadline: must be positive"}},
		{"mailout backoff min", func(c *Config) { c.MailOut.BackoffMin = 0 }, []string{"mailout.backoff_min: must be positive"}},
		{"mailout backoff max zero", func(c *Config) { c.MailOut.BackoffMax = 0 }, []string{"mailout.backoff_max: must be positive"}},
		{"mailout backoff max below min", func(c *Config) { c.MailOut.BackoffMax = 10 * time.Second }, []string{"mailout.backoff_max: must not be less than backoff_min (30s)"}},
		{"mailout per recipient", func(c *Config) { c.MailOut.PerRecipientPerHour = 0 }, []string{"mailout.per_recipient_per_hour: must be at least 1"}},
		{"mailout per ticket", func(c *Config) { c.MailOut.PerTicketPerHour = 0 }, []string{"mailout.per_ticket_per_hour: must be at least 1"}},
		{"mailout global", func(c *Config) { c.MailOut.GlobalPerHour = 0 }, []string{"mailout.global_per_hour: must be at least 1"}},
		{"mailout batch size", func(c *Config) { c.MailOut.BatchSize = 0 }, []string{"mailout.batch_size: must be at least 1"}},
		{"mailout workers", func(c *Config) { c.MailOut.Workers = 0 }, []string{"mailout.workers: must be at least 1"}},

		// queues
		{"no queues", func(c *Config) { c.Queues, c.Mailboxes = nil, nil }, []string{"queues: at least one queue is required"}},
		{"queue name required", func(c *Config) { c.Queues[1].Name, c.Mailboxes[1].Queue = "", "support" }, []string{"queues[1].name: required"}},
		{"queue name pattern", func(c *Config) { c.Queues[1].Name, c.Mailboxes[1].Queue = "Changes", "Changes" }, []string{`queues[1].name: must match [a-z0-9-]+ (got "Changes")`}},
		{"queue name duplicate", func(c *Config) { c.Queues[1].Name, c.Mailboxes[1].Queue = "support", "support" }, []string{"queues[1].name: duplicates queues[0].name"}},
		{"queue addresses required", func(c *Config) { c.Queues[1].Addresses = nil }, []string{"queues[1].addresses: at least one address is required"}},
		{"queue address invalid", func(c *Config) { c.Queues[1].Addresses[0] = "changes.example.com" },
			[]string{`queues[1].addresses[0]: "changes.example.com" is not a valid email address`}},
		{"queue address not bare", func(c *Config) { c.Queues[1].Addresses[0] = "Changes <changes@example.com>" },
			[]string{"queues[1].addresses[0]: must be a bare address such as changes@example.com, without name or brackets"}},
		{"queue address duplicate across queues", func(c *Config) { c.Queues[1].Addresses[0] = "Support@Example.com" },
			[]string{"queues[1].addresses[0]: duplicates queues[0].addresses[0]"}},
		{"queue address duplicate in queue", func(c *Config) { c.Queues[0].Addresses[1] = "SUPPORT@example.com" },
			[]string{"queues[0].addresses[1]: duplicates queues[0].addresses[0]"}},
		{"queue key prefix required", func(c *Config) { c.Queues[1].KeyPrefix = "" }, []string{"queues[1].key_prefix: required"}},
		{"queue key prefix lowercase", func(c *Config) { c.Queues[1].KeyPrefix = "chg" }, []string{"queues[1].key_prefix: must be 2 to 10 uppercase letters A-Z"}},
		{"queue key prefix short", func(c *Config) { c.Queues[1].KeyPrefix = "C" }, []string{"queues[1].key_prefix: must be 2 to 10 uppercase letters A-Z"}},
		{"queue key prefix long", func(c *Config) { c.Queues[1].KeyPrefix = "CHANGESTOOL" }, []string{"queues[1].key_prefix: must be 2 to 10 uppercase letters A-Z"}},
		{"queue key prefix digits", func(c *Config) { c.Queues[1].KeyPrefix = "C2" }, []string{"queues[1].key_prefix: must be 2 to 10 uppercase letters A-Z"}},
		{"queue key prefix duplicate", func(c *Config) { c.Queues[1].KeyPrefix = "SD" }, []string{"queues[1].key_prefix: duplicates queues[0].key_prefix"}},
		{"queue priority", func(c *Config) { c.Queues[1].DefaultPriority = "P5" }, []string{`queues[1].default_priority: must be one of P1, P2, P3, P4 (got "P5")`}},
		{"queue kind", func(c *Config) { c.Queues[1].DefaultKind = "bug" }, []string{`queues[1].default_kind: must be one of incident, request, problem, change (got "bug")`}},
		{"queue language required", func(c *Config) { c.Queues[1].Language = "" }, []string{"queues[1].language: required"}},
		{"queue language invalid", func(c *Config) { c.Queues[1].Language = "english!" }, []string{`queues[1].language: "english!" is not a BCP 47 language tag such as en or pt-BR`}},
		{"queue language regional", func(c *Config) { c.Queues[1].Language = "pt-BR" }, nil},
		{"queue agent unknown", func(c *Config) { c.Queues[1].Agents = []string{"bo", "cy"} }, []string{`queues[1].agents[1]: no agent named "cy"`}},
		{"queue team lead unknown", func(c *Config) { c.Queues[1].TeamLead = "cy" }, []string{`queues[1].team_lead: no agent named "cy"`}},

		// agents
		{"agent name required", func(c *Config) { addAgent(c, func(a *Agent) { a.Name = "" }) }, []string{"agents[2].name: required"}},
		{"agent name pattern", func(c *Config) { addAgent(c, func(a *Agent) { a.Name = "Cy Young" }) }, []string{`agents[2].name: must match [a-z0-9._-]+ (got "Cy Young")`}},
		{"agent name dotted", func(c *Config) { addAgent(c, func(a *Agent) { a.Name = "cy.young_2-x" }) }, nil},
		{"agent name duplicate", func(c *Config) { addAgent(c, func(a *Agent) { a.Name = "bo" }) }, []string{"agents[2].name: duplicates agents[1].name"}},
		{"agent email required", func(c *Config) { addAgent(c, func(a *Agent) { a.Email = "" }) }, []string{"agents[2].email: required"}},
		{"agent email invalid", func(c *Config) { addAgent(c, func(a *Agent) { a.Email = "cy at example.com" }) },
			[]string{`agents[2].email: "cy at example.com" is not a valid email address`}},
		{"agent email not bare", func(c *Config) { addAgent(c, func(a *Agent) { a.Email = "<cy@example.com>" }) },
			[]string{"agents[2].email: must be a bare address such as cy@example.com, without name or brackets"}},
		{"agent email duplicate", func(c *Config) { addAgent(c, func(a *Agent) { a.Email = "BO@example.com" }) }, []string{"agents[2].email: duplicates agents[1].email"}},
		{"agent email is queue address", func(c *Config) { addAgent(c, func(a *Agent) { a.Email = "help@example.com" }) },
			[]string{"agents[2].email: is a queue address; agents need their own address"}},
		{"agent role", func(c *Config) { addAgent(c, func(a *Agent) { a.Role = "boss" }) }, []string{`agents[2].role: must be one of agent, lead, manager, admin (got "boss")`}},
		{"agent language required", func(c *Config) { addAgent(c, func(a *Agent) { a.Language = "" }) }, []string{"agents[2].language: required"}},
		{"agent language invalid", func(c *Config) { addAgent(c, func(a *Agent) { a.Language = "en_US!" }) }, []string{`agents[2].language: "en_US!" is not a BCP 47 language tag such as en or pt-BR`}},

		// templates
		{"templates default language", func(c *Config) { c.Templates.DefaultLanguage = "" }, []string{"templates.default_language: required"}},
		{"templates default language invalid", func(c *Config) { c.Templates.DefaultLanguage = "??" },
			[]string{`templates.default_language: "??" is not a BCP 47 language tag such as en or pt-BR`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.edit(c)
			var got []string
			for _, p := range c.Validate() {
				got = append(got, p.String())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("problems =\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

func TestValidateReportsAllProblemsInFieldOrder(t *testing.T) {
	c := validConfig()
	c.Agents[1].Role = "boss"
	c.Mailboxes[0].Port = 0
	c.Desk.Name = ""
	want := []string{
		"desk.name: required",
		"mailboxes[0].port: must be 1-65535",
		`agents[1].role: must be one of agent, lead, manager, admin (got "boss")`,
	}
	var got []string
	for _, p := range c.Validate() {
		got = append(got, p.String())
	}
	if !slices.Equal(got, want) {
		t.Errorf("problems =\n%q\nwant\n%q", got, want)
	}
}

func TestValidationError(t *testing.T) {
	var err error = ValidationError{
		{Key: "mailboxes[1].port", Message: "must be 1-65535"},
		{Key: "smtp.host", Message: "required"},
	}
	want := "invalid configuration: mailboxes[1].port: must be 1-65535; smtp.host: required"
	if err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}
	var ve ValidationError
	if !errors.As(err, &ve) || len(ve) != 2 || ve[0].Key != "mailboxes[1].port" {
		t.Errorf("errors.As gave %v", ve)
	}
}
