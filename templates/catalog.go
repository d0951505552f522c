package templates

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// defaults holds the built-in templates: defaults/<lang>/<file> per language, and language-neutral
// shared files directly in defaults/.
//
//go:embed defaults
var defaults embed.FS

// source is the text of one template file.
type source struct {
	name string // for messages: a path under Options.Dir, or "embedded:<lang>/<file>"
	text string
	// lang is the language the file is written in as far as its place says: the language of an
	// embedded or <lang> position, "" for a language-neutral place.
	lang string
}

// catalog holds every template file deskd knows, keyed by slash path.
type catalog struct {
	dir       string
	overrides map[string]source // relative to Options.Dir: "<file>", "<a>/<file>", "<a>/<b>/<file>"
	embedded  map[string]source // relative to defaults/: "<lang>/<file>" or "<file>"
	tops      []string          // directories directly under Dir (queue or language), sorted
	subs      []string          // directories two deep (languages of a queue), sorted, unique
	builtin   []string          // languages of the embedded defaults, sorted
}

// loadCatalog reads the embedded defaults and, when dir is not "", every override file under dir.
// Files and directories whose names start with "." and files not ending in ".tmpl" are ignored; a
// ".tmpl" file with an unknown name or deeper than <queue>/<lang>/ is an error.
func loadCatalog(dir string) (*catalog, error) {
	c := &catalog{dir: dir, overrides: map[string]source{}, embedded: map[string]source{}}
	err := fs.WalkDir(defaults, "defaults", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := defaults.ReadFile(p)
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(p, "defaults/")
		lang := ""
		if i := strings.IndexByte(rel, '/'); i >= 0 {
			lang = rel[:i]
		}
		c.embedded[rel] = source{name: "embedded:" + rel, text: string(b), lang: lang}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read embedded templates: %w", err)
	}
	langs := map[string]bool{}
	for rel := range c.embedded {
		if i := strings.IndexByte(rel, '/'); i >= 0 {
			langs[rel[:i]] = true
		}
	}
	c.builtin = slices.Sorted(maps.Keys(langs))
	if dir == "" {
		return c, nil
	}
	if err := c.loadOverrides(dir); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *catalog) loadOverrides(dir string) error {
	info, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("open template directory: %w", err)
	}
	if !info.IsDir() {
		return fmt.Errorf("open template directory %s: not a directory", dir)
	}
	tops, subs := map[string]bool{}, map[string]bool{}
	err = fs.WalkDir(os.DirFS(dir), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != "." && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() || !strings.HasSuffix(p, ".tmpl") {
			return nil
		}
		full := filepath.Join(dir, filepath.FromSlash(p))
		parts := strings.Split(p, "/")
		if len(parts) > 3 {
			return fmt.Errorf("template %s: too deep, want DIR[/<queue>][/<lang>]/<file>", full)
		}
		if !validFile(path.Base(p)) {
			return fmt.Errorf("template %s: unknown file name, want <name>.{subject,txt,html}.tmpl, %s, %s, %s or %s",
				full, footerFile, layoutFile, commonTextFile, commonHTMLFile)
		}
		if len(parts) >= 2 {
			tops[parts[0]] = true
		}
		if len(parts) == 3 {
			subs[parts[1]] = true
		}
		b, err := os.ReadFile(full)
		if err != nil {
			return err
		}
		c.overrides[p] = source{name: full, text: string(b)}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read template overrides: %w", err)
	}
	c.tops, c.subs = slices.Sorted(maps.Keys(tops)), slices.Sorted(maps.Keys(subs))
	return nil
}

// errNoSource means no file provides a part; it cannot happen with complete embedded defaults.
var errNoSource = errors.New("no template file")

// resolve finds file for a queue and language, most specific first:
// DIR/<queue>/<lang>/ > DIR/<queue>/ > DIR/<lang>/ > DIR/ > embedded <lang>/ > embedded en/ > embedded.
// queue and lang are "" when not applicable. The returned source's lang is the language its place
// says, "" for DIR/<queue>/, DIR/ and the embedded top level.
func (c *catalog) resolve(queue, lang, file string) (source, error) {
	type cand struct{ key, lang string }
	var over []cand
	if queue != "" && lang != "" {
		over = append(over, cand{queue + "/" + lang + "/" + file, lang})
	}
	if queue != "" {
		over = append(over, cand{queue + "/" + file, ""})
	}
	if lang != "" {
		over = append(over, cand{lang + "/" + file, lang})
	}
	over = append(over, cand{file, ""})
	for _, o := range over {
		if s, ok := c.overrides[o.key]; ok {
			s.lang = o.lang
			return s, nil
		}
	}
	for _, key := range []string{lang + "/" + file, DefaultLanguage + "/" + file, file} {
		if s, ok := c.embedded[key]; ok {
			return s, nil
		}
	}
	return source{}, fmt.Errorf("resolve %s: %w", file, errNoSource)
}

// complete returns the languages in which every part of every named template exists: the
// built-in ones and each top-level override directory that provides them all.
func (c *catalog) complete() []string {
	out := append([]string(nil), c.builtin...)
	for _, l := range c.tops {
		if slices.Contains(c.builtin, l) {
			continue
		}
		all := true
		for _, n := range names {
			for _, suffix := range []string{subjectSuffix, textSuffix, htmlSuffix} {
				if _, ok := c.overrides[l+"/"+n+suffix]; !ok {
					all = false
				}
			}
		}
		if all {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return out
}
