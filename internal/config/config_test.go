package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// minimalYAML is the smallest file that validates.
const minimalYAML = `
desk:
  domain: desk.example.com
  secret: 0123456789abcdef
smtp:
  host: smtp.example.com
queues:
  - name: support
    addresses: [support@example.com]
    key_prefix: SD
`

// twoQueueYAML has lists for the indexed environment tests.
const twoQueueYAML = `
desk:
  domain: desk.example.com
  secret: 0123456789abcdef
smtp:
  host: smtp.example.com
  port: 2525
  user: desk
  password: file-password
mailboxes:
  - name: support
    host: imap.example.com
    user: support
    password: file-password
    queue: support
queues:
  - name: support
    addresses: [support@example.com]
    key_prefix: SD
  - name: changes
    addresses: [changes@example.com]
    key_prefix: CHG
`

// writeFile writes content to name in a new temporary directory and
// returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// mustLoad loads path and fails the test on any error.
func mustLoad(t *testing.T, path string) *Config {
	t.Helper()
	cfg, err := Load(path)
	if err != nil {
		t.Fatalf("Load(%q): %v", path, err)
	}
	return cfg
}

// problemStrings returns the rendered problems of a ValidationError, and
// fails the test when err is not one.
func problemStrings(t *testing.T, err error) []string {
	t.Helper()
	var ve ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v (%T) is not a ValidationError", err, err)
	}
	out := make([]string, len(ve))
	for i, p := range ve {
		out[i] = p.String()
	}
	return out
}

func TestLoadDefaults(t *testing.T) {
	cfg := mustLoad(t, writeFile(t, "deskd.yaml", minimalYAML))
	def := Default()

	if cfg.Database != def.Database || cfg.HTTP != def.HTTP || cfg.Log != def.Log ||
		cfg.MailIn != def.MailIn || cfg.MailOut != def.MailOut || cfg.Templates != def.Templates {
		t.Errorf("sections without keys differ from Default():\ngot  %+v\nwant %+v", cfg, def)
	}
	if cfg.Database.URL != "postgres://postgres@127.0.0.1:5432/deskd?sslmode=disable" || cfg.Database.MaxConns != 10 {
		t.Errorf("database = %+v", cfg.Database)
	}
	if cfg.MailIn.MaxMessageBytes != 25<<20 || cfg.MailIn.IdleRefresh != 25*time.Minute {
		t.Errorf("mailin = %+v", cfg.MailIn)
	}
	if cfg.Desk.Name != "Service Desk" || cfg.Desk.AcceptRequesterDomain {
		t.Errorf("desk = %+v", cfg.Desk)
	}
	wantSMTP := SMTP{Host: "smtp.example.com", Port: 587, TLS: TLSStartTLS, Auth: AuthNone, MaxConnections: 4, Timeout: 30 * time.Second}
	if cfg.SMTP != wantSMTP {
		t.Errorf("smtp = %+v, want %+v", cfg.SMTP, wantSMTP)
	}
	q := cfg.Queues[0]
	if q.DefaultPriority != "P3" || q.DefaultKind != "incident" || q.Language != "en" {
		t.Errorf("queue defaults = %+v", q)
	}
}

func TestApplyDefaultsDependentValues(t *testing.T) {
	c := &Config{
		Mailboxes: []Mailbox{{}, {TLS: TLSStartTLS}, {TLS: TLSNone, Port: 1143}},
		Agents:    []Agent{{}, {Role: RoleAdmin, Language: "de"}},
		Templates: Templates{DefaultLanguage: "pt-BR"},
		SMTP:      SMTP{TLS: TLSImplicit, User: "desk"},
	}
	c.ApplyDefaults()
	c.ApplyDefaults() // idempotent

	var ports []int
	for _, m := range c.Mailboxes {
		ports = append(ports, m.Port)
	}
	if !slices.Equal(ports, []int{993, 143, 1143}) {
		t.Errorf("mailbox ports = %v, want [993 143 1143]", ports)
	}
	if m := c.Mailboxes[0]; m.TLS != TLSImplicit || m.Auth != AuthPlain || m.Folder != "INBOX" {
		t.Errorf("mailbox defaults = %+v", m)
	}
	if c.SMTP.Port != 465 || c.SMTP.Auth != AuthPlain {
		t.Errorf("smtp port, auth = %d, %s; want 465, plain", c.SMTP.Port, c.SMTP.Auth)
	}
	if a := c.Agents[0]; a.Role != RoleAgent || a.Language != "pt-BR" {
		t.Errorf("agent defaults = %+v", a)
	}
	if a := c.Agents[1]; a.Role != RoleAdmin || a.Language != "de" {
		t.Errorf("agent values overwritten: %+v", a)
	}

	for tls, port := range map[string]int{TLSStartTLS: 587, TLSImplicit: 465, TLSOpportunistic: 25, TLSNone: 25} {
		c := &Config{SMTP: SMTP{TLS: tls}}
		c.ApplyDefaults()
		if c.SMTP.Port != port {
			t.Errorf("smtp tls %s: port %d, want %d", tls, c.SMTP.Port, port)
		}
	}
}

func TestLoadEnvOverridesNestedKeys(t *testing.T) {
	path := writeFile(t, "deskd.yaml", twoQueueYAML)
	t.Setenv("DESKD_SMTP_PORT", "1025")
	t.Setenv("DESKD_DATABASE_URL", "postgres://deskd@db.internal/deskd")
	t.Setenv("DESKD_HTTP_LISTEN", "0.0.0.0:9090")
	t.Setenv("DESKD_DESK_SECRET", "from-the-environment")
	t.Setenv("DESKD_DESK_ACCEPT_REQUESTER_DOMAIN", "true")
	t.Setenv("DESKD_MAILIN_MESSAGE_TIMEOUT", "45s")
	t.Setenv("DESKD_MAILIN_MAX_MESSAGE_BYTES", "10MB")
	t.Setenv("DESKD_TEMPLATES_DIR", "/srv/templates")
	t.Setenv("DESKD_LOG_LEVEL", "") // empty variables are ignored

	cfg := mustLoad(t, path)
	if cfg.SMTP.Port != 1025 {
		t.Errorf("smtp.port = %d, want 1025 from DESKD_SMTP_PORT", cfg.SMTP.Port)
	}
	if cfg.Database.URL != "postgres://deskd@db.internal/deskd" {
		t.Errorf("database.url = %q", cfg.Database.URL)
	}
	if cfg.HTTP.Listen != "0.0.0.0:9090" || cfg.Desk.Secret != "from-the-environment" || !cfg.Desk.AcceptRequesterDomain {
		t.Errorf("http, desk = %+v, %+v", cfg.HTTP, cfg.Desk)
	}
	if cfg.MailIn.MessageTimeout != 45*time.Second || cfg.MailIn.MaxMessageBytes != 10_000_000 {
		t.Errorf("mailin = %+v", cfg.MailIn)
	}
	if cfg.Templates.Dir != "/srv/templates" || cfg.Log.Level != "info" {
		t.Errorf("templates.dir, log.level = %q, %q", cfg.Templates.Dir, cfg.Log.Level)
	}
	if cfg.SMTP.Password != "file-password" {
		t.Errorf("smtp.password = %q, want the file's", cfg.SMTP.Password)
	}
}

func TestLoadEnvOverridesListItems(t *testing.T) {
	path := writeFile(t, "deskd.yaml", twoQueueYAML)
	t.Setenv("DESKD_MAILBOXES_0_PASSWORD", "env-password")
	t.Setenv("DESKD_MAILBOXES_0_PORT", "1993")
	t.Setenv("DESKD_MAILBOXES_0_INSECURE_SKIP_VERIFY", "true")
	t.Setenv("DESKD_QUEUES_1_KEY_PREFIX", "CR")
	t.Setenv("DESKD_QUEUES_0_ADDRESSES", "support@example.com, help@example.com")
	// An index past the end adds an item.
	t.Setenv("DESKD_AGENTS_0_NAME", "ana")
	t.Setenv("DESKD_AGENTS_0_EMAIL", "ana@example.com")

	cfg := mustLoad(t, path)
	m := cfg.Mailboxes[0]
	if m.Password != "env-password" || m.Port != 1993 || !m.InsecureSkipVerify {
		t.Errorf("mailboxes[0] = %+v", m)
	}
	if m.Name != "support" || m.Host != "imap.example.com" {
		t.Errorf("mailboxes[0] lost its file values: %+v", m)
	}
	if got := cfg.KeyPrefixes(); !slices.Equal(got, []string{"SD", "CR"}) {
		t.Errorf("key prefixes = %v, want [SD CR]", got)
	}
	if got := cfg.Queues[0].Addresses; !slices.Equal(got, []string{"support@example.com", "help@example.com"}) {
		t.Errorf("queues[0].addresses = %q", got)
	}
	if len(cfg.Agents) != 1 || cfg.Agents[0].Email != "ana@example.com" || cfg.Agents[0].Role != RoleAgent {
		t.Errorf("agents = %+v", cfg.Agents)
	}
}

func TestLoadEnvOnlyWithoutFile(t *testing.T) {
	t.Chdir(t.TempDir())
	for k, v := range map[string]string{
		"DESKD_DESK_DOMAIN":          "desk.example.com",
		"DESKD_DESK_SECRET":          "0123456789abcdef",
		"DESKD_SMTP_HOST":            "localhost",
		"DESKD_QUEUES_0_NAME":        "support",
		"DESKD_QUEUES_0_ADDRESSES":   "support@example.com",
		"DESKD_QUEUES_0_KEY_PREFIX":  "SD",
		"DESKD_MAILBOXES_0_NAME":     "support",
		"DESKD_MAILBOXES_0_HOST":     "127.0.0.1",
		"DESKD_MAILBOXES_0_TLS":      "none",
		"DESKD_MAILBOXES_0_USER":     "support",
		"DESKD_MAILBOXES_0_PASSWORD": "secret",
		"DESKD_MAILBOXES_0_QUEUE":    "support",
	} {
		t.Setenv(k, v)
	}
	cfg, err := load("", []string{"deskd.yaml", filepath.Join(t.TempDir(), "missing.yaml")})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Source != "" {
		t.Errorf("Source = %q, want empty without a file", cfg.Source)
	}
	if m := cfg.Mailboxes[0]; m.Port != 143 || m.Queue != "support" {
		t.Errorf("mailboxes[0] = %+v", m)
	}
}

func TestLoadEnvErrors(t *testing.T) {
	path := writeFile(t, "deskd.yaml", twoQueueYAML)
	for _, tc := range []struct{ name, want string }{
		{"DESKD_MAILBOXES_0_PASWORD", "environment variable DESKD_MAILBOXES_0_PASWORD: no key pasword in a list item"},
		{"DESKD_MAILBOXES_X_PASSWORD", "environment variable DESKD_MAILBOXES_X_PASSWORD: want <index>_<key> after the list name"},
		{"DESKD_QUEUES_-1_NAME", "environment variable DESKD_QUEUES_-1_NAME: want <index>_<key> after the list name"},
		{"DESKD_AGENTS_1000_NAME", "environment variable DESKD_AGENTS_1000_NAME: index 1000 is out of range 0-999"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(tc.name, "x")
			_, err := Load(path)
			if err == nil || err.Error() != tc.want {
				t.Errorf("Load error = %v, want %q", err, tc.want)
			}
		})
	}
}

// secretFileYAML takes every secret from a file; %s are the paths of the
// desk secret, the mailbox password and the SMTP password.
const secretFileYAML = `
desk:
  domain: desk.example.com
  secret_file: %s
smtp:
  host: smtp.example.com
  user: desk
  password_file: %s
mailboxes:
  - name: support
    host: imap.example.com
    user: support
    password_file: %s
    queue: support
queues:
  - name: support
    addresses: [support@example.com]
    key_prefix: SD
`

func TestLoadSecretFiles(t *testing.T) {
	secret := writeFile(t, "secret", "a-secret-of-enough-bytes\r\n")
	smtpPassword := writeFile(t, "smtp", "smtp-password")
	imapPassword := writeFile(t, "imap", "imap-password\n")
	path := writeFile(t, "deskd.yaml", fmt.Sprintf(secretFileYAML, secret, smtpPassword, "/nonexistent"))
	t.Setenv("DESKD_MAILBOXES_0_PASSWORD_FILE", imapPassword) // the environment beats the file

	cfg := mustLoad(t, path)
	if cfg.Desk.Secret != "a-secret-of-enough-bytes" || cfg.Desk.SecretFile != "" {
		t.Errorf("desk secret, file = %q, %q; want the trimmed content and no file", cfg.Desk.Secret, cfg.Desk.SecretFile)
	}
	if m := cfg.Mailboxes[0]; m.Password != "imap-password" || m.PasswordFile != "" {
		t.Errorf("mailbox password, file = %q, %q", m.Password, m.PasswordFile)
	}
	if cfg.SMTP.Password != "smtp-password" {
		t.Errorf("smtp password = %q", cfg.SMTP.Password)
	}
}

func TestLoadEnvSecretReplacesFileSecret(t *testing.T) {
	// The file gives every secret as a path that does not exist; the
	// environment gives them inline instead.
	path := writeFile(t, "deskd.yaml", fmt.Sprintf(secretFileYAML, "/nonexistent", "/nonexistent", "/nonexistent"))
	t.Setenv("DESKD_DESK_SECRET", "0123456789abcdef")
	t.Setenv("DESKD_SMTP_PASSWORD", "smtp-password")
	t.Setenv("DESKD_MAILBOXES_0_PASSWORD", "imap-password")
	cfg := mustLoad(t, path)
	if cfg.Desk.Secret != "0123456789abcdef" || cfg.SMTP.Password != "smtp-password" || cfg.Mailboxes[0].Password != "imap-password" {
		t.Errorf("secrets = %q, %q, %q", cfg.Desk.Secret, cfg.SMTP.Password, cfg.Mailboxes[0].Password)
	}

	// And the other way round: a file path replaces an inline secret.
	secret := writeFile(t, "secret", "from-a-file-0123456789\n")
	imap := writeFile(t, "imap", "imap-from-file\n")
	t.Setenv("DESKD_DESK_SECRET", "")
	t.Setenv("DESKD_MAILBOXES_0_PASSWORD", "")
	t.Setenv("DESKD_DESK_SECRET_FILE", secret)
	t.Setenv("DESKD_MAILBOXES_0_PASSWORD_FILE", imap)
	cfg = mustLoad(t, writeFile(t, "deskd.yaml", twoQueueYAML))
	if cfg.Desk.Secret != "from-a-file-0123456789" || cfg.Mailboxes[0].Password != "imap-from-file" {
		t.Errorf("secrets = %q, %q", cfg.Desk.Secret, cfg.Mailboxes[0].Password)
	}
}

func TestLoadSecretFileProblems(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	smtpPassword := writeFile(t, "smtp", "smtp-password")
	path := writeFile(t, "deskd.yaml", fmt.Sprintf(secretFileYAML, missing, smtpPassword, empty))
	// Both ways within one source conflict.
	t.Setenv("DESKD_SMTP_PASSWORD", "also-inline")
	t.Setenv("DESKD_SMTP_PASSWORD_FILE", smtpPassword)

	_, err := Load(path)
	want := []string{
		"desk.secret_file: cannot read: open " + missing + ": no such file or directory",
		"mailboxes[0].password_file: file " + empty + " is empty",
		"smtp.password: give either password or password_file, not both",
	}
	if got := problemStrings(t, err); !slices.Equal(got, want) {
		t.Errorf("problems =\n%q\nwant\n%q", got, want)
	}
}

func TestLoadSearchOrder(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	etc := filepath.Join(t.TempDir(), "deskd.yaml")
	search := []string{"deskd.yaml", etc}
	if err := os.WriteFile(etc, []byte(minimalYAML+"http:\n  listen: 127.0.0.1:1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("deskd.yaml", []byte(minimalYAML+"http:\n  listen: 127.0.0.1:2\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	cfg, err := load("", search)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Source != "deskd.yaml" || cfg.HTTP.Listen != "127.0.0.1:2" {
		t.Errorf("with both files: source %q, listen %q; want the working directory's", cfg.Source, cfg.HTTP.Listen)
	}

	if err := os.Remove("deskd.yaml"); err != nil {
		t.Fatal(err)
	}
	cfg, err = load("", search)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Source != etc || cfg.HTTP.Listen != "127.0.0.1:1" {
		t.Errorf("with the second file only: source %q, listen %q; want %s", cfg.Source, cfg.HTTP.Listen, etc)
	}

	// The real search path starts in the working directory too.
	if err := os.WriteFile("deskd.yaml", []byte(minimalYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	if cfg := mustLoad(t, ""); cfg.Source != "deskd.yaml" {
		t.Errorf("Load(\"\") source = %q, want deskd.yaml", cfg.Source)
	}

	// A path that is given must exist.
	if _, err := Load(filepath.Join(dir, "nope.yaml")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing) error = %v, want fs.ErrNotExist", err)
	}
}

func TestLoadDatabase(t *testing.T) {
	t.Chdir(t.TempDir())
	t.Setenv("DESKD_DATABASE_URL", "postgres://deskd@db.internal/deskd")
	// Without a file nothing but the database is configured, which is
	// enough here and not for Load.
	cfg, err := loadDatabase("", []string{"deskd.yaml"})
	if err != nil {
		t.Fatalf("loadDatabase: %v", err)
	}
	if cfg.Database.URL != "postgres://deskd@db.internal/deskd" || cfg.Log.Level != "info" {
		t.Errorf("database, log = %+v, %+v", cfg.Database, cfg.Log)
	}
	if _, err := load("", []string{"deskd.yaml"}); err == nil {
		t.Error("load of the same configuration succeeded, want problems")
	}

	t.Setenv("DESKD_DATABASE_URL", "mysql://db/deskd")
	t.Setenv("DESKD_LOG_FORMAT", "xml")
	_, err = loadDatabase("", []string{"deskd.yaml"})
	want := []string{
		"database.url: scheme must be postgres or postgresql",
		`log.format: must be one of auto, text, json (got "xml")`,
	}
	if got := problemStrings(t, err); !slices.Equal(got, want) {
		t.Errorf("problems = %q, want %q", got, want)
	}
}

func TestLoadDecodeErrors(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown key", "smtp:\n  prot: 25\n", "'smtp' has invalid keys: prot"},
		{"duration without unit", "smtp:\n  timeout: 30\n", "'smtp.timeout' parse duration 30: a unit is required"},
		{"bad duration", "smtp:\n  timeout: soon\n", `'smtp.timeout' parse duration "soon": want Go syntax`},
		{"bad size", "mailin:\n  max_message_bytes: 25 parsecs\n", `parse size "25 parsecs"`},
		{"wrong type", "database:\n  max_conns: many\n", "'database.max_conns'"},
		{"malformed yaml", "smtp: [\n", "parse config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Decoding fails before validation, so nothing else is needed.
			_, err := Load(writeFile(t, "deskd.yaml", tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load error = %v, want it to contain %q", err, tc.want)
			}
			var ve ValidationError
			if errors.As(err, &ve) {
				t.Errorf("decode error reported as validation problems: %v", err)
			}
		})
	}
}
