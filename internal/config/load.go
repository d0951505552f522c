package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
)

// EnvPrefix starts every environment variable Load reads.
const EnvPrefix = "DESKD"

// searchPaths are the files Load tries, in order, when it is given no path.
var searchPaths = []string{"deskd.yaml", "/etc/deskd/deskd.yaml"}

// Load reads the configuration and returns it with defaults applied, secret
// files read, and validated.
//
// When path is empty Load reads the first file that exists of ./deskd.yaml
// (relative to the working directory) and /etc/deskd/deskd.yaml and, when
// neither does, builds the configuration from defaults and the environment
// alone. A path that is given must exist.
//
// Environment variables override the file: DESKD_<SECTION>_<KEY> for every
// scalar key (DESKD_SMTP_PORT overrides smtp.port) and
// DESKD_<LIST>_<INDEX>_<KEY> for the items of mailboxes, queues and agents
// (DESKD_MAILBOXES_0_PASSWORD overrides mailboxes[0].password; an index past
// the end of the list adds items). List-valued item keys take a
// comma-separated value. Empty variables are ignored.
//
// A secret set in the environment replaces the file's secret given either
// way: DESKD_SMTP_PASSWORD replaces the file's smtp.password_file, and
// DESKD_MAILBOXES_0_PASSWORD_FILE its mailboxes[0].password. Load then
// reads every *_file secret into its sibling key (see [Desk.SecretFile]).
//
// When the result has problems, including unreadable secret files, Load
// returns a [ValidationError] listing all of them; other errors (unreadable
// or malformed file, unknown key, value of the wrong type) are returned as
// they occur.
func Load(path string) (*Config, error) {
	return load(path, searchPaths)
}

// decode reads the file and the environment into a Config with defaults
// applied. It neither reads secret files nor validates.
func decode(path string, search []string) (*Config, error) {
	src, data, err := readSource(path, search)
	if err != nil {
		return nil, err
	}

	v := viper.New()
	v.SetConfigType("yaml")
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	// viper consults the environment only for keys it knows of, so every
	// scalar key gets a default.
	for key, value := range scalarKeys(reflect.ValueOf(*Default()), "") {
		v.SetDefault(key, value)
	}
	if data != nil {
		if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
			return nil, fmt.Errorf("parse config %s: %w", src, err)
		}
	}
	applySecretEnv(v)
	if err := applyIndexedEnv(v, os.Environ()); err != nil {
		return nil, err
	}

	cfg := new(Config)
	err = v.UnmarshalExact(cfg, func(dc *mapstructure.DecoderConfig) {
		dc.TagName = "yaml"
		dc.DecodeHook = mapstructure.ComposeDecodeHookFunc(
			durationHook,
			mapstructure.TextUnmarshallerHookFunc(),
			stringToSliceHook,
		)
	})
	if err != nil {
		if src == "" {
			return nil, fmt.Errorf("decode config: %w", err)
		}
		return nil, fmt.Errorf("decode config %s: %w", src, err)
	}
	cfg.Source = src
	cfg.ApplyDefaults()
	return cfg, nil
}

// LoadDatabase reads the configuration like [Load] but validates only the
// database and log sections and reads no secret files, for commands that
// need nothing else (migrate, ticket list): they work before mailboxes,
// queues and the desk identity are configured. Only the Database and Log
// fields of the result are fit for use; decoding errors (unknown keys, wrong
// types) are still errors.
func LoadDatabase(path string) (*Config, error) {
	return loadDatabase(path, searchPaths)
}

// loadDatabase is LoadDatabase with the search paths as a parameter.
func loadDatabase(path string, search []string) (*Config, error) {
	cfg, err := decode(path, search)
	if err != nil {
		return nil, err
	}
	var problems []Problem
	for _, p := range cfg.Validate() {
		if strings.HasPrefix(p.Key, "database.") || strings.HasPrefix(p.Key, "log.") {
			problems = append(problems, p)
		}
	}
	if len(problems) > 0 {
		return nil, ValidationError(problems)
	}
	return cfg, nil
}

// load is Load with the search paths as a parameter, for tests.
func load(path string, search []string) (*Config, error) {
	cfg, err := decode(path, search)
	if err != nil {
		return nil, err
	}
	problems := cfg.readSecretFiles()
	problems = append(problems, cfg.Validate()...)
	if len(problems) > 0 {
		return nil, ValidationError(problems)
	}
	return cfg, nil
}

// readSource returns the path and content of the configuration file: path
// itself when it is set, else the first of search that exists, else nothing.
func readSource(path string, search []string) (string, []byte, error) {
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return "", nil, fmt.Errorf("read config: %w", err)
		}
		return path, data, nil
	}
	for _, p := range search {
		data, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", nil, fmt.Errorf("read config: %w", err)
		}
		return p, data, nil
	}
	return "", nil, nil
}

// scalarKeys flattens the struct v into dotted keys (by yaml tag) and their
// values, skipping lists, maps and untagged fields.
func scalarKeys(v reflect.Value, prefix string) map[string]any {
	keys := make(map[string]any)
	t := v.Type()
	for i := range t.NumField() {
		name := yamlKey(t.Field(i))
		if name == "" {
			continue
		}
		f := v.Field(i)
		switch f.Kind() {
		case reflect.Struct:
			for k, val := range scalarKeys(f, prefix+name+".") {
				keys[k] = val
			}
		case reflect.Slice, reflect.Map:
		default:
			keys[prefix+name] = f.Interface()
		}
	}
	return keys
}

// yamlKey returns the configuration key of a struct field, "" when it has
// none.
func yamlKey(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" {
		return ""
	}
	return name
}

var durationType = reflect.TypeFor[time.Duration]()

// durationHook decodes Go duration strings ("30s") and rejects plain
// numbers other than 0, which would otherwise decode as nanoseconds.
func durationHook(from, to reflect.Type, data any) (any, error) {
	if to != durationType || from == durationType {
		return data, nil
	}
	switch from.Kind() {
	case reflect.String:
		s := strings.TrimSpace(reflect.ValueOf(data).String())
		d, err := time.ParseDuration(s)
		if err != nil {
			return nil, fmt.Errorf("parse duration %q: want Go syntax such as 30s, 25m or 1h30m", s)
		}
		return d, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		if reflect.ValueOf(data).IsZero() {
			return time.Duration(0), nil
		}
		return nil, fmt.Errorf("parse duration %v: a unit is required, such as 30s, 25m or 1h30m", data)
	}
	return data, nil
}

// stringToSliceHook decodes a comma-separated string, as environment
// variables give them, into a list of trimmed strings.
func stringToSliceHook(from, to reflect.Type, data any) (any, error) {
	if from.Kind() != reflect.String || to.Kind() != reflect.Slice || to.Elem().Kind() != reflect.String {
		return data, nil
	}
	return splitList(reflect.ValueOf(data).String()), nil
}

// splitList splits a comma-separated list, trimming space and dropping
// empty elements.
func splitList(s string) []string {
	var out []string
	for part := range strings.SplitSeq(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// secretField is one secret and its *_file sibling.
type secretField struct {
	key   string // key of the secret, e.g. "smtp.password"; the file key adds "_file"
	value *string
	file  *string
}

// secretFields lists every secret of c with its file sibling.
func (c *Config) secretFields() []secretField {
	fields := []secretField{{"desk.secret", &c.Desk.Secret, &c.Desk.SecretFile}}
	for i := range c.Mailboxes {
		m := &c.Mailboxes[i]
		fields = append(fields, secretField{fmt.Sprintf("mailboxes[%d].password", i), &m.Password, &m.PasswordFile})
	}
	return append(fields, secretField{"smtp.password", &c.SMTP.Password, &c.SMTP.PasswordFile})
}

// readSecretFiles reads every *_file secret whose sibling is empty into the
// sibling, trimming trailing line breaks, and clears the *_file key. Secrets
// given both ways are left for Validate to report.
func (c *Config) readSecretFiles() []Problem {
	var problems []Problem
	for _, s := range c.secretFields() {
		if *s.file == "" || *s.value != "" {
			continue
		}
		key := s.key + "_file"
		data, err := os.ReadFile(*s.file)
		if err != nil {
			problems = append(problems, Problem{Key: key, Message: "cannot read: " + err.Error()})
			continue
		}
		secret := strings.TrimRight(string(data), "\r\n")
		if secret == "" {
			problems = append(problems, Problem{Key: key, Message: fmt.Sprintf("file %s is empty", *s.file)})
			continue
		}
		*s.value, *s.file = secret, ""
	}
	return problems
}
