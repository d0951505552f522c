package config

import (
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/viper"
)

// maxListIndex bounds the index of an indexed environment variable, so that
// a typo cannot allocate a huge list.
const maxListIndex = 999

// envLists are the list keys that take indexed environment overrides, with
// the type of their items.
var envLists = []struct {
	key  string
	item reflect.Type
}{
	{"mailboxes", reflect.TypeFor[Mailbox]()},
	{"queues", reflect.TypeFor[Queue]()},
	{"agents", reflect.TypeFor[Agent]()},
}

// itemKey names one key of one list item.
type itemKey struct {
	index int
	key   string // e.g. "password_file"
}

// indexedVar is one parsed DESKD_<LIST>_<INDEX>_<KEY>=value variable.
type indexedVar struct {
	itemKey
	value any // string, or []string for list-valued keys
}

// applyIndexedEnv applies the DESKD_<LIST>_<INDEX>_<KEY> variables of environ
// (as returned by os.Environ) to the lists in v, growing a list when an index
// lies past its end. It rejects a malformed index or an unknown key, so that
// a misspelt secret variable is not silently ignored. A secret set in the
// environment replaces the file's secret given either way, as in
// applySecretEnv.
func applyIndexedEnv(v *viper.Viper, environ []string) error {
	// Sort so that the result, and the first error, do not depend on the
	// order of the environment.
	environ = slices.Sorted(slices.Values(environ))
	for _, list := range envLists {
		prefix := EnvPrefix + "_" + strings.ToUpper(list.key) + "_"
		var vars []indexedVar
		for _, kv := range environ {
			name, value, _ := strings.Cut(kv, "=")
			rest, ok := strings.CutPrefix(name, prefix)
			if !ok || value == "" {
				continue
			}
			iv, err := parseIndexedVar(rest, value, list.item)
			if err != nil {
				return fmt.Errorf("environment variable %s: %w", name, err)
			}
			vars = append(vars, iv)
		}
		if len(vars) == 0 {
			continue
		}
		items, err := listItems(v.Get(list.key))
		if err != nil {
			return fmt.Errorf("apply environment to %s: %w", list.key, err)
		}
		inEnv := make(map[itemKey]bool, len(vars))
		for _, iv := range vars {
			inEnv[iv.itemKey] = true
		}
		for _, iv := range vars {
			for len(items) <= iv.index {
				items = append(items, map[string]any{})
			}
			item := items[iv.index].(map[string]any)
			remove := []string{iv.key}
			if sib := secretSibling(iv.key); sib != "" && !inEnv[itemKey{iv.index, sib}] {
				remove = append(remove, sib)
			}
			for k := range item {
				for _, r := range remove {
					if strings.EqualFold(k, r) {
						delete(item, k)
					}
				}
			}
			item[iv.key] = iv.value
		}
		v.Set(list.key, items)
	}
	return nil
}

// parseIndexedVar parses rest, the part of a variable name after
// DESKD_<LIST>_, as <INDEX>_<KEY> for an item of type item.
func parseIndexedVar(rest, value string, item reflect.Type) (indexedVar, error) {
	index, key, ok := strings.Cut(rest, "_")
	if !ok || index == "" || strings.Trim(index, "0123456789") != "" {
		return indexedVar{}, fmt.Errorf("want <index>_<key> after the list name")
	}
	i, err := strconv.Atoi(index)
	if err != nil || i > maxListIndex {
		return indexedVar{}, fmt.Errorf("index %s is out of range 0-%d", index, maxListIndex)
	}
	key = strings.ToLower(key)
	for f := range item.Fields() {
		if yamlKey(f) != key {
			continue
		}
		switch f.Type.Kind() {
		case reflect.Slice:
			return indexedVar{itemKey{i, key}, splitList(value)}, nil
		case reflect.Struct, reflect.Map:
			return indexedVar{}, fmt.Errorf("key %s is not a scalar", key)
		default:
			return indexedVar{itemKey{i, key}, value}, nil
		}
	}
	return indexedVar{}, fmt.Errorf("no key %s in a list item", key)
}

// listItems copies a list as viper holds it (from YAML, or nil when absent)
// into a slice of item maps that can be modified without touching v.
func listItems(raw any) ([]any, error) {
	if raw == nil {
		return nil, nil
	}
	list, ok := raw.([]any)
	if !ok {
		return nil, fmt.Errorf("want a list, got %T", raw)
	}
	items := make([]any, len(list))
	for i, it := range list {
		m, ok := it.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("item %d: want a mapping, got %T", i, it)
		}
		items[i] = maps.Clone(m)
	}
	return items, nil
}

// applySecretEnv lets an environment variable replace a scalar secret that
// the file gives the other way: DESKD_SMTP_PASSWORD replaces the file's
// smtp.password_file, and DESKD_SMTP_PASSWORD_FILE its smtp.password. Only
// a secret given both ways within one source (file or environment) is a
// conflict.
func applySecretEnv(v *viper.Viper) {
	// Default has no list items, so these are the scalar secrets.
	for _, s := range Default().secretFields() {
		for _, key := range []string{s.key, s.key + "_file"} {
			sib := secretSibling(key)
			if os.Getenv(envName(key)) != "" && os.Getenv(envName(sib)) == "" {
				v.Set(sib, "")
			}
		}
	}
}

// secretSibling returns the other key of a secret pair, such as
// "smtp.password_file" for "smtp.password" and "secret" for "secret_file",
// or "" when key is not part of one.
func secretSibling(key string) string {
	dot := strings.LastIndexByte(key, '.') + 1
	prefix, last := key[:dot], key[dot:]
	base, isFile := strings.CutSuffix(last, "_file")
	switch {
	case base != "password" && base != "secret":
		return ""
	case isFile:
		return prefix + base
	default:
		return prefix + base + "_file"
	}
}

// envName returns the environment variable of a dotted key:
// DESKD_SMTP_PASSWORD for smtp.password.
func envName(key string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}
