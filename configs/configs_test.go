package configs

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deskd/deskd/internal/config"
)

const examplePath = "deskd.example.yaml"

// provideSecrets stands in for the /run/secrets mounts the example names:
// it writes each secret to a temporary file and points the *_FILE
// environment variable at it, as an operator would.
func provideSecrets(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	for env, secret := range map[string]string{
		"DESKD_DESK_SECRET_FILE":          "an-example-secret-of-32-bytes!!!",
		"DESKD_MAILBOXES_0_PASSWORD_FILE": "imap-support-password",
		"DESKD_MAILBOXES_1_PASSWORD_FILE": "imap-changes-password",
		"DESKD_SMTP_PASSWORD_FILE":        "smtp-password",
	} {
		path := filepath.Join(dir, strings.ToLower(env))
		if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv(env, path)
	}
}

func TestExampleLoadsAndValidates(t *testing.T) {
	provideSecrets(t)
	cfg, err := config.Load(examplePath)
	if err != nil {
		t.Fatalf("Load(%s): %v", examplePath, err)
	}
	if problems := cfg.Validate(); len(problems) != 0 {
		t.Fatalf("loaded example has problems: %v", problems)
	}

	if cfg.Desk.Domain != "desk.example.com" || cfg.Desk.Secret != "an-example-secret-of-32-bytes!!!" {
		t.Errorf("desk = %q, secret %q", cfg.Desk.Domain, cfg.Desk.Secret)
	}
	if got := cfg.KeyPrefixes(); !slices.Equal(got, []string{"SD", "CHG"}) {
		t.Errorf("key prefixes = %q, want [SD CHG]", got)
	}
	if q, ok := cfg.QueueByAddress("help@example.com"); !ok || q.Name != "support" || q.DefaultPriority != "P3" || q.Language != "en" {
		t.Errorf("help@example.com queue = %+v, %v", q, ok)
	}
	if q, ok := cfg.QueueByPrefix("CHG"); !ok || q.DefaultKind != "change" || q.TeamLead != "dmitri" {
		t.Errorf("CHG queue = %+v, %v", q, ok)
	}

	if len(cfg.Mailboxes) != 2 {
		t.Fatalf("mailboxes = %+v, want 2", cfg.Mailboxes)
	}
	support, changes := cfg.Mailboxes[0], cfg.Mailboxes[1]
	if support.Port != 993 || support.TLS != config.TLSImplicit || support.Folder != "INBOX" || support.Password != "imap-support-password" {
		t.Errorf("support mailbox = %+v", support)
	}
	if changes.Port != 143 || changes.TLS != config.TLSStartTLS || changes.Password != "imap-changes-password" {
		t.Errorf("changes mailbox = %+v", changes)
	}

	if s := cfg.SMTP; s.Port != 587 || s.Auth != config.AuthPlain || s.Password != "smtp-password" {
		t.Errorf("smtp = %+v", s)
	}
	if a, ok := cfg.AgentByName("ana"); !ok || a.Role != config.RoleLead || a.Language != "pt-BR" {
		t.Errorf("agent ana = %+v, %v", a, ok)
	}
	if a, ok := cfg.AgentByEmail("chen.wei@example.com"); !ok || a.Role != config.RoleAgent || a.Language != "en" {
		t.Errorf("agent chen = %+v, %v", a, ok)
	}
	if cfg.MailIn.MaxMessageBytes != 25*config.MiB || cfg.MailOut.RetryDeadline != 24*time.Hour || cfg.Log.Format != config.LogFormatAuto {
		t.Errorf("commented sections did not keep their defaults: %+v %+v %+v", cfg.MailIn, cfg.MailOut, cfg.Log)
	}
}

func TestExampleWithoutSecretsNamesThem(t *testing.T) {
	_, err := config.Load(examplePath)
	var ve config.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Load without secrets: %v, want a ValidationError", err)
	}
	var keys []string
	for _, p := range ve {
		keys = append(keys, p.Key)
	}
	want := []string{"desk.secret_file", "mailboxes[0].password_file", "mailboxes[1].password_file", "smtp.password_file"}
	if !slices.Equal(keys, want) {
		t.Errorf("problem keys = %q, want %q (problems: %v)", keys, want, err)
	}
}

// TestExampleDocumentsEveryKey checks that every key of config.Config
// appears in the example, set or as a commented default.
func TestExampleDocumentsEveryKey(t *testing.T) {
	if !strings.Contains(string(Example), "key_prefix: CHG") {
		t.Fatal("embedded Example is not deskd.example.yaml")
	}
	for _, key := range yamlKeys(reflect.TypeFor[config.Config](), "") {
		name := key[strings.LastIndexAny(key, ".]")+1:]
		documented := regexp.MustCompile(`(?m)^[ \t]*(#[ \t]*)?(-[ \t]+)?` + regexp.QuoteMeta(name) + `:`)
		if !documented.Match(Example) {
			t.Errorf("%s is not documented in %s", key, examplePath)
		}
	}
}

// yamlKeys lists the key paths of a struct type by its yaml tags,
// descending into structs and lists of structs.
func yamlKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		keys = append(keys, prefix+name)
		ft := f.Type
		if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
			keys = append(keys, yamlKeys(ft.Elem(), prefix+name+"[].")...)
		} else if ft.Kind() == reflect.Struct && ft != reflect.TypeFor[time.Duration]() {
			keys = append(keys, yamlKeys(ft, prefix+name+".")...)
		}
	}
	return keys
}
